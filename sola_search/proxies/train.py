"""`train_proxy`: one short training run of a pattern's proxy instance, scored on held-out data.

Read it top to bottom like nanoGPT's train.py: data → model → optimizer → loop → evaluation.
A run never raises for a training failure: divergence, out-of-memory and any other exception end
as a `ProxyResult` with a status and a one-line reason, so a search worker survives them. Bad input
(an unknown variant, a pattern that does not fit, missing data) is a `SolaError` before training.

Speed on a GPU (the proxy model is small, so a step is launch-bound, not FLOP-bound): the dataset
lives on the device as uint8 and is augmented there; the training step is captured once as a CUDA
graph — forward, backward, clipping and the fused AdamW step in one graph launch instead of ~2,000
kernel launches; the loss is read back one logging interval late through pinned memory, so the
host never waits for the device inside the loop. Runs may share a process in threads (each its own
seed's run: the weights are built under a lock; on a GPU each thread has its own CUDA stream and
captures thread-locally), though on a GPU such threads starve each other today (docs/performance.md):
a search runs one trial per worker process."""

from __future__ import annotations

import contextlib
import gc
import math
import resource
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from sola_search.errors import SolaError, is_oom, one_line
from sola_search.proxies.config import ProxyConfig, get_preset
from sola_search.proxies.data import ProxyData, load_proxy_data, resolve_device
from sola_search.space.backbone import Attention, build_backbone, resolve_pattern
from sola_search.space.pattern import Pattern

STATUSES = ("ok", "nan", "oom", "error")

# Input shapes this process has captured before: cuDNN's autotuning and lazily loaded kernels are
# then cached, so one warm-up iteration before capture is enough instead of three.
_CAPTURED: set[tuple] = set()


@dataclass
class ProxyResult:
    """What one proxy run measured. Top-1 values are fractions in [0, 1]; None when not measured."""

    status: str  # ok | nan (loss not finite) | oom (out of memory) | error (any other exception)
    reason: str = ""  # one line when status is not ok
    val_top1: float | None = None
    val_loss: float | None = None
    test_top1: float | None = None  # only when the config asks (`test=True`)
    test_loss: float | None = None
    train_curve: list[list[float]] = field(default_factory=list)  # sparse [step, mean training loss]
    val_curve: list[list[float]] = field(default_factory=list)  # [step, val top-1] when eval_every > 0
    steps: int = 0  # optimizer steps completed
    wall_s: float = 0.0  # the whole call: data (unless cached or given), model, capture, loop, evaluation
    phases: dict[str, float] = field(default_factory=dict)  # seconds: data, build, capture, train, eval, cleanup
    train_s: float = 0.0  # the training loop only
    images_per_s: float = 0.0  # training images per second of the loop
    peak_mem_mb: float = 0.0  # CUDA: peak allocated by this run; CPU: the process's peak RSS
    device: str = ""
    mode: str = ""  # eager | cuda-graphs | compile
    notes: str = ""  # e.g. why CUDA graphs were not used
    pattern: str = ""
    variant: str = ""
    params: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProxyResult:
        return cls(**d)


def lr_at(step: int, cfg: ProxyConfig) -> float:
    """Linear warm-up to `lr`, then cosine decay to zero at `steps`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def train_proxy(pattern: str | Pattern, config: ProxyConfig | None = None,
                data: ProxyData | None = None) -> ProxyResult:
    """Train `pattern`'s proxy instance as `config` says and score it on the validation split.

    `data` (from `load_data`) is optional: without it the config's data spec is loaded (and cached
    for the process). Given data decides the device. Raises `SolaError` only for bad input."""
    t0 = time.perf_counter()
    cfg = config if config is not None else get_preset("default" if torch.cuda.is_available() else "quick")
    pattern = resolve_pattern(pattern, cfg.variant)
    dev = data.device if data is not None else resolve_device(cfg.device)
    res = ProxyResult(status="ok", device=_describe(dev), pattern=str(pattern), variant=cfg.variant)
    if data is not None and data.resolution != cfg.resolution:
        raise SolaError(f"data at {data.resolution}px given for a proxy at {cfg.resolution}px")
    if data is not None and getattr(data, "task", "classify") != cfg.task:
        raise SolaError(f"data for task {getattr(data, 'task', 'classify')} given for a proxy of task {cfg.task}")
    try:
        if data is None:  # missing or malformed data is a SolaError; running out of memory here is 'oom'
            data = load_proxy_data(cfg, dev)
        res.phases["data"] = round(time.perf_counter() - t0, 3)
        with _speed_settings(dev):
            _train(pattern, cfg, data, res)
    except SolaError:
        raise
    except Exception as e:  # noqa: BLE001 — a worker must survive whatever a training run does
        res.status, res.reason = ("oom" if is_oom(e) else "error"), one_line(e)
    finally:
        t_clean = time.perf_counter()
        gc.collect()  # graphed modules hold their graphs in reference cycles
        if dev.type == "cuda" and res.status == "oom":
            torch.cuda.empty_cache()  # otherwise the cached blocks serve the next run in this process
        res.phases["cleanup"] = round(time.perf_counter() - t_clean, 3)
        res.wall_s = round(time.perf_counter() - t0, 3)
    return res


def _describe(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return "cpu"


_SETTINGS_LOCK = threading.Lock()
_SETTINGS_USERS = [0, None]  # runs inside `_speed_settings` now, the settings to restore after the last
_BUILD_LOCK = threading.Lock()  # the global RNG: each run's seed → its weights, also with runs in threads
_CAPTURE_LOCK = threading.Lock()  # one graph capture at a time per process
_THREAD = threading.local()  # each thread's own CUDA stream, kept: streams come from a small shared pool


def _thread_stream(dev: torch.device) -> torch.cuda.Stream:
    streams = _THREAD.__dict__.setdefault("streams", {})
    if dev not in streams:
        streams[dev] = torch.cuda.Stream(dev)
    return streams[dev]


@contextlib.contextmanager
def _speed_settings(dev: torch.device):
    """TF32 matmuls (MALA's fp32 kᵀv) and cuDNN autotuning while runs are active, then restored
    (counted, so that runs sharing a process in threads do not restore them under each other)."""
    if dev.type != "cuda":
        yield
        return
    with _SETTINGS_LOCK:
        if _SETTINGS_USERS[0] == 0:
            _SETTINGS_USERS[1] = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
            torch.set_float32_matmul_precision("high")
            torch.backends.cudnn.benchmark = True
        _SETTINGS_USERS[0] += 1
    try:
        yield
    finally:
        with _SETTINGS_LOCK:
            _SETTINGS_USERS[0] -= 1
            if _SETTINGS_USERS[0] == 0:
                torch.set_float32_matmul_precision(_SETTINGS_USERS[1][0])
                torch.backends.cudnn.benchmark = _SETTINGS_USERS[1][1]


def _train(pattern: Pattern, cfg: ProxyConfig, data: ProxyData, res: ProxyResult) -> None:
    """On a GPU the run goes on its thread's own CUDA stream (never the legacy default stream, which a
    graph capture may not use and which would serialise runs in threads)."""
    dev = data.device
    if dev.type != "cuda":
        return _train_on(pattern, cfg, data, res)
    torch.cuda.set_device(dev)
    with torch.cuda.stream(_thread_stream(dev)):
        return _train_on(pattern, cfg, data, res)


def _train_on(pattern: Pattern, cfg: ProxyConfig, data: ProxyData, res: ProxyResult) -> None:
    dev = data.device
    cuda = dev.type == "cuda"
    stream = torch.cuda.current_stream(dev) if cuda else None
    bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and cuda)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)  # process-wide: shared by runs in threads

    # data: endless augmented batches drawn on the device from a seeded generator
    gen = torch.Generator(device=dev)
    gen.manual_seed(cfg.seed)
    batches = data.batches(cfg.batch_size, gen, cfg.augment, cfg.max_train)

    # model
    t_build = time.perf_counter()
    on_device = torch.device(dev) if cuda and cfg.build_on_device else contextlib.nullcontext()
    with _BUILD_LOCK, on_device:
        torch.manual_seed(cfg.seed)
        model = build_backbone(cfg.variant, pattern, width=cfg.width, num_classes=data.num_classes,
                               in_chans=data.channels, layer_scale_init=cfg.layer_scale_init,
                               drop_path_rate=cfg.drop_path_rate)
        if cfg.qk_init > 0:
            _init_qk(model, cfg.qk_init)
    model = model.to(dev, memory_format=fmt).train()
    res.params = sum(p.numel() for p in model.parameters())

    # optimizer: AdamW, no weight decay on norms, biases and layer scales. On a GPU the learning
    # rate is a device tensor, so the whole step (optimizer included) can be one CUDA graph.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [dict(params=[p for p in params if p.ndim > 1], weight_decay=cfg.weight_decay),
              dict(params=[p for p in params if p.ndim <= 1], weight_decay=0.0)]
    lr_t = torch.full((), cfg.lr, device=dev) if cuda else None
    opt = torch.optim.AdamW(groups, lr=lr_t if cuda else cfg.lr, betas=(0.9, 0.999), fused=cuda,
                            capturable=cuda)
    if cuda:
        for g in opt.param_groups:
            g["lr"] = lr_t

    def autocast():
        return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False)

    def eager_step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast():
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=cuda)
        opt.step()
        return loss

    # execution mode: the whole training step as one CUDA graph on a GPU, else eager (or torch.compile)
    res.mode = "eager"
    first = next(batches)
    t_capture = time.perf_counter()
    res.phases["build"] = round(t_capture - t_build, 3)
    graphed = None
    if cfg.compile:
        model, res.mode = torch.compile(model), "compile"
    elif cuda and cfg.cuda_graphs:
        try:
            shapes = (tuple(first[0].shape), str(dev), bf16, cfg.variant, cfg.width)
            graphed = _capture(eager_step, opt, data.normalize(first[0], cfg.channels_last), first[1], lr_t,
                               warm=shapes in _CAPTURED)
            _CAPTURED.add(shapes)
            res.mode = "cuda-graphs"
        except Exception as e:  # noqa: BLE001 — eager still works; say why graphs did not
            if is_oom(e):
                raise
            res.notes = f"CUDA graphs off: {one_line(e)}"
            _reset_optimizer(opt)

    # training loop
    log_every = max(1, cfg.steps // cfg.log_points)
    pending: deque = deque()  # (step, host loss, event): read one interval late, no host-device sync
    loss_acc, n_acc = torch.zeros((), device=dev), 0
    diverged = False
    if cuda:
        stream.synchronize()  # this run's work only: other runs in the process keep going
    t_loop = time.perf_counter()
    res.phases["capture"] = round(t_loop - t_capture, 3)
    for step in range(cfg.steps):
        lr = lr_at(step, cfg)
        if cuda:
            lr_t.fill_(lr)
        else:
            for g in opt.param_groups:
                g["lr"] = lr
        xb, yb = first if step == 0 else next(batches)
        x = data.normalize(xb, cfg.channels_last)
        if graphed is not None:
            loss = graphed(x, yb)
        else:
            loss = eager_step(x, yb)
            opt.zero_grad(set_to_none=True)
        loss_acc += loss.detach()
        n_acc += 1
        res.steps = step + 1
        if res.steps % log_every == 0 or res.steps == cfg.steps:
            mean = loss_acc / n_acc
            if cuda:
                host = torch.empty((), pin_memory=True)
                host.copy_(mean, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                pending.append((res.steps, host, event))
            else:
                pending.append((res.steps, mean.clone(), None))
            loss_acc, n_acc = torch.zeros((), device=dev), 0
            while len(pending) > (1 if step + 1 < cfg.steps else 0):
                diverged |= _read_loss(pending.popleft(), res)
            if diverged:
                break
        if cfg.eval_every and res.steps % cfg.eval_every == 0 and res.steps < cfg.steps:
            top1, _ = _evaluate(model, data.val_x, data.val_y, data, cfg, autocast)
            res.val_curve.append([res.steps, top1])
    while pending:
        diverged |= _read_loss(pending.popleft(), res)
    if cuda:
        stream.synchronize()
    res.train_s = round(time.perf_counter() - t_loop, 3)
    res.images_per_s = round(res.steps * cfg.batch_size / max(res.train_s, 1e-9), 1)
    res.phases["train"] = res.train_s
    t_eval = time.perf_counter()
    if diverged:
        res.status, res.reason = "nan", f"training loss not finite by step {res.train_curve[-1][0]}"
    else:
        res.val_top1, res.val_loss = _evaluate(model, data.val_x, data.val_y, data, cfg, autocast)
        if cfg.test and data.test_x is not None:
            res.test_top1, res.test_loss = _evaluate(model, data.test_x, data.test_y, data, cfg, autocast)
        if not math.isfinite(res.val_loss):
            res.status, res.reason = "nan", "validation loss not finite"
    res.phases["eval"] = round(time.perf_counter() - t_eval, 3)
    res.peak_mem_mb = round(torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else
                            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _capture(step, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, lr_t: torch.Tensor,
             warm: bool):
    """Capture `step` (forward, loss, backward, clipping, AdamW) as one CUDA graph and return a
    function that runs it on a batch. The warm-up before capture runs at learning rate 0 (AdamW
    with lr 0 and decoupled decay leaves every weight as it is) and the optimizer's state is then
    cleared, so the run trains exactly `steps` steps. Capture is thread-local: runs in other threads
    of the process keep going meanwhile. One warm-up step when this process has captured the same
    shapes before (cuDNN's choices are cached), else three."""
    static_x, static_y = x.clone(), y.clone()
    lr_t.fill_(0.0)
    for _ in range(1 if warm else 3):  # on the run's own stream (never the legacy default stream)
        opt.zero_grad(set_to_none=True)
        step(static_x, static_y)
    _reset_optimizer(opt)
    # capture_begin/end rather than `torch.cuda.graph`, whose entry synchronizes the whole device and
    # empties the allocator's cache under the runs of other threads.
    graph = torch.cuda.CUDAGraph()
    with _CAPTURE_LOCK:  # one capture at a time per process
        graph.capture_begin(capture_error_mode="thread_local")
        try:
            static_loss = step(static_x, static_y)
        finally:
            graph.capture_end()

    def run(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        static_x.copy_(xb)
        static_y.copy_(yb)
        graph.replay()
        return static_loss

    run.graph = graph  # keeps the graph (and its memory pool) alive as long as `run`
    return run


def _reset_optimizer(opt: torch.optim.Optimizer) -> None:
    """Zero AdamW's moments and step counts (in place: a captured graph keeps these tensors) and drop
    the gradients."""
    for state in opt.state.values():
        for v in state.values():
            if torch.is_tensor(v):
                v.zero_()
    opt.zero_grad(set_to_none=True)


def _init_qk(model: torch.nn.Module, gain: float) -> None:
    """Start the q and k projections large enough that attention is not uniform at step 0.

    With the backbone's init (std 0.02) both mixers compute ≈ the mean of v over all tokens, so
    every pattern is nearly the same function and a short run cannot tell patterns apart."""
    for m in model.modules():
        if isinstance(m, Attention):
            dim = m.proj.in_features
            torch.nn.init.trunc_normal_(m.qkvg.weight[: 2 * dim], std=gain / dim**0.5)


def _read_loss(item: tuple, res: ProxyResult) -> bool:
    """Record one [step, loss] point; True when the loss is not finite."""
    step, value, event = item
    if event is not None:
        event.synchronize()
    loss = float(value)
    res.train_curve.append([step, round(loss, 5) if math.isfinite(loss) else loss])
    return not math.isfinite(loss)


@torch.no_grad()
def _evaluate(model, x_all: torch.Tensor, y_all: torch.Tensor, data: ProxyData, cfg: ProxyConfig,
              autocast) -> tuple[float, float]:
    """Top-1 (fraction) and mean cross-entropy on a split; one host sync at the end."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x_all.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=x_all.device)
    for i in range(0, x_all.shape[0], cfg.eval_batch_size):
        x = data.normalize(x_all[i : i + cfg.eval_batch_size], cfg.channels_last)
        y = y_all[i : i + cfg.eval_batch_size]
        with autocast():
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
    model.train()
    n = max(1, x_all.shape[0])
    return round(correct.item() / n, 6), round(loss_sum.item() / n, 6)

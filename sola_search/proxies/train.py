"""`train_proxy`: one short training run of a pattern's proxy instance, scored on held-out data.

Read it top to bottom like nanoGPT's train.py: data → model → optimizer → loop → evaluation.
A run never raises for a training failure: divergence, out-of-memory and any other exception end
as a `ProxyResult` with a status and a one-line reason, so a search worker survives them. Bad input
(an unknown variant, a pattern that does not fit, missing data) is a `SolaError` before training.

Speed on a GPU (the proxy model is small, so a step is launch-bound, not FLOP-bound): the dataset
lives on the device as uint8 and is augmented there; the training step is captured once as a CUDA
graph — forward, backward, clipping and the fused AdamW step in one graph launch instead of ~2,000
kernel launches; the loss is read back one logging interval late through pinned memory, so the
host never waits for the device inside the loop.

One proxy model is far too small to fill a GPU, and processes sharing one take turns on it. So
`train_proxies` trains a pack of patterns together on the same batches, every model's step a
branch of the one graph, and their kernels overlap (docs/performance.md: "Packs"). A process runs
one pack at a time on its device; a second caller (a worker's next pack) waits, and the pack training
has it built and captured on a second thread meanwhile, so that the GPU does not idle through a
capture (`_Ahead`)."""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import queue
import resource
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from sola_search.errors import SolaError, is_oom, one_line
from sola_search.proxies.compiled import compile_blocks, eager, graphs_compiled
from sola_search.proxies.config import ProxyConfig, get_preset, seed_list
from sola_search.proxies.data import ProxyData, load_proxy_data, resolve_device
from sola_search.space.backbone import Attention, build_backbone, resolve_pattern
from sola_search.space.pattern import Pattern

STATUSES = ("ok", "nan", "oom", "error")

# `train_proxies` tells its progress callback how the loop is going at most this often (seconds).
PROGRESS_EVERY_S = 5.0

# Input shapes this process has run eager steps with before (a capture's warm-up steps, or `warm_up`'s), by
# thread and stream group → the largest pack run so: cuDNN's autotuning, lazily loaded kernels and each
# stream's cuBLAS workspace (cuBLAS and cuDNN handles are the thread's own) are then in place, so a pack no
# larger is captured without eager warm-up steps (else `CAPTURE_WARM_STEPS` first: a capture cannot create a
# handle or workspace).
# With compiled blocks also the (stage, mixer) pairs compiled for those shapes: a new pair compiles
# in the warm-up steps, never inside a capture.
_CAPTURED: dict[tuple, int] = {}
_COMPILED_PAIRS: dict[tuple, set[tuple[int, str]]] = {}
# Those eager steps before a thread's first capture of a shape: one is enough (handles, workspaces and compiled
# blocks are made at a first call); three cost a worker's warm-up 2.5 s and its first pack prepared ahead 1.5 s,
# with the same results (the bench's `--capture-warm-steps`; docs/performance.md, thirty-first session).
CAPTURE_WARM_STEPS = 1


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
    val_by_group: dict[str, float] = field(default_factory=dict)  # val top-1 per difficulty, where the data
    #   has groups (recall: per pair count, keys "2".."24")
    steps: int = 0  # optimizer steps completed
    wall_s: float = 0.0  # the whole call: data (unless cached or given), model, capture, loop, evaluation
    phases: dict[str, float] = field(default_factory=dict)  # seconds: data, build, capture, train, eval, cleanup
    train_s: float = 0.0  # the training loop only
    images_per_s: float = 0.0  # training images per second of the loop
    peak_mem_mb: float = 0.0  # CUDA: peak allocated by the run's whole pack (`packed` patterns); CPU: the
    #   process's peak RSS
    device: str = ""
    mode: str = ""  # eager | cuda-graphs, with "+compiled-blocks" when the blocks were compiled
    notes: str = ""  # e.g. why CUDA graphs were not used
    pattern: str = ""
    variant: str = ""
    params: int = 0
    packed: int = 1  # models trained together in this call (`train_proxies`); phases and wall are theirs
    seed: int = 0  # the run's seed: its initial weights and its batches

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
    return train_proxies([pattern], config, data)[0]


def train_proxies(patterns: list[str | Pattern], config: ProxyConfig | None = None,
                  data: ProxyData | None = None, *, seeds: Sequence[int] | None = None,
                  progress: Callable[[dict], None] | None = None,
                  progress_every: float = PROGRESS_EVERY_S, prime: bool = False) -> list[ProxyResult]:
    """Train several patterns' proxies together, one result each, as `train_proxy` would alone.

    Why: one proxy is too small to fill a GPU, and runs in separate processes take turns on it.
    Here the models of one seed see the same batches (one seeded stream, drawn and augmented once)
    and, on a GPU, one CUDA graph holds every model's training step on its own stream, so their
    small kernels run side by side. Each model's weights, batches and arithmetic are those of its
    run alone. A run that diverges ends as `nan` without stopping the others; an exception ends
    them all.

    `seeds`, if given, is each model's seed, one per pattern (default: the config's for all): a
    seed decides both the initial weights and the batches (their order and augmentation), so that
    the spread over seeds is the whole run-to-run spread; models of one seed share one stream.

    `progress`, if given, is called from the training loop at most every `progress_every` seconds
    with {phase, step, steps, images_per_s, eta_s}: a long run is not silent. It reads only the
    host's clock, so it adds no device synchronisation to the loop.

    `prime` (`warm_up`'s): the pack built and, on a GPU, only what a process pays once for its shapes
    (`_prime`); nothing trained or scored."""
    t0 = time.perf_counter()
    cfg = config if config is not None else get_preset("default" if torch.cuda.is_available() else "quick")
    if not patterns:
        raise SolaError("no patterns to train")
    patterns = [resolve_pattern(p, cfg.variant) for p in patterns]
    seeds = [cfg.seed] * len(patterns) if seeds is None else list(seeds)
    if len(seeds) != len(patterns):
        raise SolaError(f"{len(seeds)} seeds given for {len(patterns)} patterns: expected one seed per pattern")
    configs = {s: cfg.replace(seed=s) for s in dict.fromkeys(seeds)}  # checks each seed; one data stream each
    dev = data.device if data is not None else resolve_device(cfg.device)
    results = [ProxyResult(status="ok", device=_describe(dev), pattern=str(p), variant=cfg.variant,
                           packed=len(patterns), seed=s) for p, s in zip(patterns, seeds, strict=True)]
    if data is not None and data.resolution != cfg.resolution:
        raise SolaError(f"data at {data.resolution}px given for a proxy at {cfg.resolution}px")
    phases: dict[str, float] = {}
    try:
        if data is None:  # missing or malformed data is a SolaError; running out of memory here is 'oom'
            data = load_proxy_data(cfg, dev)
        phases["data"] = round(time.perf_counter() - t0, 3)
    except SolaError:
        raise
    except Exception as e:  # noqa: BLE001 — a worker must survive whatever a training run does
        _failed(results, e)
    request = _Request(patterns, [configs[s] for s in seeds], data, results)

    def run(prepared: _Prepared | None) -> None:
        try:
            if data is not None:
                with _on_device(dev):
                    if prime:
                        _prime(patterns, request.configs, data, results, phases)
                    else:
                        _train_on(patterns, request.configs, data, results, phases, progress, progress_every,
                                  prepared)
        except SolaError:
            raise
        except Exception as e:  # noqa: BLE001 — a worker must survive whatever a training run does
            _failed(results, e)
        finally:
            _clean_up(dev, results, phases)

    with _AHEAD.turn(request) as prepared:  # one pack on the device at a time; cleaned up before the next
        phases.update(request.phases)
        try:
            _DEVICE.run(dev, lambda: run(prepared))
        finally:
            for res in results:
                res.phases = dict(phases)
                res.wall_s = round(time.perf_counter() - t0 - phases.get("queued", 0.0), 3)
    return results


class _DeviceThread:
    """One long-lived thread for one kind of a process's GPU work (the CPU works on the caller's thread).

    Why: cuBLAS and cuDNN handles belong to a thread (and each stream's cuBLAS workspace to its
    handle), and a capture cannot create them: a thread's first capture follows eager warm-up steps.
    A worker's packs come on Ray's threads (`run --ahead 1`: two); they all train on `_DEVICE`, and
    the next pack is prepared on `_PREPARER` while one trains (`_Ahead`)."""

    def __init__(self, name: str):
        self.name = name
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def run(self, dev: torch.device, fn: Callable[[], Any]) -> Any:
        """`fn()` on this thread for a GPU (already there: at once), on the caller's for the CPU;
        its value, or its exception raised here."""
        if threading.current_thread() is self._thread:
            return fn()
        return self.start(dev, fn).wait()

    def start(self, dev: torch.device, fn: Callable[[], Any]) -> _Job:
        """`fn()` on this thread for a GPU, without waiting for it; for the CPU at once, on the caller's."""
        job = _Job()
        if dev.type != "cuda":
            job.finish(fn)
            return job
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._thread.start()
        self._jobs.put((fn, job))
        return job

    def _serve(self) -> None:
        while True:
            fn, job = self._jobs.get()
            job.finish(fn)


class _Job:
    """A function given to a `_DeviceThread`: wait() for its value or its exception."""

    def __init__(self):
        self.done, self.value, self.error = threading.Event(), None, None

    def finish(self, fn: Callable[[], Any]) -> None:
        try:
            self.value = fn()
        except BaseException as e:  # noqa: BLE001 — raised again on the waiting thread
            self.error = e
        finally:
            self.done.set()

    def wait(self) -> Any:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


_DEVICE = _DeviceThread("sola-device")
_PREPARER = _DeviceThread("sola-prepare")


def _failed(results: list[ProxyResult], e: BaseException) -> None:
    for res in results:
        res.status, res.reason = ("oom" if is_oom(e) else "error"), one_line(e)


def _clean_up(dev: torch.device, results: list[ProxyResult], phases: dict[str, float]) -> None:
    """After a pack, on its device: the collector where it failed, and the allocator's cache where memory
    runs low."""
    t_clean = time.perf_counter()
    if any(r.status != "ok" for r in results):
        gc.collect()  # an exception's traceback holds the run's frames, and their tensors, in cycles
    if dev.type == "cuda" and (any(r.status == "oom" for r in results) or _memory_low(dev)):
        # A dead graph's private memory pool returns to the device only here, and a capture cannot
        # free memory: without this a worker's graphs fill the GPU, pack after pack.
        torch.cuda.empty_cache()
    phases["cleanup"] = round(time.perf_counter() - t_clean, 3)


def warm_up(config: ProxyConfig, data: ProxyData, pack: int = 1, seeds: int = 1) -> ProxyResult:
    """Pay a process's one-off costs before its first real run: a full pack of an alternating pattern
    (both mixers in every stage, at every stage's shapes), `pack` patterns with `seeds` seeds each,
    primed (`_prime`: built, and on a GPU one eager step and one evaluation batch, nothing captured
    or trained), so that compiled blocks, lazily loaded kernels, each stream's workspace and the kept
    models (one per seed's initial weights) are in place. A worker that prepares its
    next pack while one trains (`run --ahead 1`) pays that thread's first preparation beside its
    first pack's training, not here: preparing it here too made a warm-up of 19.9 s (13.5 without)
    and ended the first two packs later (docs/performance.md, issue 16, thirty-first session)."""
    from sola_search.space import get_variant

    mixed = "-".join("".join("LS"[i % 2] for i in range(d)) for d in get_variant(config.variant).depths)
    cfg = config.replace(steps=2, warmup_steps=1, log_points=1, test=False)
    # Without CUDA graphs a GPU's pack trains its two steps: its eager steps are what load its kernels.
    prime = data.device.type != "cuda" or cfg.cuda_graphs
    return train_proxies([mixed] * (pack * seeds), cfg, data, seeds=seed_list(config.seed, seeds) * pack,
                         prime=prime)[0]


def _on_the_device(dev: torch.device, fn: Callable[[], Any], thread: _DeviceThread | None = None) -> Any:
    """`fn()` as a pack's work runs: holding the device (`device_turn`), on its thread (`_DEVICE`, or
    `thread`), with its settings and stream (`_on_device`)."""

    def on_device():
        with _on_device(dev):
            return fn()

    with device_turn():
        return (thread or _DEVICE).run(dev, on_device)


def _memory_low(dev: torch.device) -> bool:
    """Less than a quarter of the device's memory free (all processes on it counted)."""
    free, total = torch.cuda.mem_get_info(dev)
    return free < total / 4


def _describe(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return "cpu"


# The process's CUDA streams per device and group: a pack runs on group 0's first (never on the legacy
# default stream, which a graph capture may not use), each of its models on one of the others; a pack
# prepared ahead (`_Ahead`) is built and captured on group 1's, apart from the pack training meanwhile.
_STREAMS: dict[tuple[torch.device, int], list[torch.cuda.Stream]] = {}


def _streams(dev: torch.device, n: int, group: int = 0) -> list[torch.cuda.Stream]:
    """The pack's stream (index 0) and n side streams, one per model of a pack (kept: CUDA hands out
    streams from a small pool)."""
    streams = _STREAMS.setdefault((dev, group), [])
    while len(streams) < n + 1:
        streams.append(torch.cuda.Stream(dev))
    return streams[: n + 1]


@contextlib.contextmanager
def _on_device(dev: torch.device):
    """On a GPU, for one pack's run: TF32 matmuls (MALA's fp32 kᵀv), cuDNN autotuning, the device
    and the pack's own stream; the settings are restored afterwards."""
    if dev.type != "cuda":
        yield
        return
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.benchmark = True
    try:
        torch.cuda.set_device(dev)
        with torch.cuda.stream(_streams(dev, 0)[0]):
            yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cudnn.benchmark = saved[1]


class _Fork:
    """Run one function per model side by side: on a GPU each on its own stream, forked from and
    joined back to the run's stream (inside a capture that makes parallel branches of one graph);
    on the CPU one after the other."""

    def __init__(self, dev: torch.device, n: int, group: int = 0):
        self.streams = _streams(dev, n, group) if dev.type == "cuda" else None
        self.group = group

    @property
    def main(self) -> torch.cuda.Stream | None:
        return self.streams[0] if self.streams else None

    def __call__(self, fns: list) -> list:
        if self.streams is None:
            return [fn() for fn in fns]
        main, outs = self.streams[0], []
        for fn, side in zip(fns, self.streams[1:], strict=False):
            side.wait_stream(main)
            with torch.cuda.stream(side):
                outs.append(fn())
        for side in self.streams[1 : len(fns) + 1]:
            main.wait_stream(side)
        return outs


@dataclass
class _Model:
    """One pattern's run inside a pack: its model, optimizer, training step and result."""

    res: ProxyResult
    model: torch.nn.Module
    params: list
    opt: torch.optim.Optimizer
    step: Any = None  # (x, y) -> loss, eager or compiled; on a GPU captured into the pack's graph
    loss_acc: torch.Tensor | None = None
    n_acc: int = 0
    pending: deque = field(default_factory=deque)  # (step, host loss, event): read one interval late
    diverged: bool = False
    stream: int = 0  # which of the pack's data streams (one per seed) it trains on


@dataclass
class _Pack:
    """What every phase of a pack's run shares: the config and data, the models' runs, the streams
    they run on, and the arithmetic (bf16 autocast; on a GPU the learning rate as a device tensor)."""

    cfg: ProxyConfig
    data: ProxyData
    fork: _Fork
    bf16: bool
    runs: list[_Model] = field(default_factory=list)
    lr_t: torch.Tensor | None = None

    @property
    def cuda(self) -> bool:
        return self.data.device.type == "cuda"

    @property
    def compiled(self) -> bool:
        """Compiled blocks: asked for, and on a GPU Triton targets (the CPU runs eager, its results as they were)."""
        return self.cuda and self.cfg.compile == "blocks" and triton_targets(self.data.device)

    def autocast(self):
        return torch.autocast(self.data.device.type, dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=False)


@dataclass
class _Prepared:
    """A pack built and ready to train: its models and optimizers, data streams and first batches, and
    on a GPU its captured training step (and, prepared ahead, its evaluation graph)."""

    pack: _Pack
    batches: list
    first: list
    graphed: Any
    eval_graph: Any = None


def _prepare(patterns: list[Pattern], configs: list[ProxyConfig], data: ProxyData, results: list[ProxyResult],
             phases: dict[str, float], group: int = 0, capture: bool = True) -> _Prepared:
    """Build (data's first batch included) and capture, each phase's seconds into `phases`. `configs`: each
    model's (they differ only in the seed); `group`: the streams it is captured on (`_streams`); without
    `capture` only the eager steps a first capture of these shapes needs (`_prime`)."""
    cfg, dev = configs[0], data.device
    bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and dev.type == "cuda")
    pack = _Pack(cfg, data, _Fork(dev, len(patterns), group), bf16)
    streams = list(dict.fromkeys(c.seed for c in configs))  # one data stream per seed
    batches = [_batches(cfg.replace(seed=s), data) for s in streams]
    t_build = time.perf_counter()
    _build_pack(pack, patterns, configs, results)
    for run, c in zip(pack.runs, configs, strict=True):
        run.stream = streams.index(c.seed)
    first = [next(b) for b in batches]
    t_capture = time.perf_counter()
    phases["build"] = round(t_capture - t_build, 3)
    graphed = _set_up_steps(pack, first, capture)
    if pack.cuda:
        pack.fork.main.synchronize()
    phases["capture"] = round(time.perf_counter() - t_capture, 3)
    return _Prepared(pack, batches, first, graphed)


def _prime(patterns: list[Pattern], configs: list[ProxyConfig], data: ProxyData, results: list[ProxyResult],
           phases: dict[str, float]) -> None:
    """A pack as `warm_up` runs it: built (its models then kept by the pool) and, on a GPU, one eager
    step (at learning rate 0, then the optimizers cleared) and one evaluation batch, each recorded as
    run for these shapes, so that the next pack of them captures its step and evaluation without eager
    steps. Nothing captured, trained or scored: a pack's capture and evaluation are its own (each pack
    captures its graphs), so a warm-up that did them paid ~2 s twice (docs/performance.md, issue 16)."""
    prepared = _prepare(patterns, configs, data, results, phases, capture=False)
    pack = prepared.pack
    if pack.cuda and pack.cfg.cuda_graphs:
        t_eval = time.perf_counter()
        _GraphedEval(pack, pack.runs, _splits(pack)[1], capture=False)
        pack.fork.main.synchronize()
        phases["eval"] = round(time.perf_counter() - t_eval, 3)
    _release(pack)


def _train_on(patterns: list[Pattern], configs: list[ProxyConfig], data: ProxyData, results: list[ProxyResult],
              phases: dict[str, float], progress=None, progress_every: float = PROGRESS_EVERY_S,
              prepared: _Prepared | None = None) -> None:
    """The pack's run, phase by phase, each phase's seconds into `phases`: build and capture (unless
    `prepared` ahead: then they cost this pack's wall nothing), train, eval."""
    if prepared is None:
        if data.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(data.device)
        prepared = _prepare(patterns, configs, data, results, phases)
    elif prepared.pack.cuda:  # its streams were group 1's: it trains on this pack's, once its set-up is done
        torch.cuda.current_stream().wait_stream(prepared.pack.fork.main)
        prepared.pack.fork = _Fork(data.device, len(patterns))
    pack = prepared.pack
    t_loop = time.perf_counter()
    _train_loop(pack, prepared.batches, prepared.first, prepared.graphed, progress, progress_every)
    train_s = round(time.perf_counter() - t_loop, 3)
    phases["train"] = train_s
    t_eval = time.perf_counter()
    for run in pack.runs:
        run.res.train_s = train_s
        run.res.images_per_s = round(run.res.steps * pack.cfg.batch_size / max(train_s, 1e-9), 1)
        if run.diverged:
            run.res.status, run.res.reason = "nan", f"training loss not finite by step {run.res.train_curve[-1][0]}"
    _evaluate_pack(pack, prepared.eval_graph)
    phases["eval"] = round(time.perf_counter() - t_eval, 3)
    _release(pack)


@dataclass
class _Request:
    """A pack waiting for the device (`_Ahead`): what it trains, and what the pack on the device prepared
    for it."""

    patterns: list[Pattern]
    configs: list[ProxyConfig]
    data: ProxyData | None
    results: list[ProxyResult]
    state: str = "posted"  # posted → taken (being prepared) → done | failed; or withdrawn by its caller
    prepared: _Prepared | None = None
    phases: dict[str, float] = field(default_factory=dict)


class _Ahead:
    """One pack on a process's device at a time, and the next one prepared while this one trains.

    Why: building a pack and capturing its step as a CUDA graph takes about a second of host time,
    in which the GPU would idle (docs/performance.md, issue 16). A caller that finds the device busy
    (a worker's next pack) posts its request and waits; the pack training takes it once and has it
    built and captured on other streams by a second thread (`_PREPARER`) while it goes on feeding the
    device. The next pack then starts training the moment this one ends."""

    def __init__(self):
        self.device = threading.Lock()
        self._slot = threading.Lock()
        self.request: _Request | None = None

    @contextlib.contextmanager
    def turn(self, request: _Request):
        """Hold the device for `request`'s pack; yields what was prepared for it ahead, or None.
        Seconds spent waiting go to `request.phases["queued"]`, and those the previous pack spent
        preparing it to `request.phases["ahead"]`."""
        if not self.device.acquire(blocking=False):
            with self._slot:
                if self.request is None and request.data is not None:
                    self.request = request
            t = time.perf_counter()
            self.device.acquire()
            request.phases["queued"] = round(time.perf_counter() - t, 3)
        try:
            with self._slot:
                if self.request is request:
                    self.request, request.state = None, "withdrawn"
            yield request.prepared if request.state == "done" else None
        finally:
            request.prepared = None  # its pack's models are the run's to release
            self.device.release()

    def take(self, dev: torch.device) -> _Request | None:
        """The request waiting for `dev`, for the pack on it to prepare (each request once), or None."""
        with self._slot:
            request = self.request
            if request is None or request.state != "posted" or request.data.device != dev:
                return None
            self.request, request.state = None, "taken"
            return request

    @staticmethod
    def prepare(request: _Request) -> None:
        """Build and capture `request`'s pack now, on stream group 1, the process's random state as it
        was (a model built here seeds the CPU's generator; the pack training meanwhile must not see
        it). A failure leaves the request to prepare itself when its turn comes, and say why there."""
        t0, phases = time.perf_counter(), {}
        dev = request.data.device
        cuda = dev.type == "cuda"
        try:
            with torch.random.fork_rng(devices=[]), (torch.cuda.device(dev) if cuda else contextlib.nullcontext()), \
                    (torch.cuda.stream(_streams(dev, 0, 1)[0]) if cuda else contextlib.nullcontext()):
                prepared = _prepare(request.patterns, request.configs, request.data, request.results, phases, group=1)
                prepared.eval_graph = _GraphedEval.ahead(prepared.pack)
            request.prepared, request.state = prepared, "done"
            request.phases.update(build=0.0, capture=0.0, ahead=round(time.perf_counter() - t0, 3),
                                  ahead_build=phases["build"], ahead_capture=phases["capture"])
        except Exception:  # noqa: BLE001 — the request's own turn meets the error again and reports it
            request.prepared, request.state = None, "failed"


_AHEAD = _Ahead()


@contextlib.contextmanager
def device_turn():
    """Hold this process's device as a pack does (`_Ahead`), once the pack on it has left."""
    with _AHEAD.device:
        yield


# The pack on the device hands the next one to be prepared once it has run this many steps (its own
# first steps queued), and while at least as many are left.
AHEAD_STEPS = 8
# On a GPU, at most this many steps queued on the device: the loop waits on an event (the interpreter's lock
# released) instead of inside a graph launch that waits for room in the device's queue, which held up the
# thread preparing the next pack: its preparation took 15.8-16.2 s beside the training, 2.3-3.2 s with 2
# (`bench/compile_blocks.py --queue-steps`, docs/performance.md, twenty-fourth session). None: no limit.
QUEUE_STEPS: int | None = 2


def _batches(cfg: ProxyConfig, data: ProxyData):
    """Data: endless augmented batches drawn on the device from the seed's generator, shared by the
    pack's models of that seed (the models' weights come from the global RNG, so neither stream
    moves the other)."""
    gen = torch.Generator(device=data.device)
    gen.manual_seed(cfg.seed)
    return data.batches(cfg.batch_size, gen, cfg.augment, cfg.max_train)


def _build_pack(pack: _Pack, patterns: list[Pattern], configs: list[ProxyConfig], results: list[ProxyResult]) -> None:
    """Build: each model from its seed as it would be alone, with its optimizer. On a GPU the learning
    rate is one device tensor that every optimizer reads, so that the whole step (optimizer included)
    can be one CUDA graph."""
    cfg, dev = pack.cfg, pack.data.device
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    pack.runs = [_build(p, c, pack.data, res, fmt, pack.autocast, pack.compiled)
                 for p, c, res in zip(patterns, configs, results, strict=True)]
    pack.lr_t = torch.full((), cfg.lr, device=dev) if pack.cuda else None
    for run in pack.runs:
        for g in run.opt.param_groups:
            g["lr"] = pack.lr_t if pack.cuda else cfg.lr


def _set_up_steps(pack: _Pack, first: list[tuple[torch.Tensor, torch.Tensor]], capture: bool = True):
    """Capture (the execution mode): every model's whole training step in one CUDA graph on a GPU,
    captured on the first batch of each data stream (warm-up steps first unless this process has
    run these shapes, and compiled these blocks, before), else eager; compiled blocks either way when
    asked (on a GPU). Without `capture` only those warm-up steps. Returns the graph's runner, or None."""
    cfg, data, runs = pack.cfg, pack.data, pack.runs
    mode, notes, graphed = "eager", "", None
    graphs_before = graphs_compiled() if pack.compiled else 0
    if pack.cuda and cfg.cuda_graphs:
        try:
            shapes = (tuple(first[0][0].shape), str(data.device), pack.bf16, cfg.variant, cfg.width, pack.compiled,
                      threading.get_ident(), pack.fork.group)
            pairs = {(i, kind) for run in runs for i, kind in _mixers(run.model)} if pack.compiled else set()
            warm = len(runs) <= _CAPTURED.get(shapes, 0) and pairs <= _COMPILED_PAIRS.get(shapes, set())
            xy = [(data.normalize(x, cfg.channels_last), y) for x, y in first]
            graphed = _capture(runs, pack.fork, xy, pack.lr_t, warm=warm, capture=capture)
            _CAPTURED[shapes] = max(len(runs), _CAPTURED.get(shapes, 0))
            _COMPILED_PAIRS.setdefault(shapes, set()).update(pairs)
            mode = "cuda-graphs" if capture else "eager"
        except Exception as e:  # noqa: BLE001 — eager still works; say why graphs did not
            if is_oom(e):
                raise
            notes = f"CUDA graphs off: {one_line(e)}"
            for run in runs:
                _reset_optimizer(run.opt)
    if pack.compiled:
        mode += "+compiled-blocks"
        if graphed is not None:
            notes = f"{graphs_compiled() - graphs_before} graphs compiled"
    for run in runs:
        run.res.mode, run.res.notes = mode, notes
        run.res.params = sum(p.numel() for p in run.model.parameters())
    return graphed


def _train_loop(pack: _Pack, batches, first, graphed, progress, progress_every: float) -> None:
    """Train: `steps` steps of every model that has not diverged, the loss read back one logging
    interval late, validation every `eval_every` steps, progress from the host's clock; returns once
    the device has finished, and the next pack, when it was given one to prepare, is ready."""
    cfg, data, runs, cuda = pack.cfg, pack.data, pack.runs, pack.cuda
    log_every = max(1, cfg.steps // cfg.log_points)
    for run in runs:  # on the loop's stream: a tensor freed while its kernels are queued must be this stream's
        run.loss_acc = torch.zeros((), device=data.device)
    t_loop = time.perf_counter()
    report_at = t_loop + progress_every if progress is not None else math.inf
    preparing, queued = None, deque()
    try:
        for step in range(cfg.steps):
            live = [run for run in runs if not run.diverged]
            if not live:
                break
            lr = lr_at(step, cfg)
            if cuda:
                pack.lr_t.fill_(lr)
            else:
                for run in live:
                    for g in run.opt.param_groups:
                        g["lr"] = lr
            drawn = first if step == 0 else [next(b) for b in batches]  # one batch per seed's stream
            xy = [(data.normalize(xb, cfg.channels_last), yb) for xb, yb in drawn]
            if graphed is not None:
                losses = graphed(xy)  # every model steps, a diverged one too (its result is final)
            else:
                losses = pack.fork([lambda run=run, b=xy[run.stream]: run.step(*b) for run in live])
            for run, loss in zip(runs if graphed is not None else live, losses, strict=True):
                if not run.diverged:
                    _account(run, loss, step + 1, log_every, cfg.steps, cuda)
            if cuda and QUEUE_STEPS:
                queued.append(torch.cuda.Event())
                queued[-1].record()
                if len(queued) > QUEUE_STEPS:
                    queued.popleft().synchronize()
            if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
                for run in runs:
                    if not run.diverged:
                        correct, _, _ = _evaluate(run.model, data.val_x, data.val_y, data, cfg, pack.autocast)
                        run.res.val_curve.append([step + 1, round(correct.item() / max(1, data.val_x.shape[0]), 6)])
            # The next pack, on a GPU on the thread that prepares packs while this one goes on launching steps:
            # a step's graph launch waits for room in the device's queue, so the loop cannot run far ahead
            # of the device, which idled through 1.55 of a 1.86 s preparation made between the steps (call 2
            # of the twenty-third session). Not beside a GPU pack that trains eagerly (it calls compiled
            # blocks, and the preparation's evaluation graph is captured under the process-wide eager stance).
            if (preparing is None and (graphed is not None or not cuda)
                    and AHEAD_STEPS <= step + 1 <= cfg.steps - AHEAD_STEPS and (request := _AHEAD.take(data.device))):
                preparing = _PREPARER.start(data.device, lambda: _Ahead.prepare(request))
            if (now := time.perf_counter()) >= report_at:  # the host's clock only: no device sync
                report_at = now + progress_every
                rate = (step + 1) / max(now - t_loop, 1e-9)
                progress(dict(phase="train", step=step + 1, steps=cfg.steps,
                              images_per_s=round(rate * cfg.batch_size, 1),
                              eta_s=round((cfg.steps - step - 1) / rate, 1)))
        for run in runs:
            while run.pending:
                run.diverged |= _read_loss(run.pending.popleft(), run.res)
        if cuda:
            pack.fork.main.synchronize()
    finally:
        if preparing is not None:  # its capture uses this pack's settings: it ends before they do
            preparing.wait()


def _splits(pack: _Pack) -> tuple[list[tuple], int]:
    """The splits a pack is scored on, (name, x, y, groups) each, and the number of groups."""
    cfg, data = pack.cfg, pack.data
    splits = [("val", data.val_x, data.val_y, data.val_groups)] + (
        [("test", data.test_x, data.test_y, data.test_groups)] if cfg.test and data.test_x is not None else [])
    return splits, max((int(g.max()) + 1 for _, _, _, g in splits if g is not None and g.numel()), default=0)


def _evaluate_pack(pack: _Pack, prepared: _GraphedEval | None = None) -> None:
    """Evaluate: every model that did not diverge on the validation (and, when asked, test) split,
    one host sync per split; per-group top-1 where the data has groups. On a GPU with CUDA graphs
    the pack's forwards are one graph at the training's batch shape (`_GraphedEval`; `prepared`: the
    one captured with the pack, used when every model is scored); else each model on its own stream,
    eagerly, in batches of `eval_batch_size`."""
    cfg, data = pack.cfg, pack.data
    scored = [run for run in pack.runs if not run.diverged]
    splits, n_groups = _splits(pack)
    graphed = prepared if prepared is not None and len(scored) == len(pack.runs) else None
    if graphed is None and scored and pack.cuda and cfg.cuda_graphs:
        graphed = _GraphedEval.build(pack, scored, n_groups)
    for split, x_all, y_all, groups in splits:
        counts = [] if groups is None else torch.bincount(groups, minlength=n_groups).tolist()
        if graphed is not None:
            sums = graphed(x_all, y_all, groups)
        else:
            sums = pack.fork([lambda run=run, x=x_all, y=y_all, g=groups:
                              _evaluate(run.model, x, y, data, cfg, pack.autocast, g, n_groups) for run in scored])
        for run, (correct, loss_sum, by_group) in zip(scored, sums, strict=True):
            n = max(1, x_all.shape[0])
            top1, loss = round(correct.item() / n, 6), round(loss_sum.item() / n, 6)
            setattr(run.res, f"{split}_top1", top1)
            setattr(run.res, f"{split}_loss", loss)
            if split == "val" and by_group is not None:
                run.res.val_by_group = _per_group(by_group, counts)
    del graphed  # its graph's memory pool with it
    for run in scored:
        if not math.isfinite(run.res.val_loss):
            run.res.status, run.res.reason = "nan", "validation loss not finite"


# Evaluation graphs' shapes this process has run eagerly once (by thread and stream group, as
# `_CAPTURED`), with up to how many models: a first run loads kernels and workspaces lazily, which a
# capture may not.
_EVAL_WARM: dict[tuple, int] = {}
_IGNORE = -100  # the padding rows' label: cross-entropy skips it, no argmax equals it
# Evaluation through compiled blocks' training forward (`_GraphedEval._eval_mode`); the bench's
# `--eval-blocks eager` turns it off to measure it.
EVAL_COMPILED = True


class _GraphedEval:
    """A pack's evaluation on a GPU as one CUDA graph: every scored model's forward on a batch of
    the training's shape (one static buffer; the split's last batch padded, its padding labelled
    `_IGNORE`), and the sums (correct, loss, correct per group) accumulated on the device, replayed
    batch by batch. Why: eager evaluation at `eval_batch_size` ran each convolution at shapes training
    never ran, 6-9 s of a worker's warm-up spent choosing their kernels, and a pack's evaluation was
    hundreds of eager launches a batch (docs/performance.md, issue 16). Same sums as the eager way up
    to the arithmetic of another batch size."""

    def __init__(self, pack: _Pack, scored: list[_Model], n_groups: int, capture: bool = True):
        cfg, data = pack.cfg, pack.data
        dev, b = data.device, cfg.batch_size
        self.x = torch.zeros((b, *data.val_x.shape[1:]), dtype=data.val_x.dtype, device=dev)
        self.y = torch.full((b,), _IGNORE, dtype=torch.int64, device=dev)
        self.g = torch.zeros(b, dtype=torch.int64, device=dev)
        self.sums = [(torch.zeros((), dtype=torch.int64, device=dev), torch.zeros((), dtype=torch.float64, device=dev),
                      torch.zeros(n_groups, dtype=torch.int64, device=dev) if n_groups else None) for _ in scored]
        self.models = [run.model for run in scored]

        def batch() -> None:
            x = data.normalize(self.x, cfg.channels_last)
            with pack.autocast():
                outs = pack.fork([lambda m=m: m(x).float().detach() for m in self.models])
            for out, (correct, loss_sum, by_group) in zip(outs, self.sums, strict=True):
                loss_sum += F.cross_entropy(out, self.y, reduction="sum", ignore_index=_IGNORE).double()
                hit = out.argmax(1) == self.y
                correct += hit.sum()
                if by_group is not None:
                    by_group.index_add_(0, self.g, hit.long())

        self.pack, self.batch, self.graph = pack, batch, None
        if not pack.cuda:  # the CPU runs the same batches eagerly (what the tests check the padding with)
            return
        key = (str(dev), tuple(self.x.shape), pack.compiled, n_groups, threading.get_ident(), pack.fork.group)
        with torch.no_grad(), self._eval_mode():
            if _EVAL_WARM.get(key, 0) < len(scored):
                batch()
                _EVAL_WARM[key] = len(scored)
            if capture:
                self.graph, _ = _graph_of(batch)

    @classmethod
    def build(cls, pack: _Pack, scored: list[_Model], n_groups: int) -> _GraphedEval | None:
        """The graph, or None where it cannot be captured (then evaluation runs eagerly, as before)."""
        try:
            return cls(pack, scored, n_groups)
        except Exception as e:  # noqa: BLE001 — eager evaluation still works
            if is_oom(e):
                raise
            return None

    @classmethod
    def ahead(cls, pack: _Pack) -> _GraphedEval | None:
        """The graph of every model of a pack being prepared ahead (it reads the weights where they will
        be once trained), or None where evaluation will be built after training."""
        if not (pack.cuda and pack.cfg.cuda_graphs and pack.runs):
            return None
        return cls.build(pack, pack.runs, _splits(pack)[1])

    @contextlib.contextmanager
    def _eval_mode(self):
        """The models as evaluation runs them. Compiled blocks were compiled for training (train mode,
        grad on): at drop-path 0 train mode computes eval mode's function, so they stay so and
        evaluation runs their compiled training forward, its saved activations dropped with each batch
        (a pack's evaluation 0.45 s against 0.88-0.93 eager); at other rates eval mode, blocks eager."""
        if self.pack.compiled and self.pack.cfg.drop_path_rate == 0 and EVAL_COMPILED:
            with torch.enable_grad():
                yield
            return
        for m in self.models:
            m.eval()
        try:
            with eager(*self.models):
                yield
        finally:
            for m in self.models:
                m.train()

    def __call__(self, x_all: torch.Tensor, y_all: torch.Tensor, groups: torch.Tensor | None) -> list[tuple]:
        """Each model's (correct, loss sum, correct per group or None) over one split."""
        for correct, loss_sum, by_group in self.sums:
            correct.zero_()
            loss_sum.zero_()
            if by_group is not None:
                by_group.zero_()
        b = self.x.shape[0]
        for i in range(0, x_all.shape[0], b):
            k = min(b, x_all.shape[0] - i)
            self.x[:k].copy_(x_all[i : i + k])
            self.y[:k].copy_(y_all[i : i + k])
            if groups is not None:
                self.g[:k].copy_(groups[i : i + k])
            if k < b:
                self.x[k:].zero_()
                self.y[k:].fill_(_IGNORE)
                self.g[k:].zero_()
            if self.graph is not None:
                self.graph.replay()
            else:
                with torch.no_grad(), self._eval_mode():
                    self.batch()
        return [(c, s, g if groups is not None else None) for c, s, g in self.sums]


def _release(pack: _Pack) -> None:
    """The pack's peak memory into each result, and its models back into the pool once the device
    is done with them."""
    dev = pack.data.device
    peak = round(torch.cuda.max_memory_allocated(dev) / 2**20 if pack.cuda else
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    for run in pack.runs:
        run.res.peak_mem_mb = peak
    if pack.cuda:
        pack.fork.main.synchronize()  # nothing may still use a model when the next run takes it
    for run in pack.runs:
        _MODELS.release(run.model)
        run.step = None  # the step's closure refers back to the run: no cycle left for the collector


def _build(pattern: Pattern, cfg: ProxyConfig, data: ProxyData, res: ProxyResult, fmt, autocast,
           compiled: bool = False) -> _Model:
    """The pattern's proxy model with the config seed's initial weights (its blocks compiled when
    `compiled`), and its AdamW (no weight decay on norms, biases and layer scales; fused and
    capturable on a GPU, its state created here so that a warm process captures without an eager
    warm-up step)."""
    dev = data.device
    cuda = dev.type == "cuda"
    model = _MODELS.acquire(pattern, cfg, data, fmt, compiled)
    params, opt = make_optimizer(model, cfg, dev)
    run = _Model(res=res, model=model, params=params, opt=opt)
    run.step = _eager_step(model, run, cfg, cuda, autocast)
    return run


def make_optimizer(model: torch.nn.Module, cfg: ProxyConfig, dev: torch.device) -> tuple[list, torch.optim.Optimizer]:
    """The proxy's trainable parameters and AdamW (no weight decay on norms, biases and layer scales;
    fused and capturable on a GPU), its state created here, as AdamW would at its first step, so that
    a capture needs no eager step first (and a checkpoint's state can be copied into it)."""
    cuda = dev.type == "cuda"
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [dict(params=[p for p in params if p.ndim > 1], weight_decay=cfg.weight_decay),
              dict(params=[p for p in params if p.ndim <= 1], weight_decay=0.0)]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), fused=cuda, capturable=cuda)
    for p in params:
        opt.state[p] = dict(step=torch.zeros((), dtype=torch.float32, device=dev) if cuda else torch.tensor(0.0),
                            exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
    return params, opt


# On a GPU, MALA through one Triton kernel forward and one backward (`triton_mala`): a pack's model-step
# 6.07 ms against 6.46 with the compiled formula, the same loss curves within run-to-run noise; and the
# depthwise convolutions through Triton kernels (`triton_dwconv`): the step as cuDNN's (5.97-5.98 ms against
# 6.00-6.02), without cuDNN's autotuning in every worker's warm-up (11.2 s warm against 28-31)
# (docs/performance.md, issue 16). The bench's `--mala torch` and `--dwconv cudnn` turn them off to measure
# them; the CPU always runs the package's and torch's (its results unchanged), and so does a GPU that Triton
# cannot target (`triton_targets`).
FUSED_MALA = True
FUSED_DWCONV = True


def triton_targets(dev: torch.device) -> bool:
    """Whether Triton compiles for `dev`, which compiled blocks and the fused kernels need: a GPU it targets.
    On a GPU it cannot (too old, or no Triton) training steps aside with one warning, where every trial would
    fail in the worker's warm-up: blocks uncompiled, MALA's formula, torch's convolutions (the same function)."""
    if dev.type != "cuda":
        return False
    from torch.utils._triton import has_triton

    if has_triton():
        return True
    warnings.warn(f"{dev}: Triton cannot run here, so the blocks train uncompiled, MALA as its formula and the "
                  "depthwise convolutions as torch's (slower, same function)", stacklevel=2)
    return False


def fused_kernels(dev: torch.device) -> tuple[bool, bool]:
    """Whether a model on `dev` runs (MALA, the depthwise convolutions) through the Triton kernels: each
    switch on, on a GPU that Triton targets; else the formula and torch's convolution."""
    if not ((FUSED_MALA or FUSED_DWCONV) and triton_targets(dev)):
        return False, False
    return FUSED_MALA, FUSED_DWCONV


class _ModelPool:
    """The process's proxy models, kept between runs. Every pattern has the same parameters (the mixer
    is a switch, `SolaVision.set_pattern`), so a run takes a kept model, copies the seed's initial
    weights into it and sets its pattern: the same model a fresh build gives, without the ~0.1 s of
    module construction and initialisation per model (and none of its host-to-device copies). A model
    the pool lacks is a copy of the first one built for its key (`pristine`, never trained): on a GPU
    a copy on the device, where a build draws every weight on the host (a worker's few CPU threads)
    and copies it over, model after model, in the worker's warm-up."""

    def __init__(self):
        self.pristine: dict[tuple, torch.nn.Module] = {}  # build key → its initial model (uncompiled)
        self.spare: dict[tuple, list[torch.nn.Module]] = {}

    def acquire(self, pattern: Pattern, cfg: ProxyConfig, data: ProxyData, fmt, compiled: bool) -> torch.nn.Module:
        dev = data.device
        fused = mala, dwconv = fused_kernels(dev)
        key = (cfg.variant, cfg.width, data.num_classes, data.channels, cfg.layer_scale_init, cfg.drop_path_rate,
               cfg.qk_init, cfg.seed, str(dev), fmt, compiled, fused)
        spare = self.spare.setdefault(key, [])
        if spare:
            model = spare.pop()
            with torch.no_grad():
                for t, t0 in zip(model.state_dict().values(), self.pristine[key].state_dict().values(), strict=True):
                    t.copy_(t0)
        else:
            if key not in self.pristine:
                self.pristine[key] = self._build(cfg, data, fmt)
                if dev.type == "cuda":  # its copies may be made on other streams
                    torch.cuda.current_stream(dev).synchronize()
            model = copy.deepcopy(self.pristine[key])
            if compiled:
                compile_blocks(model)
            if mala:
                from sola_search.proxies.triton_mala import use_fused_mala  # Triton only where it runs

                use_fused_mala(model)
            if dwconv:
                from sola_search.proxies.triton_dwconv import use_fused_dwconv

                use_fused_dwconv(model)
        model.pool_key = key  # where `release` puts it back; a run that raises just drops its models
        return model.set_pattern(pattern).train()

    def release(self, model: torch.nn.Module) -> None:
        for p in model.parameters():
            p.grad = None  # the run's gradients (in its graph's memory) go with the run
        self.spare[model.pool_key].append(model)

    @staticmethod
    def _build(cfg: ProxyConfig, data: ProxyData, fmt) -> torch.nn.Module:
        # The global CPU generator (weights are drawn on the CPU): the seed alone decides them. Not the
        # GPU's, which a pack training meanwhile may be drawing from (`_Ahead`).
        torch.random.default_generator.manual_seed(cfg.seed)
        model = build_backbone(cfg.variant, None, width=cfg.width, num_classes=data.num_classes,
                               in_chans=data.channels, layer_scale_init=cfg.layer_scale_init,
                               drop_path_rate=cfg.drop_path_rate)
        if cfg.qk_init > 0:
            _init_qk(model, cfg.qk_init)
        return model.to(data.device, memory_format=fmt)


_MODELS = _ModelPool()


def _eager_step(model, run: _Model, cfg: ProxyConfig, cuda: bool, autocast):
    """Forward, loss, backward, clipping and the AdamW step. Gradients are unset first, so that a
    captured step allocates its own and never accumulates into the last step's."""

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        run.opt.zero_grad(set_to_none=True)
        with autocast():
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip, foreach=cuda)
        run.opt.step()
        return loss

    return step


def _account(run: _Model, loss: torch.Tensor, steps: int, log_every: int, total: int, cuda: bool) -> None:
    """Add a step's loss; every `log_every` steps queue the mean for the host (through pinned memory,
    read one interval late so that the host never waits for the device inside the loop)."""
    run.loss_acc += loss.detach()
    run.n_acc += 1
    run.res.steps = steps
    if steps % log_every and steps != total:
        return
    mean = run.loss_acc / run.n_acc
    if cuda:
        host = torch.empty((), pin_memory=True)
        host.copy_(mean, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        run.pending.append((steps, host, event))
    else:
        run.pending.append((steps, mean.clone(), None))
    run.loss_acc, run.n_acc = torch.zeros_like(run.loss_acc), 0
    while len(run.pending) > (1 if steps < total else 0):
        run.diverged |= _read_loss(run.pending.popleft(), run.res)


def _graph_of(fn):
    """(a CUDA graph of `fn()`, its output). capture_begin/end rather than `torch.cuda.graph`, whose entry
    synchronizes the whole device and empties the allocator's cache at every pack; thread-local, so that
    the process's other threads (a Ray actor's) are none of the capture's business."""
    graph = torch.cuda.CUDAGraph()
    with _COLLECTOR_PAUSED:
        graph.capture_begin(capture_error_mode="thread_local")
        try:
            out = fn()
        finally:
            graph.capture_end()
    return graph, out


class _CollectorPause:
    """Python's cycle collector off while any thread captures a graph: a collection in the middle of one
    may free an earlier pack's graph, whose destruction a capture under way does not permit; the capture
    then fails and its pack trains eagerly, ~15x slower (call 2 of the twenty-third session: "operation
    not permitted when stream is capturing (function reset)")."""

    def __init__(self):
        self._lock, self._captures, self._was_on = threading.Lock(), 0, False

    def __enter__(self):
        with self._lock:
            if self._captures == 0:
                self._was_on = gc.isenabled()
                gc.disable()
            self._captures += 1

    def __exit__(self, *exc):
        with self._lock:
            self._captures -= 1
            if self._captures == 0 and self._was_on:
                gc.enable()


_COLLECTOR_PAUSED = _CollectorPause()


def _capture(runs: list[_Model], fork: _Fork, xy: list[tuple[torch.Tensor, torch.Tensor]], lr_t: torch.Tensor,
             warm: bool, capture: bool = True):
    """Capture every model's training step (forward, loss, backward, clipping, AdamW) as one CUDA
    graph, a parallel branch per model, and return a function that runs it on a batch per data
    stream (`xy`, one (x, y) per seed) and gives the losses. The warm-up before capture runs at
    learning rate 0 (AdamW with lr 0 and decoupled decay leaves every weight as it is) and the
    optimizers' state is then cleared, so each model trains exactly `steps` steps. No warm-up step
    when this process has captured these shapes with as many models before (the optimizers' state
    already exists), else `CAPTURE_WARM_STEPS`. Without `capture` those steps alone (returns None)."""
    static = [(x.clone(), y.clone()) for x, y in xy]
    lr_t.fill_(0.0)
    steps = [lambda run=run: run.step(*static[run.stream]) for run in runs]
    if not warm:
        for _ in range(CAPTURE_WARM_STEPS):  # on the runs' own streams (never the legacy default stream)
            fork(steps)
        for run in runs:
            _reset_optimizer(run.opt)
    if not capture:
        return None
    graph, static_losses = _graph_of(lambda: fork(steps))

    def run_graph(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        for (static_x, static_y), (xb, yb) in zip(static, batches, strict=True):
            static_x.copy_(xb)
            static_y.copy_(yb)
        graph.replay()
        return static_losses

    run_graph.graph = graph  # keeps the graph (and its memory pool) alive as long as `run_graph`
    return run_graph


def _mixers(model: torch.nn.Module) -> list[tuple[int, str]]:
    """(stage, mixer kind) of each of the model's blocks."""
    return [(i, block.attn.kind) for i, stage in enumerate(model.stages) for block in stage.blocks]


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
              autocast, groups: torch.Tensor | None = None, groups_n: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Correct predictions, summed cross-entropy and (with `groups`, an integer in [0, groups_n) per
    sample) correct predictions per group, as device tensors: the caller reads them once every model
    has been scored."""
    model.eval()
    with eager(model):
        correct, loss_sum, by_group = _scores(model, x_all, y_all, data, cfg, autocast, groups, groups_n)
    model.train()
    return correct, loss_sum, by_group


def _scores(model, x_all, y_all, data, cfg, autocast, groups, groups_n):
    """`_evaluate`'s sums over the split, batch by batch."""
    correct = torch.zeros((), dtype=torch.int64, device=x_all.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=x_all.device)
    by_group = None if groups is None else torch.zeros(int(groups_n), dtype=torch.int64, device=x_all.device)
    for i in range(0, x_all.shape[0], cfg.eval_batch_size):
        x = data.normalize(x_all[i : i + cfg.eval_batch_size], cfg.channels_last)
        y = y_all[i : i + cfg.eval_batch_size]
        with autocast():
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        hit = logits.argmax(1) == y
        correct += hit.sum()
        if by_group is not None:
            by_group.index_add_(0, groups[i : i + cfg.eval_batch_size], hit.long())
    return correct, loss_sum, by_group


def _per_group(by_group: torch.Tensor, counts: list[int]) -> dict[str, float]:
    """{group: top-1} for the groups that have samples."""
    return {str(g): round(c / n, 6) for g, (c, n) in enumerate(zip(by_group.tolist(), counts, strict=True)) if n}

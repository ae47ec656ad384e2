"""A weight-sharing supernet (issue 15): one set of proxy weights trained with feasible patterns
sampled as it goes, then any pattern of the budget scored by evaluation alone.

Every pattern has the same parameters (a block's two mixers share their projections), so one model
serves them all: `SolaVision.set_mixing` gives each sample of a batch its own pattern (both mixers
run, each sample keeps its own). Training is then one static computation whatever the patterns: on a
GPU one CUDA graph (of eager blocks: see `_build_model`), replayed with new patterns copied into its
mask; no model is built, and nothing compiled, per pattern.

Training (`train_supernet`): the proxy's geometry, data stream, optimizer and schedule (warm-up,
then cosine decay over the supernet's own steps, default `STEPS_FACTOR` x the proxy's); each step's
batch is cut into `groups` sample groups, each trained with its own feasible pattern of the budget.
The sampling rule, "balanced": for each group draw `candidates` patterns exactly uniformly from the
feasible set (`FeasibleSet.sample_bits`) and keep the one whose mixers were trained least so far
(per block +1 for choosing the mixer trained less, -1 for the one trained more; the first candidate
on a tie). Why: uniform sampling alone trains a block's softmax only as often as the budget's
patterns use it there (under 8softmax of the small variant's 20 blocks about 4 steps in 10, under a
MACs budget far less in the costly early stages); the rule pushes every block towards half and half
as far as feasible patterns allow and evens the blocks out, while every trained path is still a
pattern the search may propose. How often each block trained each mixer (in pattern-steps: one per
sample group per step) is counted and stored with the weights.

Files in the run directory: `supernet.safetensors` (the weights: a plain SolaVision state dict, so
they load into any pattern's proxy model), `supernet.json` (the configuration that made them, the
mixer counts, the weights' sha256; written last, it marks the supernet done) and, while it trains,
`supernet.ckpt.safetensors` (weights, AdamW state, mixer counts and step in one file, written
atomically every `checkpoint_every` steps). A killed training resumes from its checkpoint: weights
and optimizer state copied in, the data stream replayed to the step (batches drawn and dropped), and
the sampler is a function of (seed, step, counts), so it ends with the weights an uninterrupted run
gives.

Scoring (`Supernet.score`): evaluation only, in eval mode, on the validation split, by a walk over the
call's patterns that computes each prefix of blocks they share once, one mixer per block (`_sums`);
one host read per call."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sola_search.errors import SolaError, is_oom, one_line
from sola_search.files import read_json, write_atomic
from sola_search.proxies.compiled import compile_blocks
from sola_search.proxies.config import ProxyConfig
from sola_search.proxies.data import ProxyData, load_proxy_data, resolve_device
from sola_search.proxies.train import (
    ProxyResult,
    _batches,
    _capture,
    _describe,
    _eager_step,
    _Fork,
    _Model,
    _ModelPool,
    _on_device,
    _reset_optimizer,
    lr_at,
    make_optimizer,
    triton_targets,
)
from sola_search.space.backbone import _nchw, _nhwc, resolve_pattern
from sola_search.space.budget import Budget
from sola_search.space.feasible import FeasibleSet
from sola_search.space.pattern import Pattern

WEIGHTS, META, CHECKPOINT = "supernet.safetensors", "supernet.json", "supernet.ckpt.safetensors"
FORMAT, VERSION = "sola-search-supernet", 1
SAMPLING = "balanced"
DEFAULT_GROUPS = 4  # patterns per training step (sample groups of one batch)
DEFAULT_CANDIDATES = 8  # uniform feasible draws per group, of which the balanced rule keeps one
STEPS_FACTOR = 10  # default supernet steps: 10 x the proxy's (the `long` preset, the reference, is 10 x default)
CHECKPOINT_EVERY = 100
# The prefix walk's cache bound (`Supernet.prefix_chunk`): 1 GiB on a CPU, a quarter of a GPU's free memory when
# the supernet is loaded. `small` at width 0.5 and 64 px keeps ~0.3 MB an image, so 20,000 validation images are
# one chunk of ~6 GB.
PREFIX_CACHE_BYTES = 1 << 30
# What a ProxyConfig says about how a run executes, not what it computes: not part of a supernet's identity.
_RUN_MODE = ("device", "compile", "cuda_graphs", "eval_every", "eval_batch_size", "log_points", "test")


def config_digest(cfg: ProxyConfig) -> str:
    """sha256 of what a proxy config computes (its run-mode fields left out)."""
    d = {k: v for k, v in cfg.to_dict().items() if k not in _RUN_MODE}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class SupernetSpec:
    """What makes a supernet: the run's proxy config (its geometry, data, optimizer, seed), the budget
    whose feasible patterns it trains (costs counted at `resolution`), and its own step count."""

    config: ProxyConfig
    budget: str
    resolution: int = 224
    steps: int | None = None  # None: STEPS_FACTOR x the proxy's steps
    groups: int = DEFAULT_GROUPS
    candidates: int = DEFAULT_CANDIDATES

    def __post_init__(self) -> None:
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise SolaError(f"supernet steps {self.steps!r}: expected a whole number >= 1")
        if not 1 <= self.groups <= self.config.batch_size:
            raise SolaError(f"supernet groups {self.groups}: expected 1 to the batch size ({self.config.batch_size})")
        if self.candidates < 1:
            raise SolaError(f"supernet candidates {self.candidates}: expected at least 1")
        Budget.parse(self.budget)

    @property
    def total_steps(self) -> int:
        return self.steps or STEPS_FACTOR * self.config.steps

    def training_config(self) -> ProxyConfig:
        """The proxy config over the supernet's steps, its warm-up scaled alike."""
        s, c = self.total_steps, self.config
        return c.replace(steps=s, warmup_steps=min(s - 1, round(c.warmup_steps * s / c.steps)))

    def identity(self) -> dict[str, Any]:
        """What supernet.json records and a load compares."""
        c = self.config
        return dict(variant=c.variant, width=c.width, proxy_resolution=c.resolution, proxy_sha256=config_digest(c),
                    budget=str(Budget.parse(self.budget)), resolution=self.resolution, data=c.data,
                    steps=self.total_steps, seed=c.seed, groups=self.groups, candidates=self.candidates,
                    sampling=SAMPLING)


class BalancedSampler:
    """The training's patterns: per sample group, the best of `candidates` uniform feasible draws by
    how much it evens out each block's mixer counts (see the module's docstring). A function of
    (seed, step, counts so far): a resumed training draws what an uninterrupted one would."""

    def __init__(self, feasible: FeasibleSet, seed: int, candidates: int = DEFAULT_CANDIDATES):
        self.feasible, self.seed, self.candidates = feasible, seed, candidates

    def draw(self, step: int, groups: int, counts: np.ndarray) -> np.ndarray:
        """(groups, blocks) bool, softmax where True; `counts` ((2, blocks): linear, softmax) is updated."""
        rng = np.random.default_rng([self.seed, step])
        out = []
        for _ in range(groups):
            cand = self.feasible.sample_bits(self.candidates, rng).astype(bool)
            lin, soft = counts
            gain = np.where(cand, lin - soft, soft - lin).sum(1)
            bits = cand[int(np.argmax(gain))]
            counts[1] += bits
            counts[0] += ~bits
            out.append(bits)
        return np.stack(out)


def _group_rows(batch: int, groups: int) -> np.ndarray:
    """Rows of a batch per sample group (as equal as they can be)."""
    edges = [g * batch // groups for g in range(groups + 1)]
    return np.diff(edges)


def _autocast(dev: torch.device, cfg: ProxyConfig):
    bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and dev.type == "cuda")
    return lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False)


def _build_model(cfg: ProxyConfig, data: ProxyData) -> torch.nn.Module:
    """The proxy model `train_proxy` builds for the config's seed, its blocks not compiled for training
    (whatever `compile` says): on an H200 compiled blocks trained 300 supernet steps slower than eager
    ones (14.0 s against 9.4 s, compilation included) and the mixed forward's scoring through them
    killed the worker process (docs/performance.md, tenth session); CUDA graphs alone carry the GPU
    training. Scoring may compile them (`Supernet.compile`)."""
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    return _ModelPool._build(cfg, data, fmt)


def train_supernet(spec: SupernetSpec, directory: str | Path, data: ProxyData | None = None, *, latency=None,
                   checkpoint_every: int = CHECKPOINT_EVERY, progress=None) -> Supernet:
    """Train the supernet `spec` describes into `directory` (resuming from its checkpoint there),
    or load it when `directory` holds it already (never trained twice). `latency`: the table that
    prices an `ms` budget. `progress(step, steps)` is called after every step."""
    directory = Path(directory)
    if (directory / META).exists():
        return load_supernet(directory, spec.identity(), data)
    cfg = spec.training_config()
    dev = data.device if data is not None else resolve_device(cfg.device)
    data = data if data is not None else load_proxy_data(cfg, dev)
    feasible = FeasibleSet(cfg.variant, Budget.parse(spec.budget).priced(latency), spec.resolution).nonempty()
    with _on_device(dev):
        model, meta = _train(spec, cfg, data, feasible, directory, checkpoint_every, progress)
    return Supernet(model.eval(), data, cfg, meta, directory)


def _train(spec: SupernetSpec, cfg: ProxyConfig, data: ProxyData, feasible: FeasibleSet, directory: Path,
           checkpoint_every: int, progress) -> tuple[torch.nn.Module, dict]:
    """The training loop, top to bottom: model, optimizer, capture, checkpoint, steps, files."""
    t0 = time.perf_counter()
    dev, cuda, n = data.device, data.device.type == "cuda", feasible.variant.num_blocks
    model = _build_model(cfg, data)
    choices = torch.zeros(cfg.batch_size, n, dtype=torch.bool, device=dev)
    model.set_mixing(choices).train()
    params, opt = make_optimizer(model, cfg, dev)
    run = _Model(res=ProxyResult("ok"), model=model, params=params, opt=opt)
    run.step = _eager_step(model, run, cfg, cuda, _autocast(dev, cfg))
    lr_t = torch.full((), cfg.lr, device=dev) if cuda else None
    if cuda:
        for g in opt.param_groups:
            g["lr"] = lr_t
    batches = _batches(cfg, data)
    first = next(batches)
    graphed, mode, notes = None, "eager", ""
    if cuda and cfg.cuda_graphs:  # the whole step, optimizer included, one graph; the mask is its input
        try:
            graphed = _capture([run], _Fork(dev, 1), [(data.normalize(first[0], cfg.channels_last), first[1])],
                               lr_t, warm=False)
            mode = "cuda-graphs"
        except Exception as e:  # noqa: BLE001 — eager still works; say why graphs did not
            if is_oom(e):
                raise
            notes = f"CUDA graphs off: {one_line(e)}"
            _reset_optimizer(opt)
    sampler = BalancedSampler(feasible, cfg.seed, spec.candidates)
    counts = np.zeros((2, n), np.int64)
    ckpt = directory / CHECKPOINT
    start = _restore(ckpt, spec, model, params, opt, counts) if ckpt.exists() else 0
    for _ in range(start - 1):  # the data stream at `start` (batch 0 is `first`)
        next(batches)
    rows = _group_rows(cfg.batch_size, spec.groups)
    log_every = max(1, cfg.steps // cfg.log_points)
    curve, loss_sum, t_loop = [], torch.zeros((), device=dev), time.perf_counter()
    for step in range(start, cfg.steps):
        bits = sampler.draw(step, spec.groups, counts)
        choices.copy_(torch.from_numpy(np.repeat(bits, rows, axis=0)))
        lr = lr_at(step, cfg)
        if cuda:
            lr_t.fill_(lr)
        else:
            for g in opt.param_groups:
                g["lr"] = lr
        xb, yb = first if step == 0 else next(batches)
        x = data.normalize(xb, cfg.channels_last)
        loss = graphed([(x, yb)])[0] if graphed is not None else run.step(x, yb)
        loss_sum += loss.detach()
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            mean = loss_sum.item() / (step + 1 - (curve[-1][0] if curve else start))
            curve.append([step + 1, round(mean, 5) if math.isfinite(mean) else mean])
            loss_sum.zero_()
            if not math.isfinite(mean):
                raise RuntimeError(f"supernet training diverged: loss {mean} by step {step + 1}")
        if checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < cfg.steps:
            _save_checkpoint(ckpt, spec, model, params, opt, counts, step + 1)
        if progress is not None:
            progress(step + 1, cfg.steps)
    meta = dict(format=FORMAT, version=VERSION, identity=spec.identity(), config=cfg.to_dict(),
                num_classes=data.num_classes, channels=data.channels, blocks=n,
                mixer_counts=dict(linear=counts[0].tolist(), softmax=counts[1].tolist()),
                sampling=dict(rule=SAMPLING, groups=spec.groups, candidates=spec.candidates,
                              feasible=feasible.count()),
                params=sum(p.numel() for p in model.parameters()), resumed_from=start, train_curve=curve,
                train_s=round(time.perf_counter() - t_loop, 3), wall_s=round(time.perf_counter() - t0, 3),
                device=_describe(dev), mode=mode, notes=notes, created=datetime.now(UTC).isoformat(timespec="seconds"))
    blob = _safetensors_bytes({k: v for k, v in model.state_dict().items()}, {"format": FORMAT})
    meta["sha256"] = hashlib.sha256(blob).hexdigest()
    write_atomic(directory / WEIGHTS, blob)
    write_atomic(directory / META, json.dumps(meta, indent=2) + "\n")  # last: the supernet is done
    ckpt.unlink(missing_ok=True)
    return model, meta


def _safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)


def _save_checkpoint(path: Path, spec: SupernetSpec, model, params, opt, counts: np.ndarray, step: int) -> None:
    """Weights, AdamW's state, mixer counts and the step: one file, written atomically."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for j, p in enumerate(params):
        for name, t in opt.state[p].items():
            tensors[f"opt.{j}.{name}"] = t if torch.is_tensor(t) else torch.tensor(t)
    tensors["counts"] = torch.from_numpy(counts.copy())
    meta = json.dumps(dict(format=FORMAT, identity=spec.identity(), step=step))
    write_atomic(path, _safetensors_bytes(tensors, {"sola_search": meta}))


def _restore(path: Path, spec: SupernetSpec, model, params, opt, counts: np.ndarray) -> int:
    """Copy a checkpoint into the model, the optimizer (in place: a captured graph keeps their
    tensors) and `counts`; returns its step. One of another supernet is refused."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("sola_search", "null"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 — safe_open has no iterator
    except Exception as e:  # noqa: BLE001 — a cut-off or foreign file: one line
        raise SolaError(f"{path}: not a readable supernet checkpoint ({one_line(e)}); move it away to train "
                        "the supernet from the start") from None
    if not isinstance(meta, dict) or meta.get("identity") != spec.identity():
        raise SolaError(f"{path}: a checkpoint of another supernet ({_differences(meta, spec.identity())}); move it "
                        "away to train this one from the start")
    try:
        with torch.no_grad():
            for k, v in model.state_dict().items():
                v.copy_(tensors[f"model.{k}"])
            for j, p in enumerate(params):
                for name, t in opt.state[p].items():
                    t.copy_(tensors[f"opt.{j}.{name}"])
        counts[:] = tensors["counts"].numpy()
    except (KeyError, RuntimeError) as e:
        raise SolaError(f"{path}: the checkpoint does not fit this supernet ({one_line(e)}); move it away") from None
    return int(meta["step"])


def checkpoint_progress(directory: str | Path) -> tuple[int, int] | None:
    """How far the stopped training whose checkpoint is in `directory` got: (its step, the steps it
    trains to), read from the file's header alone (no tensors, no torch); None without a checkpoint.
    An unreadable one raises `SolaError`, as its resume would."""
    path = Path(directory) / CHECKPOINT
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size <= 100_000_000:
                raise ValueError(f"header size {size}")
            header = json.loads(f.read(size))
        meta = json.loads(header["__metadata__"]["sola_search"])
        step, steps = meta["step"], meta["identity"]["steps"]
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (step, steps)) or not 0 < step < steps:
            raise ValueError(f"step {step!r} of {steps!r}")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:  # cut off, foreign, another format
        why = f"{type(e).__name__} {e}" if isinstance(e, KeyError) else one_line(e)
        raise SolaError(f"{path}: not a readable supernet checkpoint ({why}); move it away to train the supernet "
                        "from the start") from None
    return step, steps


def _differences(meta: Any, want: dict) -> str:
    have = meta.get("identity") if isinstance(meta, dict) else None
    if not isinstance(have, dict):
        return "no identity recorded"
    keys = [k for k in want if have.get(k) != want[k]]
    return ", ".join(f"{k} {have.get(k)!r}, not {want[k]!r}" for k in keys) or "another format"


# --- loading -----------------------------------------------------------------------------------
def read_meta(directory: str | Path, expected: dict[str, Any] | None = None) -> dict[str, Any]:
    """A directory's supernet.json, checked: its format, and (with `expected`) each identity key given
    there; then the weights file's sha256 against it. Without one, a stopped training's checkpoint is
    said to be one (how far it got, how to finish it). Raises only `SolaError`. Needs no torch."""
    directory = Path(directory)
    path = directory / META
    if not path.exists():
        progress = checkpoint_progress(directory)
        if progress is not None:  # a stopped training: the checkpoint is not weights to score with
            finish = f"sola-search resume {directory}" if (directory / "run.json").exists() else \
                "train_supernet there resumes it"
            raise SolaError(f"{directory}: its supernet is only trained to step {progress[0]} of {progress[1]} (its "
                            f"training was stopped; {META} is written when it ends): finish it with {finish}")
        if not directory.is_dir():
            what = "not a directory" if directory.exists() else "no such directory"
            raise SolaError(f"{directory}: {what} (expected a run made with --estimator supernet)")
        estimator = _run_estimator(directory)
        if estimator not in (None, "supernet"):
            raise SolaError(f"{directory}: a run of estimator {estimator!r}, which trains each pattern on its own: it "
                            "has no supernet (score with a run made with --estimator supernet)")
        if estimator == "supernet" and not (directory / WEIGHTS).exists():
            raise SolaError(f"{directory}: its supernet is not trained yet (no {META}, no checkpoint): train it with "
                            f"sola-search resume {directory}")
        raise SolaError(f"{directory}: no supernet there ({META} is missing): train one with "
                        "sola-search run --estimator supernet")
    meta = read_json(path, str(path))
    keys = ("identity", "config", "mixer_counts", "sha256", "num_classes", "channels")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not all(k in meta for k in keys) \
            or not isinstance(meta["identity"], dict) or not isinstance(meta["config"], dict):
        raise SolaError(f"{path}: not a sola-search supernet description (expected format {FORMAT!r} with "
                        f"{', '.join(keys)})")
    if meta.get("version") != VERSION:
        raise SolaError(f"{path}: supernet format version {meta.get('version')!r} is not supported (this sola-search "
                        f"reads version {VERSION})")
    wrong = [k for k, v in (expected or {}).items() if meta["identity"].get(k) != v]
    if wrong:
        found = ", ".join(f"{k} {meta['identity'].get(k)!r}" for k in wrong)
        want = ", ".join(f"{k} {expected[k]!r}" for k in wrong)
        raise SolaError(f"{path}: a supernet of {found}, not {want}; nothing was changed (move it away to train "
                        "another)")
    weights = directory / WEIGHTS
    try:
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    except OSError as e:
        raise SolaError(f"{weights}: cannot read it ({e.strerror or e})") from None
    if digest != meta["sha256"]:
        raise SolaError(f"{weights}: its content does not match {META} (sha256 {digest[:12]}…, recorded "
                        f"{str(meta['sha256'])[:12]}…): the file is corrupted or was replaced; nothing was changed")
    return meta


def _run_estimator(directory: Path) -> str | None:
    """The estimator of the run whose directory this is ('train' where its run.json names none, as
    `SearchConfig` reads it); None where there is no readable run.json."""
    try:
        config = json.loads((directory / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return (config.get("estimator") or "train") if isinstance(config, dict) else None


def load_supernet(directory: str | Path, expected: dict[str, Any] | None = None, data: ProxyData | None = None,
                  device: str | None = None) -> Supernet:
    """The supernet saved in `directory`, ready to score (checked as `read_meta` says; `device`
    overrides its config's)."""
    from safetensors.torch import load

    directory = Path(directory)
    meta = read_meta(directory, expected)
    try:
        cfg = ProxyConfig.from_dict(meta["config"])
    except (SolaError, TypeError, ValueError) as e:  # a hand-edited value: `width "x"` failed in a comparison
        why = str(e) if isinstance(e, SolaError) else one_line(e)
        raise SolaError(f"{directory / META}: its config is not one this sola-search reads ({why}): the file was "
                        "edited or corrupted; nothing was changed") from None
    if device is not None:
        cfg = cfg.replace(device=device)
    dev = data.device if data is not None else resolve_device(cfg.device)
    data = data if data is not None else load_proxy_data(cfg, dev)
    if (data.num_classes, data.channels) != (meta["num_classes"], meta["channels"]):
        raise SolaError(f"{directory / META}: trained on {meta['num_classes']} classes of {meta['channels']} "
                        f"channels, but the data {cfg.data} has {data.num_classes} of {data.channels}")
    try:
        tensors = load((directory / WEIGHTS).read_bytes())
        model = _build_model(cfg, data)
        model.load_state_dict({k: v.to(dev) for k, v in tensors.items()}, strict=True)
    except (RuntimeError, ValueError, OSError) as e:  # safetensors' errors, a state dict of another shape
        raise SolaError(f"{directory / WEIGHTS}: not this supernet's weights ({one_line(e)})") from None
    return Supernet(model.eval(), data, cfg, meta, directory)


class Supernet:
    """Trained shared weights with their data, ready to score patterns (`score`)."""

    def __init__(self, model: torch.nn.Module, data: ProxyData, cfg: ProxyConfig, meta: dict, directory: Path):
        self.model, self.data, self.cfg, self.meta, self.directory = model, data, cfg, meta, Path(directory)
        self.variant = cfg.variant
        self.prefix_cache_bytes = PREFIX_CACHE_BYTES if data.device.type != "cuda" else \
            torch.cuda.mem_get_info(data.device)[0] // 4
        self.chunk = 0  # images per chunk in the last `score` call (a bench reports it)
        self.mode = "supernet (prefix, eager)"

    def compile(self, backend: str = "inductor") -> Supernet:
        """On a GPU, the prefix walk's blocks and strided convolutions `torch.compile`d (static shapes:
        each (stage, mixer) compiles once per validation chunk's shape, at the first `score`). Why: on
        20,000 validation images the walk is bound by the blocks' arithmetic, which compiling fuses: 1.91x
        the patterns a minute on an H200, after ~46 s of compilation with an empty cache; on 2,000 images
        1.06x (docs/performance.md). What a `run --estimator supernet --compile blocks` worker does. The
        CPU never compiles (`backend="eager"`: traced without generated code, what the tests check)."""
        if backend == "eager" or triton_targets(self.data.device):
            compile_blocks(self.model, backend)
            self.mode = "supernet (prefix, compiled blocks)"
        return self

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]

    @property
    def steps(self) -> int:
        return int(self.cfg.steps)

    def score(self, patterns: list[str | Pattern], images: int | None = None) -> list[ProxyResult]:
        """Each pattern's validation top-1 and loss with the shared weights (and top-1 per group where
        the data has groups), one `ProxyResult` each, as `train_proxy` gives. `images`: only the first
        N validation images (default all)."""
        t0 = time.perf_counter()
        if not patterns:
            raise SolaError("no patterns to score")
        patterns = [resolve_pattern(p, self.variant) for p in patterns]
        data, cfg, dev = self.data, self.cfg, self.data.device
        v = data.val_x.shape[0] if images is None else max(1, min(images, data.val_x.shape[0]))
        p_n = len(patterns)
        groups = None if data.val_groups is None else data.val_groups[:v]
        n_groups = 0 if groups is None else int(groups.max()) + 1
        with _on_device(dev), torch.no_grad():
            self.model.eval()
            correct, loss_sum, by_group = self._sums(patterns, v, groups, n_groups)
            correct, loss_sum = correct.tolist(), loss_sum.tolist()
            per_group = None if by_group is None else by_group.tolist()
        counts = [] if groups is None else torch.bincount(groups, minlength=n_groups).tolist()
        wall = round(time.perf_counter() - t0, 3)
        results = []
        params = sum(t.numel() for t in self.model.parameters())
        for k, pattern in enumerate(patterns):
            loss = loss_sum[k] / v
            finite = math.isfinite(loss)
            res = ProxyResult(status="ok" if finite else "nan", reason="" if finite else "validation loss not finite",
                              val_top1=round(correct[k] / v, 6), val_loss=round(loss, 6) if finite else loss,
                              steps=self.steps, wall_s=wall, phases={"eval": wall}, device=_describe(dev),
                              mode=self.mode, notes=f"supernet sha256 {self.sha256[:12]}, "
                              f"{self.steps} steps, {v} validation images", pattern=str(pattern), variant=self.variant,
                              params=params, packed=p_n, seed=cfg.seed,
                              images_per_s=round(p_n * v / max(wall, 1e-9), 1))
            if per_group is not None:
                res.val_by_group = {str(gi): round(c / counts[gi], 6) for gi, c in enumerate(per_group[k])
                                    if counts[gi]}
            results.append(res)
        return results

    def prefix_chunk(self, v: int) -> int:
        """Validation images per chunk of the prefix walk: as many as keep its cache (one activation per
        image for the stem and for each block but the last, `cache_bytes_per_image`) under
        `prefix_cache_bytes`, at least one, at most `v`."""
        return max(1, min(v, self.prefix_cache_bytes // self.cache_bytes_per_image()))

    def cache_bytes_per_image(self) -> int:
        """The prefix cache's bytes for one image: the stem's output and every block's but the last, in
        fp32 (the residual stream stays fp32 under autocast: LayerNorm's output is)."""
        v = self.model.variant  # a stage's side: the input's over its reduction (stride-2 convolutions, padding 1)
        sides = [-(-self.cfg.resolution // f["reduction"]) for f in self.model.feature_info]
        floats = sides[0] ** 2 * v.dims[0] + sum(n * n * dim * depth for n, dim, depth in zip(sides, v.dims, v.depths,
                                                                                                strict=True))
        return 4 * (floats - sides[-1] ** 2 * v.dims[-1])  # the last block's output is not kept

    def _sums(self, patterns: list[Pattern], v: int, groups: torch.Tensor | None, n_groups: int):
        """Per pattern, on the device: correct count, loss sum over the first `v` validation images, and
        correct count per group ((patterns, groups)) or None. Per chunk of images (`prefix_chunk`) the
        distinct patterns are walked in lexicographic order of their choices, so neighbours share the
        longest prefix of blocks; `cache[d]` holds the activation after the stem and the first d blocks
        of the pattern last walked. Each pattern resumes from the cache at the depth of the prefix it
        shares with that one (the same stem, the same first d choices: the same activation) and runs the
        rest of its blocks with its one mixer each (`Block.forward(x, kind)`), then the head. Why: a
        prefix shared by many patterns is computed once (stage 1, the most tokens, has at most 8
        distinct prefixes), and each block runs one mixer, not both as the mixed training model does:
        about 2.4x the mixed path's distinct patterns a minute on an H200, 4.6x on a CPU, the same scores
        (docs/performance.md). Eager: the control flow differs per pattern, and at thousands of rows per
        call launches are not what costs (ten times the images per call: 1.31x the rate on an H200).
        Memory: the cache holds at most rows x blocks activations, the stem's and every block's but the
        last (`cache_bytes_per_image`)."""
        data, cfg, dev, model = self.data, self.cfg, self.data.device, self.model
        distinct = sorted({tuple(p.bits) for p in patterns})
        where = {b: k for k, b in enumerate(distinct)}
        inverse = torch.tensor([where[tuple(p.bits)] for p in patterns], device=dev)
        u = len(distinct)
        # Each block with its stage's downsampling where it opens a stage (stage 1's is an identity).
        blocks = [(stage.downsample if j == 0 else None, block) for stage in model.stages
                  for j, block in enumerate(stage.blocks)]
        n = len(blocks)
        correct = torch.zeros(u, dtype=torch.int64, device=dev)
        loss_sum = torch.zeros(u, dtype=torch.float64, device=dev)
        by_group = None if groups is None else torch.zeros(u, n_groups, dtype=torch.int64, device=dev)
        chunk = self.chunk = self.prefix_chunk(v)
        autocast = _autocast(dev, cfg)
        for start in range(0, v, chunk):
            i = slice(start, min(v, start + chunk))
            y = data.val_y[i]
            with autocast():
                cache = [_nhwc(model.stem(data.normalize(data.val_x[i], cfg.channels_last)))]
                for k, bits in enumerate(distinct):  # distinct: each differs from the last in some block
                    d = 0 if k == 0 else next(j for j in range(n) if bits[j] != distinct[k - 1][j])
                    del cache[d + 1:]
                    x = cache[d]
                    for j in range(d, n):
                        downsample, block = blocks[j]
                        if downsample is not None:
                            x = _nhwc(downsample(_nchw(x)))
                        x = block(x, "softmax" if bits[j] else "linear")
                        if j + 1 < n:
                            cache.append(x)
                    logits = model.forward_head(_nchw(x)).float()
                    hit = (logits.argmax(1) == y).long()
                    correct[k] += hit.sum()
                    loss_sum[k] += F.cross_entropy(logits, y, reduction="none").double().sum()
                    if by_group is not None:
                        by_group[k].index_add_(0, groups[i], hit)
        return correct[inverse], loss_sum[inverse], None if by_group is None else by_group[inverse]

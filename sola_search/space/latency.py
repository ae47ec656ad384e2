"""Measured latency: what a pattern costs on this machine, as a lookup table — the measured sibling
of the analytic cost table (cost.py).

MACs say little about speed here: softmax attention runs on fused kernels, MALA's kᵀv product runs
in fp32, depthwise convolutions and norms are memory-bound. So `measure_latency` times, on this
machine, each block's forward as linear and as softmax, and the pattern-independent rest (stem,
downsampling, head). Latency is then additive like MACs: `LatencyTable.ms_many` prices 10⁵ patterns
in one matrix-vector product. The table is validated when it is made, against whole models timed
end to end, and stored as JSON (format tag and version) with the machine, versions and settings.

Measuring needs torch (loaded inside `measure_latency`); loading and pricing a table need numpy only,
so `show`, and a run that uses a table as its objective, never load a model for it."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from sola_search.errors import SolaError
from sola_search.files import missing_parents, output_parents, parse_json, read_json, write_atomic
from sola_search.space.cost import check_resolution
from sola_search.space.pattern import Pattern
from sola_search.space.variants import VARIANTS, Variant, get_variant

FORMAT = "sola-search-latency-table"
VERSION = 1
DEVICES = ("cuda", "cpu")
DTYPES = ("bf16", "fp32")
# A table whose median prediction error is above this says so: it predicts this machine poorly.
MAX_MEDIAN_ERROR = 0.10
_REQUIRED = ("variant", "resolution", "batch", "device", "dtype", "fixed_ms", "linear_ms", "softmax_ms",
             "rest_ms", "machine", "settings", "validation")


@dataclass(frozen=True)
class LatencyTable:
    """Per-block forward milliseconds of each choice plus the pattern-independent rest, for one
    variant, resolution, batch, device and dtype, measured on one machine."""

    variant: Variant
    resolution: int
    batch: int
    device: str
    dtype: str
    fixed_ms: float  # stem, downsampling, head and the whole model's gap: sum(rest_ms) + gap_ms
    linear_ms: np.ndarray  # (blocks,) float64
    softmax_ms: np.ndarray  # (blocks,) float64
    rest_ms: dict[str, float]  # the parts of fixed_ms, each timed on its own
    machine: dict  # where it was measured: GPU/CPU name, library versions
    settings: dict  # how: warm-up, repetitions, threads, backends, seed
    validation: dict  # summed prediction against whole models timed end to end
    # The all-linear model timed whole minus its parts timed alone (launch gaps, caches, clocks): any
    # sign, pattern-independent, so it is part of fixed_ms. 0 in tables made before it was measured.
    gap_ms: float = 0.0
    source: str = field(default="", compare=False)  # the file it was loaded from, for messages

    @property
    def all_linear_ms(self) -> float:
        return self.fixed_ms + float(self.linear_ms.sum())

    @property
    def delta(self) -> np.ndarray:
        """Extra milliseconds of making each block softmax (negative where softmax is faster)."""
        return self.softmax_ms - self.linear_ms

    def ms(self, pattern: Pattern) -> float:
        """The predicted forward time of the whole model with `pattern`, in milliseconds per batch."""
        bits = np.array(pattern.check(self.variant).bits)
        return self.fixed_ms + float(np.where(bits, self.softmax_ms, self.linear_ms).sum())

    def ms_many(self, bits: np.ndarray) -> np.ndarray:
        """Milliseconds of many patterns given as a (P, blocks) 0/1 matrix, in one product."""
        return self.all_linear_ms + np.asarray(bits, dtype=np.float64) @ self.delta

    @property
    def median_error(self) -> float | None:
        return self.validation.get("median_rel_error")

    def warning(self) -> str | None:
        """One line when the validation's median error is over MAX_MEDIAN_ERROR, else None."""
        err = self.median_error
        if err is None or err <= MAX_MEDIAN_ERROR:
            return None
        return (f"the median prediction error {err:.1%} is over {MAX_MEDIAN_ERROR:.0%}: block times do not add "
                "up to the whole model's on this machine; rank patterns with it only with care")

    @property
    def name(self) -> str:
        return self.source or f"latency table of {self.variant.name} at {self.resolution}px"

    def check(self, variant: str | Variant | None = None, resolution: int | None = None) -> LatencyTable:
        """Raise a one-line `SolaError` if this table was measured for another variant or resolution
        than the one asked for; a table prices only the model it timed."""
        remedy = "measure one with: sola-search latency --variant {} --resolution {}"
        if variant is not None and get_variant(variant).name != self.variant.name:
            v = get_variant(variant).name
            raise SolaError(f"{self.name}: measured for variant {self.variant.name}, not {v}; "
                            + remedy.format(v, resolution or self.resolution))
        if resolution is not None and int(resolution) != self.resolution:
            raise SolaError(f"{self.name}: measured at {self.resolution}px, not {resolution}px; "
                            + remedy.format(self.variant.name, resolution))
        return self

    # --- the file --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        v = self.variant
        return dict(format=FORMAT, version=VERSION, variant=v.name, dims=list(v.dims), depths=list(v.depths),
                    heads=list(v.heads), resolution=self.resolution, batch=self.batch, device=self.device,
                    dtype=self.dtype, fixed_ms=self.fixed_ms, linear_ms=self.linear_ms.tolist(),
                    softmax_ms=self.softmax_ms.tolist(), rest_ms=self.rest_ms, gap_ms=self.gap_ms,
                    machine=self.machine,
                    settings=self.settings, validation=self.validation)

    @property
    def digest(self) -> str:
        """sha256 of the table's content (not of its file's bytes): a run stores it, so a resume
        can tell the table it was made with from another one."""
        text = json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table atomically; a file system that refuses it is a one-line `SolaError`."""
        try:
            with output_parents(path, "--out"):
                return write_atomic(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")
        except OSError as e:
            raise SolaError(f"cannot write latency table {path}: {e.strerror or e}") from None

    @classmethod
    def load(cls, path: str | os.PathLike, variant: str | Variant | None = None,
             resolution: int | None = None) -> LatencyTable:
        """Read a table written by `save`; every defect is a one-line `SolaError` naming the file.
        With `variant`/`resolution`, a table measured for another one is refused too."""
        source = f"latency table {path}"
        data = read_json(path, source, "no such file (make one with: sola-search latency)")
        return cls.from_dict(data, source).check(variant, resolution)

    @classmethod
    def from_dict(cls, data: object, source: str = "latency table") -> LatencyTable:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SolaError(f"{source}: not a latency table (no format tag {FORMAT!r}; make one with: "
                            "sola-search latency)")
        if data.get("version") != VERSION:
            raise SolaError(f"{source}: version {data.get('version')!r}, expected {VERSION}")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise SolaError(f"{source}: missing {', '.join(missing)} (a corrupted table? measure it again)")
        name = data["variant"]
        if not isinstance(name, str) or name not in VARIANTS:
            raise SolaError(f"{source}: variant {name!r}: expected one of {', '.join(VARIANTS)}")
        v = VARIANTS[name]
        resolution = data["resolution"]
        check_resolution(resolution, f"{source}: resolution {resolution!r}: ")
        if not _whole(data["batch"]) or data["batch"] < 1:
            raise SolaError(f"{source}: batch {data['batch']!r}: expected a whole number >= 1")
        if data["device"] not in DEVICES or data["dtype"] not in DTYPES:
            raise SolaError(f"{source}: device {data['device']!r}, dtype {data['dtype']!r}: expected one of "
                            f"{', '.join(DEVICES)} and one of {', '.join(DTYPES)}")
        for key in ("rest_ms", "machine", "settings", "validation"):
            if not isinstance(data[key], dict):
                raise SolaError(f"{source}: {key} is {type(data[key]).__name__}, expected an object")
        times = {k: _times(data[k], f"{source}: {k}") for k in ("linear_ms", "softmax_ms")}
        for k, t in times.items():
            if len(t) != v.num_blocks:
                raise SolaError(f"{source}: {k} has {len(t)} block times, expected {v.num_blocks} for variant "
                                f"{v.name} (depths {'-'.join(map(str, v.depths))})")
        rest = dict(zip(data["rest_ms"], _times(list(data["rest_ms"].values()), f"{source}: rest_ms"), strict=True))
        fixed, gap = (_signed(data.get(k, 0.0), f"{source}: {k}") for k in ("fixed_ms", "gap_ms"))
        with np.errstate(over="ignore"):  # the slowest pattern: each block's slower choice
            slowest = fixed + np.maximum(times["linear_ms"], times["softmax_ms"]).sum()
        if not math.isfinite(slowest):
            raise SolaError(f"{source}: its times add up to more than a number holds (a corrupted table? measure "
                            "it again)")
        if fixed + times["linear_ms"].sum() <= 0:
            raise SolaError(f"{source}: fixed_ms {fixed!r}: the all-linear model would take no time")
        return cls(v, resolution, data["batch"], data["device"], data["dtype"], float(fixed), times["linear_ms"],
                   times["softmax_ms"], rest, data["machine"], data["settings"], data["validation"],
                   gap_ms=float(gap), source=source)


def refuse_overwrite(path: str | os.PathLike) -> None:
    """A table is written where nothing is: never over another latency table (a run made with it
    stores its digest and refuses to resume with another one, and times measured once cannot be
    measured again), a file that is something else, a directory, or anything that is not a regular
    file. As `calibrate --out`: one line, nothing changed, pass another --out or move it away."""
    p = Path(path)
    if str(path).endswith(os.sep) or p.is_dir():
        raise SolaError(f"--out {path}: a directory; expected the table's file name (e.g. {p / 'latency.json'})")
    missing_parents(path, "--out")  # the writer makes the missing ones; a file on the way is refused here
    if not (p.exists() or p.is_symlink()):
        return
    if not p.is_file():
        raise SolaError(f"--out {path}: exists and is not a regular file; refusing to overwrite it")
    try:
        data = parse_json(p.read_text(encoding="utf-8"), str(path))
    except (SolaError, OSError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SolaError(f"--out {path}: exists and is not a latency table; refusing to overwrite it")
    try:
        t = LatencyTable.from_dict(data, str(path))
        what = (f" ({t.variant.name} at {t.resolution}px, batch {t.batch}, {t.dtype} on {t.device}, "
                f"sha256 {t.digest[:12]}…)")
    except SolaError:  # a damaged one: still nobody's to replace
        what = ""
    raise SolaError(f"--out {path}: holds a latency table already{what}; a run made with it (--latency) refuses to "
                    "resume with another, so it is not replaced: pass another --out, or move it away")


def _whole(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _signed(x: object, what: str) -> float:
    """A finite number of milliseconds of either sign (the gap, and the rest it is part of)."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise SolaError(f"{what} = {x!r}: expected a finite number of milliseconds")
    return float(x)


def _times(values: object, what: str) -> np.ndarray:
    """A list of finite, non-negative milliseconds, or a one-line error saying which is not."""
    if not isinstance(values, list) or not values:
        raise SolaError(f"{what}: expected a list of milliseconds")
    for i, x in enumerate(values):
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x < 0:
            raise SolaError(f"{what}[{i}] = {x!r}: expected a finite, non-negative number of milliseconds")
    return np.array(values, dtype=np.float64)


# --- measuring ------------------------------------------------------------------------------------
Progress = Callable[[int, int, str], None]  # (steps done, steps in all, what is being timed)


def check_options(device: str, dtype: str, batch: int) -> None:
    """The one check of what `measure_latency` is asked for (the CLI calls it before measuring)."""
    if device not in DEVICES:
        raise SolaError(f"device {device!r}: expected {' or '.join(DEVICES)}")
    if dtype not in DTYPES:
        raise SolaError(f"dtype {dtype!r}: expected {' or '.join(DTYPES)}")
    if not _whole(batch) or batch < 1:
        raise SolaError(f"batch {batch!r}: expected a whole number >= 1")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SolaError("device cuda: no CUDA device is visible here; measure on a GPU machine or use --device cpu")


def measure_latency(variant: str | Variant, resolution: int = 224, batch: int = 64, device: str = "cuda",
                    dtype: str = "bf16", *, warmup: int = 3, reps: int = 10, block_reps: int | None = None,
                    patterns: int = 50, budget=None, seed: int = 0, threads: int | None = None,
                    eager: bool = False, progress: Progress | None = None) -> LatencyTable:
    """Measure a latency table on this machine and validate it.

    Timing: on a GPU each call is captured as a CUDA graph and its replays are timed with CUDA events
    (every repetition queued back to back, one sync at the end). Eager calls (`eager=True`) time the
    CPU's kernel launches too: at 224 px an H200 runs a block of `small` in 1–2 ms, faster than the
    host launches it, so eager times follow the host's load (a search on the other GPU of the same
    host made them 20–70 % longer) and do not add up. On the CPU, `time.perf_counter`. Either way
    `warmup` untimed calls, then the median of the repetitions; under `torch.inference_mode()`, the
    model in eval mode and cast to `dtype`, torch's backend settings as they are (they are recorded).

    Blocks of one stage have the same shapes, so each (stage, kind) is timed once — the stage's first
    block on the very tensor that block receives inside the model, with `block_reps` repetitions
    (default 3 × `reps`) — and that time is listed for every block of the stage. The rest (stem, each
    downsampling, the head) is timed directly, part by part, on the tensors the model hands it; the
    layout changes between them are views and launch nothing. Parts timed alone do not add up to the
    model timed whole (on an H200 at 224 px they summed 4–8 % over it: launch gaps, caches, clocks),
    so the all-linear model is also timed whole (`block_reps` repetitions) and the difference is the
    table's `gap_ms`, a pattern-independent term of `fixed_ms`: the all-linear model is then priced as
    measured, and a softmax block by its difference from the linear one on the same input.

    Validation: `patterns` patterns drawn uniformly (seeded) from those `budget` admits (every
    pattern without one), each whole model timed end to end with `reps` repetitions; the relative
    errors |predicted − measured| / measured, their median and worst, are stored in `validation`.

    `threads` sets torch's CPU threads for the measurement (default: as they are); on a CPU shared
    with other work, fewer threads than cores keep them from waiting on each other."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        if not _whole(threads) or threads < 1:
            raise SolaError(f"threads {threads!r}: expected a whole number >= 1")
        torch.set_num_threads(threads)
    try:
        return _measure(variant, resolution, batch, device, dtype, warmup, reps, block_reps, patterns, budget, seed,
                        eager, progress)
    finally:
        torch.set_num_threads(before)


def _measure(variant, resolution, batch, device, dtype, warmup, reps, block_reps, patterns, budget, seed,
             eager, progress) -> LatencyTable:
    import torch

    from sola_search.space.backbone import SolaVision, _nhwc
    from sola_search.space.baselines import baseline
    from sola_search.space.budget import Budget
    from sola_search.space.feasible import FeasibleSet

    v = get_variant(variant)
    if v.width != 1 or VARIANTS.get(v.name) != v:
        raise SolaError(f"variant {v.name}: a latency table is measured for a built-in variant at full width")
    check_resolution(resolution, f"resolution {resolution}: ")
    check_options(device, dtype, batch)
    for name, value, least in (("warmup", warmup, 0), ("reps", reps, 1), ("patterns", patterns, 0)):
        if not _whole(value) or value < least:
            raise SolaError(f"{name} {value!r}: expected a whole number >= {least}")
    block_reps = block_reps or 3 * reps
    budget = Budget() if budget is None else budget
    sample = FeasibleSet(v, budget, resolution).sample(patterns, seed) if patterns else []

    dev = torch.device(device)
    cast = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    timer = _Timer(dev, warmup, graphs=dev.type == "cuda" and not eager)
    model = SolaVision(v, baseline("all-linear", v)).eval().to(dev, cast)
    torch.manual_seed(seed)
    x = torch.randn(batch, 3, resolution, resolution, device=dev, dtype=cast)
    steps = 3 + (len(v.depths) - 1) + 2 * len(v.depths) + len(sample)
    done = 0

    def step(what: str) -> None:
        nonlocal done
        if progress is not None:
            progress(done, steps, what)
        done += 1

    with torch.inference_mode():
        # The tensors each part receives inside the model, from one all-linear forward pass.
        stage_in, block_in, h = [], [], model.stem(x)
        for stage in model.stages:
            stage_in.append(h)
            block_in.append(_nhwc(stage.downsample(h)))
            h = stage(h)
        head_in = h

        rest: dict[str, float] = {}
        step("stem")
        rest["stem"] = timer(lambda: model.stem(x), block_reps)
        for i, stage in enumerate(model.stages):
            if i:
                step(f"downsampling to stage {i + 1}")
                rest[f"downsample{i + 1}"] = timer(lambda s=stage, t=stage_in[i]: s.downsample(t), block_reps)
        step("head")
        rest["head"] = timer(lambda: model.head(head_in), block_reps)
        step("whole all-linear model")
        whole = timer(lambda: model(x), block_reps)

        linear, softmax = [], []
        for i, (stage, depth) in enumerate(zip(model.stages, v.depths, strict=True)):
            block = stage.blocks[0]
            for kind, out in (("linear", linear), ("softmax", softmax)):
                step(f"stage {i + 1} block, {kind}")
                block.attn.kind = kind
                out += [timer(lambda b=block, t=block_in[i]: b(t), block_reps)] * depth
            block.attn.kind = "linear"
        parts = float(sum(rest.values()))
        gap = whole - parts - float(sum(linear))
        table = LatencyTable(v, resolution, batch, device, dtype, parts + gap, np.array(linear),
                             np.array(softmax), rest, _machine(dev), {}, {}, gap_ms=gap)

        samples = []
        for p in sample:
            step(f"whole model {p}")
            model.set_pattern(p)
            measured = timer(lambda: model(x), reps)
            samples.append(dict(pattern=str(p), predicted_ms=table.ms(p), measured_ms=measured))
    if progress is not None:
        progress(steps, steps, "done")

    errors = [abs(s["predicted_ms"] - s["measured_ms"]) / s["measured_ms"] for s in samples]
    # The same patterns priced by the parts alone (without gap_ms): what the gap is worth, on record.
    parts_errors = [abs(s["predicted_ms"] - gap - s["measured_ms"]) / s["measured_ms"] for s in samples]
    validation = dict(patterns=len(samples), seed=seed, budget=str(budget),
                      median_rel_error=float(np.median(errors)) if errors else None,
                      max_rel_error=float(np.max(errors)) if errors else None,
                      parts_median_rel_error=float(np.median(parts_errors)) if errors else None,
                      parts_max_rel_error=float(np.max(parts_errors)) if errors else None, samples=samples)
    settings = dict(warmup=warmup, reps=reps, block_reps=block_reps, inference_mode=True, eval=True,
                    timing="cuda-graphs" if timer.graphs else "eager",
                    measured_at=datetime.now(UTC).isoformat(timespec="seconds"), **_backend_settings(dev))
    return LatencyTable(v, resolution, batch, device, dtype, table.fixed_ms, table.linear_ms, table.softmax_ms,
                        rest, table.machine, settings, validation, gap_ms=gap)


class _Timer:
    """The median forward time of a call, in milliseconds: CUDA events on a GPU (around replays of
    the call captured as a CUDA graph with `graphs`), a monotonic clock on the CPU, after `warmup`
    untimed calls."""

    def __init__(self, device, warmup: int, graphs: bool = False):
        self.device, self.warmup, self.graphs = device, warmup, graphs

    def __call__(self, fn: Callable[[], object], reps: int) -> float:
        import torch

        if self.graphs:
            return self._time_graph(fn, reps)
        for _ in range(self.warmup):
            fn()
        if self.device.type == "cuda":
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in range(reps)]
            for start, end in events:
                start.record()
                fn()
                end.record()
            torch.cuda.synchronize(self.device)
            times = [start.elapsed_time(end) for start, end in events]
        else:
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                times.append(1000 * (time.perf_counter() - t0))
        return float(np.median(times))

    def _time_graph(self, fn: Callable[[], object], reps: int) -> float:
        """Warm up on a side stream (cuDNN and cuBLAS pick their kernels and workspaces there), capture
        one call, time `reps` replays; the graph and its memory pool are released before returning."""
        import torch

        side, main = torch.cuda.Stream(self.device), torch.cuda.current_stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            for _ in range(max(1, self.warmup)):
                fn()
        main.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        try:
            timer = _Timer(self.device, self.warmup)
            return timer(graph.replay, reps)
        finally:
            del graph
            torch.cuda.empty_cache()


def _machine(dev) -> dict:
    """What the table was measured on: the device's and host's names and the library versions."""
    import torch

    from sola_search import __version__

    info = dict(device_name=_cpu_name(), host=platform.node(), platform=platform.platform(),
                python=platform.python_version(), torch=torch.__version__, numpy=np.__version__,
                sola_search=__version__)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        info |= dict(device_name=props.name, capability=f"{props.major}.{props.minor}",
                     gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                     cudnn=torch.backends.cudnn.version(), cpu=_cpu_name())
    timm = sys.modules.get("timm")
    if timm is not None:
        info["timm"] = getattr(timm, "__version__", None)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _backend_settings(dev) -> dict:
    """torch's settings that change which kernels run (left as they are; recorded)."""
    import torch

    out = dict(threads=torch.get_num_threads(), cudnn_benchmark=torch.backends.cudnn.benchmark)
    if dev.type == "cuda":
        out |= dict(tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32,
                    sdpa_flash=torch.backends.cuda.flash_sdp_enabled(),
                    sdpa_mem_efficient=torch.backends.cuda.mem_efficient_sdp_enabled(),
                    sdpa_math=torch.backends.cuda.math_sdp_enabled())
    return out

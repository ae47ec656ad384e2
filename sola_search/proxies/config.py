"""`ProxyConfig`: everything that defines one proxy training run, and the named presets.

A config is plain data (`to_dict`/`from_dict` round-trip through JSON) so that the search can
store it in the study and a pattern file can say exactly which proxy measured it."""

from __future__ import annotations

import numbers
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from sola_search.errors import SolaError
from sola_search.space.variants import VARIANTS, get_variant

# Options earlier versions had, each with the value whose behaviour is now the only one: a config
# stored then (a study's `proxy` attribute, a bench record) holds them.
RETIRED: dict[str, Any] = {"build_on_device": False, "task": "classify"}
# Values earlier versions stored for an option that now takes others: `compile` was a bool (True compiled
# the whole model and ran it without CUDA graphs; compiling each block, then capturing, replaced it).
RENAMED_VALUES: dict[str, dict[Any, Any]] = {"compile": {False: "off", True: "blocks"}}
COMPILE_MODES = ("off", "blocks")
AMP_MODES = ("auto", "bf16", "fp32")


def is_retired(key: str, value: Any) -> bool:
    """Whether a stored config's `key: value` is a retired option at the behaviour that remains."""
    return key in RETIRED and value == RETIRED[key]


@dataclass(frozen=True)
class ProxyConfig:
    """One short training run of a proxy instance (same depths, narrower, smaller input)."""

    variant: str = "small"
    width: float = 0.5  # width multiplier (`Variant.scaled`)
    resolution: int = 64  # proxy input size; the cost objective is computed at full size elsewhere
    steps: int = 300
    batch_size: int = 256
    lr: float = 2e-3  # peak AdamW learning rate
    weight_decay: float = 0.05  # not applied to norms, biases and layer scales
    warmup_steps: int = 30  # linear warm-up, then cosine decay to zero
    label_smoothing: float = 0.1
    grad_clip: float = 1.0  # global grad-norm clip; 0 disables
    layer_scale_init: float = 0.1  # 1e-5 (the full model's) leaves blocks near identity in a short run
    qk_init: float = 0.0  # > 0: q/k weights ~ N(0, (qk_init/√dim)²), initial attention logits of std qk_init²
    drop_path_rate: float = 0.0
    augment: bool = True  # random crop (padding resolution/8) and horizontal flip, on the device
    seed: int = 0  # model init and batch order
    data: str = "fashion-mnist"  # fashion-mnist[:DIR] | npz:PATH | imagefolder:PATH
    val_fraction: float = 0.1  # carved from the training data, deterministically (split_seed)
    split_seed: int = 0  # fixed across trials so that every pattern sees the same validation images
    max_train: int | None = None  # use only the first N training images (tests, smoke runs)
    test: bool = False  # also report the test split (never used by the search)
    eval_every: int = 0  # validation every N steps into `val_curve` (0: only at the end)
    eval_batch_size: int = 1024
    log_points: int = 50  # about this many [step, loss] points in the training curve
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    channels_last: bool = True
    amp: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    cuda_graphs: bool = True  # capture the whole training step as a CUDA graph (launch-bound small models)
    compile: str = "blocks"  # off | blocks: on a GPU each backbone block is torch.compile'd (static shapes, once
    #   per process and shape, inductor's caches on the machine's disk) before the step is captured: 1.67x the trials
    #   per hour of a `run` (docs/performance.md); the CPU runs eager either way

    def __post_init__(self) -> None:
        def bad(name: str) -> SolaError:
            return SolaError(_wrong(name, getattr(self, name)))

        # Types first, every field: a hand-edited run.json or supernet.json (`"width": "x"`) or a `--set`
        # value would otherwise fail in a comparison below with Python's own words, or not at all.
        wrong = [_wrong(f.name, getattr(self, f.name)) for f in fields(self)
                 if not _of_kind(getattr(self, f.name), EXPECTED[f.name][0])]
        if wrong:
            raise SolaError("; ".join(wrong))
        get_variant(self.variant)  # names the known variants if this one is not
        if not 0 < self.width <= 1:
            raise bad("width")
        if not 16 <= self.resolution <= 1024:
            raise bad("resolution")
        for name in ("steps", "batch_size", "eval_batch_size", "log_points", "max_train"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise bad(name)
        for name in ("warmup_steps", "eval_every"):
            if getattr(self, name) < 0:
                raise bad(name)
        if not self.lr > 0:
            raise bad("lr")
        if not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing")
        if not 0 < self.val_fraction < 1:
            raise bad("val_fraction")
        if self.compile not in COMPILE_MODES:
            raise bad("compile")
        if self.amp not in AMP_MODES:
            raise bad("amp")
        if not (self.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:[0-9]+", self.device)):
            raise bad("device")
        for name in ("seed", "split_seed"):  # torch and numpy take seeds below 2**32
            if not 0 <= getattr(self, name) < 2**32:
                raise bad(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProxyConfig:
        """The inverse of `to_dict`; unknown keys are an error that names them. A retired option at
        the value that is now the only behaviour (`RETIRED`) is dropped, and an old value of a changed
        option is read as its new name (`RENAMED_VALUES`), so stored configs still read."""
        d = {k: _renamed(k, v) for k, v in d.items() if not is_retired(k, v)}
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SolaError(f"proxy config: unknown keys {', '.join(unknown)} "
                            f"(expected some of {', '.join(sorted(names))})")
        return cls(**d)

    def replace(self, **overrides: Any) -> ProxyConfig:
        return _replace(self, overrides)


# Each field's kind of value and, in plain words, what it takes: the one wording of both its type check
# and its range check (`ProxyConfig.__post_init__`).
_NUMBER, _WHOLE, _WHOLE_OR_NONE, _FLAG, _TEXT = "number", "whole", "whole or none", "flag", "text"
EXPECTED: dict[str, tuple[str, str]] = {
    "variant": (_TEXT, f"a variant name: {', '.join(VARIANTS)}"),
    "width": (_NUMBER, "a number in (0, 1]"),
    "resolution": (_WHOLE, "a whole number of pixels, 16 to 1024"),
    "steps": (_WHOLE, "a whole number >= 1"),
    "batch_size": (_WHOLE, "a whole number >= 1"),
    "lr": (_NUMBER, "a positive number"),
    "weight_decay": (_NUMBER, "a number"),
    "warmup_steps": (_WHOLE, "a whole number >= 0"),
    "label_smoothing": (_NUMBER, "a number in [0, 1)"),
    "grad_clip": (_NUMBER, "a number (0 disables)"),
    "layer_scale_init": (_NUMBER, "a number"),
    "qk_init": (_NUMBER, "a number"),
    "drop_path_rate": (_NUMBER, "a number"),
    "augment": (_FLAG, "true or false"),
    "seed": (_WHOLE, "a whole number from 0 to 2**32 - 1"),
    "data": (_TEXT, "a data spec such as fashion-mnist, npz:PATH, imagefolder:PATH or recall"),
    "val_fraction": (_NUMBER, "a number in (0, 1)"),
    "split_seed": (_WHOLE, "a whole number from 0 to 2**32 - 1"),
    "max_train": (_WHOLE_OR_NONE, "a whole number >= 1 or None"),
    "test": (_FLAG, "true or false"),
    "eval_every": (_WHOLE, "a whole number >= 0"),
    "eval_batch_size": (_WHOLE, "a whole number >= 1"),
    "log_points": (_WHOLE, "a whole number >= 1"),
    "device": (_TEXT, "auto, cpu, cuda or cuda:N"),
    "channels_last": (_FLAG, "true or false"),
    "amp": (_TEXT, ", ".join(AMP_MODES[:-1]) + " or " + AMP_MODES[-1]),
    "cuda_graphs": (_FLAG, "true or false"),
    "compile": (_TEXT, " or ".join(COMPILE_MODES)),
}


def _of_kind(value: Any, kind: str) -> bool:
    """Whether `value` is of a field's kind; a bool is no number (True is an int to Python), a float no
    whole number (64.0 included)."""
    if kind == _FLAG:
        return isinstance(value, bool)
    if kind == _TEXT:
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if kind == _NUMBER:
        return isinstance(value, numbers.Real)
    return isinstance(value, int) or (kind == _WHOLE_OR_NONE and value is None)


def _wrong(name: str, value: Any) -> str:
    """One field's value refused, in the words of what it expects."""
    return f"proxy {name} {value!r}: expected {EXPECTED[name][1]}"


def _renamed(key: str, value: Any) -> Any:
    """A stored value in its current form (`RENAMED_VALUES`); others as they are."""
    old = RENAMED_VALUES.get(key, {})
    return old[value] if isinstance(value, bool) and value in old else value


def _replace(cfg: ProxyConfig, overrides: dict[str, Any]) -> ProxyConfig:
    names = {f.name for f in fields(ProxyConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise SolaError(f"proxy config: unknown option {', '.join(unknown)} "
                        f"(expected some of {', '.join(sorted(names))})")
    return replace(cfg, **overrides)


# quick: CPU. small at width 0.25 and 32 px, 100 steps x 128: ~50 s a run on one busy core, ~70% val
#   top-1 (150 steps: 78 s, 73%). micro: ~15 s.
# default: GPU. small at width 0.5 and 64 px (every stage keeps >= 2x2 tokens, so stage 4's choice
#   still matters): 300 steps x 256 (~1.4 epochs of Fashion-MNIST; ~6 s alone on an H200). Compiled blocks:
#   a machine's first worker compiles for ~2 minutes, later ones read inductor's cache (docs/performance.md).
# long: default's proxy trained 10x longer — the reference the fidelity benchmark ranks against.
PRESETS: dict[str, ProxyConfig] = {
    "quick": ProxyConfig(width=0.25, resolution=32, steps=100, batch_size=128, warmup_steps=10,
                         val_fraction=0.05, cuda_graphs=False, compile="off"),
    "default": ProxyConfig(),
    "long": ProxyConfig(steps=3000, warmup_steps=300),
}


def seed_list(seed: int, k: int) -> list[int]:
    """The seeds of a pattern measured `k` times: `seed`, `seed + 1`, … (below 2**32, as torch takes
    them). The first is the seed alone, so one seed measures what a run without seeds does."""
    return [(seed + i) % 2**32 for i in range(k)]


def get_preset(name: str, **overrides: Any) -> ProxyConfig:
    """A named preset (quick, default, long) with some fields replaced; None values are ignored."""
    try:
        cfg = PRESETS[name]
    except KeyError:
        raise SolaError(f"unknown proxy preset {name!r}: expected one of {', '.join(PRESETS)}") from None
    return _replace(cfg, {k: v for k, v in overrides.items() if v is not None})

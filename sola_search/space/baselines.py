"""Named baseline patterns — the rigid layouts a search should beat — and the names users type."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable

from sola_search.errors import SolaError
from sola_search.files import read_json
from sola_search.space.budget import Budget
from sola_search.space.cost import check_resolution
from sola_search.space.pattern import Pattern
from sola_search.space.variants import Variant, get_variant


def _stagewise(v: Variant, rule: Callable[[int, int], str]) -> Pattern:
    return Pattern(tuple(rule(i, d) for i, d in enumerate(v.depths)))


def _positions(v: Variant, positions: set[int]) -> Pattern:
    return Pattern.from_bits([i in positions for i in range(v.num_blocks)], v)


FIXED: dict[str, Callable[[Variant], Pattern]] = {
    "all-linear": lambda v: _stagewise(v, lambda i, d: "L" * d),
    "all-softmax": lambda v: _stagewise(v, lambda i, d: "S" * d),
    # MAViT / RAVLT: linear attention in stages 1–2, global softmax in 3–4.
    "late-stages": lambda v: _stagewise(v, lambda i, d: ("S" if i >= 2 else "L") * d),
    "last-of-stage": lambda v: _stagewise(v, lambda i, d: "L" * (d - 1) + "S"),
    # MambaVision: the second half of stages 3–4 is attention.
    "mambavision": lambda v: _stagewise(v, lambda i, d: "L" * (d - d // 2) + "S" * (d // 2) if i >= 2 else "L" * d),
}
# Parametric: the k softmax blocks at the end, or spread evenly with linear blocks between them (the
# last block always included), which admits at most half the blocks (`_max_k`).
PARAMETRIC: dict[str, Callable[[Variant, int], Pattern]] = {
    "last": lambda v, k: _positions(v, set(range(v.num_blocks - k, v.num_blocks))),
    "interleave": lambda v, k: _positions(v, {(j + 1) * v.num_blocks // k - 1 for j in range(k)}),
}
NAMES = [*FIXED, *(f"{p}-K" for p in PARAMETRIC)]


def _max_k(kind: str, v: Variant) -> int:
    """The largest k of a parametric baseline: every block for last-k; half of them for interleave-k
    (more softmax blocks than that cannot each have linear ones around them)."""
    return v.num_blocks // 2 if kind == "interleave" else v.num_blocks


def baseline(name: str, variant: str | Variant) -> Pattern:
    """A baseline by name: all-linear, all-softmax, late-stages, last-of-stage, mambavision, last-K, interleave-K."""
    v = get_variant(variant)
    if name in FIXED:
        return FIXED[name](v)
    m = re.fullmatch(r"(last|interleave)-([0-9]+)", name)
    if m:
        kind, k = m.group(1), int(m.group(2))
        if not 0 < k <= _max_k(kind, v):
            why = f" (softmax blocks between linear ones: at most half its {v.num_blocks} blocks)" \
                if kind == "interleave" else ""
            raise SolaError(f"baseline {name!r}: k must be between 1 and {_max_k(kind, v)} for variant {v.name}{why}")
        return PARAMETRIC[kind](v, k)
    raise SolaError(f"unknown baseline {name!r}: expected one of {', '.join(NAMES)}")


def is_baseline_name(text: str) -> bool:
    return text in FIXED or re.fullmatch(r"(last|interleave)-[0-9]+", text) is not None


def resolve(text: str, variant: str | Variant) -> Pattern:
    """A baseline name or a pattern in text form, checked against the variant."""
    return baseline(text, variant) if is_baseline_name(text) else Pattern.parse(text, variant)


def baselines(variant: str | Variant, budget: Budget | None = None, resolution: int = 224) -> dict[str, Pattern]:
    """The named baselines that fit the budget (all of them without one). Parametric baselines take
    k = the budget's softmax limit (4 when it sets none), interleave at most half the blocks (so that
    it interleaves); duplicates keep their first name."""
    v = get_variant(variant)
    k = budget.max_softmax if budget is not None and budget.max_softmax is not None else 4
    names = list(FIXED) + ([f"last-{k}", f"interleave-{min(k, _max_k('interleave', v))}"]
                           if 0 < k <= v.num_blocks else [])
    out: dict[str, Pattern] = {}
    for name in names:
        p = baseline(name, v)
        if p not in out.values() and (budget is None or budget.admits(p, v, resolution)):
            out[name] = p
    return out


def resolve_pattern(pattern: str | Pattern | os.PathLike | None, variant: str | Variant) -> Pattern:
    """A pattern given as text, a baseline name, a `Pattern`, or a pattern file path; None means the
    variant's late-stages layout (linear stages 1–2, softmax 3–4)."""
    v = get_variant(variant)
    if pattern is None:
        return resolve("late-stages", v)
    if isinstance(pattern, Pattern):
        return pattern.check(v)
    text = os.fspath(pattern)
    if _is_file_path(text):
        return _pattern_from_file(text, v)
    return resolve(text, v)


def pattern_file_defaults(pattern: str | os.PathLike) -> dict:
    """The variant and resolution a pattern file names ({} when `pattern` is not a file path but
    text or a baseline name): what a command uses when the user gives no --variant/--resolution."""
    text = os.fspath(pattern)
    if not _is_file_path(text):
        return {}
    data = _read_pattern_file(text)
    out = {}
    if "variant" in data:  # a variant that is not a name is refused, not replaced by the preset's
        if not isinstance(data["variant"], str):
            raise SolaError(f"pattern file {text}: 'variant' is {json.dumps(data['variant'])}, expected a name such "
                            "as small")
        out["variant"] = data["variant"]
    if "resolution" in data:  # a bad one is refused, not replaced by 224: the file meant some other size
        res = data["resolution"]
        out["resolution"] = check_resolution(res, f"pattern file {text}: 'resolution' is {json.dumps(res)}, ")
    return out


# Text a pattern is written in: what is more than this, and names a file or directory here, is that file.
_PATTERN_TEXT = re.compile(r"[LSls\s-]*")


def _is_file_path(text: str) -> bool:
    """A pattern file's path, not pattern text or a baseline name: a .json name, a path with a separator,
    or a name that is neither text nor a baseline and is there (`export --out knee` writes `knee`)."""
    return (text.endswith(".json") or os.path.sep in text
            or (not _PATTERN_TEXT.fullmatch(text) and not is_baseline_name(text) and os.path.lexists(text)))


def _read_pattern_file(path: str) -> dict:
    # Pattern files are plain JSON; only `layer_types` (or `pattern`) is needed to build the model.
    data = read_json(path, f"pattern file {path}")
    if not isinstance(data, dict) or not ("layer_types" in data or "pattern" in data):
        raise SolaError(f"pattern file {path}: expected a JSON object with 'layer_types' or 'pattern'")
    if "pattern" in data and not isinstance(data["pattern"], str):
        raise SolaError(f"pattern file {path}: 'pattern' is {data['pattern']!r}, expected text such as 'LL-LS-LLSS-SL'")
    return data


def _pattern_from_file(path: str, v: Variant) -> Pattern:
    data = _read_pattern_file(path)
    if data.get("variant", v.name) != v.name:
        raise SolaError(f"pattern file {path}: made for variant {data['variant']!r}, not {v.name!r}")
    if "layer_types" not in data:
        return Pattern.parse(data["pattern"], v)
    pattern = Pattern.from_layer_types(data["layer_types"], v)
    if "pattern" in data and Pattern.parse(data["pattern"], v) != pattern:  # an edit made one of them wrong
        raise SolaError(f"pattern file {path}: 'pattern' {data['pattern']} does not match 'layer_types' ({pattern})")
    return pattern

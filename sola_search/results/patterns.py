"""Pattern files: one searched pattern with its metrics and provenance, as versioned, self-contained JSON.

A pattern file is what leaves a run: `load_backbone` and `timm.create_model(..., pattern=FILE)` build a
model from it with nothing else at hand. It is plain JSON (never a pickle), written atomically so a
crash mid-write never leaves a half file, and validated on load so a hand edit that breaks it is
named rather than silently building a different model."""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sola_search.errors import SolaError
from sola_search.files import read_json, write_atomic
from sola_search.objectives import DEFAULT_OBJECTIVES, OBJECTIVES, Objective, companion_scores
from sola_search.space.cost import check_resolution, model_cost
from sola_search.space.pattern import Pattern
from sola_search.space.variants import VARIANTS

SCHEMA = "sola-search/pattern"
VERSION = 1

# key -> (accepted types, required). bool is excluded from numbers explicitly (bool is an int in Python).
_TOP: dict[str, tuple[tuple[type, ...], bool]] = {
    "schema": ((str,), True),
    "version": ((int,), True),
    "variant": ((str,), True),
    "resolution": ((int,), True),
    "pattern": ((str,), True),
    "layer_types": ((list,), True),
    "softmax_layers": ((int,), True),
    "metrics": ((dict,), True),
    "proxy": ((dict,), True),
    "provenance": ((dict,), True),
    "baseline": ((str, type(None)), False),
    "budget": ((str, type(None)), False),
}
_NUM = (int, float)
_SEEDED: list[Objective] = [o for o in OBJECTIVES.values() if o.seeded]
# Every objective of the table may be in a file's metrics (a number, or null when not measured), a
# seeded one with its standard error and each seed's value (a run with seeds); these are what every
# file holds, or may hold, beyond that.
_METRICS: dict[str, tuple[tuple[type, ...], bool]] = {name: (_NUM + (type(None),), False) for name in OBJECTIVES} | {
    o.se_name: (_NUM + (type(None),), False) for o in _SEEDED} | {o.seeds_name: ((list,), False) for o in _SEEDED} | {
    "confirm_seeds": ((int,), False),  # how many of `<objective>_seeds` `run --confirm` added
    "val_top1": (_NUM + (type(None),), True),
    "val_loss": (_NUM + (type(None),), False),
    "macs": ((int,), True),
    "gmacs": (_NUM, False),
    "gflops": (_NUM, False),
    "params": ((int,), True),
}
_PROVENANCE: dict[str, tuple[tuple[type, ...], bool]] = {
    "study": ((str, type(None)), True),
    "trial": ((int, type(None)), True),
    "seed": ((int, type(None)), False),
    "seeds": ((list,), False),  # a run with seeds: the seed of each value in `metrics.<objective>_seeds`
    "sola_search_version": ((str, type(None)), True),
    "created": ((str, type(None)), False),
}


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "integer", float: "number", str: "string", list: "list", dict: "object", type(None): "null"}
    if int in types and float in types:
        types = tuple(t for t in types if t is not int)
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _check_keys(where: str, obj: Mapping[str, Any], spec: dict[str, tuple[tuple[type, ...], bool]], src: str) -> None:
    for key, (types, required) in spec.items():
        if key not in obj:
            if required:
                raise SolaError(f"{src}: missing key '{where}{key}'")
            continue
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise SolaError(f"{src}: '{where}{key}' is {json.dumps(value)[:40]}, expected {_type_names(types)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SolaError(f"{src}: '{where}{key}' is {value}, expected a finite number")


def validate_pattern_record(record: Any, source: str = "pattern record") -> dict[str, Any]:
    """Check a pattern record (the parsed JSON) and return it; a `SolaError` names the first problem.

    Beyond types, the pattern must fit the variant's depths and agree with `layer_types` and
    `softmax_layers`: a hand edit to one of them alone would otherwise build a different model."""
    src = source
    if not isinstance(record, dict):
        raise SolaError(f"{src}: expected a JSON object, found {type(record).__name__}")
    if record.get("schema") != SCHEMA:
        raise SolaError(f"{src}: 'schema' is {record.get('schema')!r}, expected {SCHEMA!r}")
    version = record.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version != VERSION:
        raise SolaError(f"{src}: schema version {version} is not supported (this sola-search reads version {VERSION})")
    _check_keys("", record, _TOP, src)
    _check_keys("metrics.", record["metrics"], _METRICS, src)
    _check_keys("provenance.", record["provenance"], _PROVENANCE, src)
    variant = record["variant"]
    if variant not in VARIANTS:
        raise SolaError(f"{src}: unknown variant {variant!r}, expected one of {', '.join(VARIANTS)}")
    check_resolution(record["resolution"], f"{src}: 'resolution' is {record['resolution']}, ")
    try:
        pattern = Pattern.parse(record["pattern"], variant)
        from_types = Pattern.from_layer_types(record["layer_types"], variant)
    except SolaError as e:
        raise SolaError(f"{src}: {e}") from None
    if pattern != from_types:
        raise SolaError(f"{src}: 'pattern' {pattern} does not match 'layer_types' ({from_types})")
    if record["softmax_layers"] != pattern.softmax_layers:
        raise SolaError(f"{src}: 'softmax_layers' is {record['softmax_layers']}, "
                        f"but pattern {pattern} has {pattern.softmax_layers} softmax blocks")
    top1 = record["metrics"]["val_top1"]
    if top1 is not None and not 0 <= top1 <= 1:
        raise SolaError(f"{src}: 'metrics.val_top1' is {top1}, expected a fraction in [0, 1]")
    for o in _SEEDED:
        values = record["metrics"].get(o.seeds_name, [])
        if not all(isinstance(v, _NUM) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise SolaError(f"{src}: 'metrics.{o.seeds_name}' is {json.dumps(values)[:40]}, expected a list of numbers")
    _check_cost(record, pattern, src)
    return record


def _check_cost(record: dict[str, Any], pattern: Pattern, src: str) -> None:
    """The cost metrics must be the exact count of the model the file builds (1,000 classes, at the
    file's resolution): a hand edit of `resolution` or of one metric would otherwise go unnoticed."""
    m, res = record["metrics"], record["resolution"]
    cost = model_cost(record["variant"], pattern, res)
    if (m["macs"], m["params"]) != (cost.macs, cost.params):
        raise SolaError(f"{src}: 'metrics' give {m['macs']} MACs and {m['params']} params, but {record['variant']} "
                        f"{pattern} at {res} px has {cost.macs} and {cost.params} (with a 1,000-class head); "
                        "was the file edited?")
    for key, want in (("gmacs", cost.gmacs), ("gflops", cost.gflops)):
        if key in m and not math.isclose(m[key], want, rel_tol=1e-9):
            raise SolaError(f"{src}: 'metrics.{key}' is {m[key]}, but its 'macs' make it {want}")


def load_pattern_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a pattern file. JSON only: nothing in it is ever executed or unpickled."""
    src = f"pattern file {os.fspath(path)}"
    return validate_pattern_record(read_json(path, src), src)


def write_pattern_file(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Validate `record` and write it to `path` atomically (`write_atomic`). Returns the path."""
    path = Path(path)
    data = validate_pattern_record(dict(record), f"pattern record for {path}")
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    try:
        return write_atomic(path, text)
    except OSError as e:
        raise SolaError(f"cannot write pattern file {path}: {e.strerror or e}") from None


def make_pattern_record(
    variant: str,
    pattern: Pattern | str,
    *,
    resolution: int,
    val_top1: float | None,
    macs: int,
    params: int,
    val_loss: float | None = None,
    proxy: Mapping[str, Any] | None = None,
    study: str | None = None,
    trial: int | None = None,
    seed: int | None = None,
    sola_search_version: str | None = None,
    baseline: str | None = None,
    budget: str | None = None,
    created: str | None = None,
    objectives: Mapping[str, float | None] | None = None,
    seeds: list[int] | None = None,
) -> dict[str, Any]:
    """A pattern record from plain values (the search loop's path is `pattern_record_from_trial`).
    `objectives`: the values of a run's other objectives (those `val_top1` and `macs` do not give),
    and of a run with seeds each seeded objective's `<name>_se` and `<name>_seeds` (whose seeds
    `seeds` lists)."""
    from sola_search import __version__

    p = pattern if isinstance(pattern, Pattern) else Pattern.parse(pattern, variant)
    p.check(variant)
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "version": VERSION,
        "variant": variant,
        "resolution": int(resolution),
        "pattern": str(p),
        "layer_types": p.layer_types,
        "softmax_layers": p.softmax_layers,
        "metrics": {
            "val_top1": None if val_top1 is None else float(val_top1),
            "val_loss": None if val_loss is None or not math.isfinite(val_loss) else float(val_loss),
            "macs": int(macs),
            "gmacs": int(macs) / 1e9,
            "gflops": 2 * int(macs) / 1e9,  # FLOPs = 2 × MACs
            "params": int(params),
        },
        "proxy": dict(proxy or {}),
        "provenance": {
            "study": study,
            "trial": trial,
            "seed": seed,
            "sola_search_version": sola_search_version or __version__,
            "created": created or datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    for name, value in (objectives or {}).items():
        record["metrics"].setdefault(name, value)
    if seeds:
        record["provenance"]["seeds"] = list(seeds)
    if baseline:
        record["baseline"] = baseline
    if budget:
        record["budget"] = budget
    return record


def pattern_record_from_trial(study: Any, trial: Any) -> dict[str, Any]:
    """The pattern record of a completed trial (an `optuna.trial.FrozenTrial`, e.g. what `study.tell`
    returns) of a sola-search study, read from the study's and the trial's user attributes.

    MACs and params come from the trial's `macs`/`params` attributes, falling back to the exact cost
    model; top-1 and every other objective from the trial's values, merged with the trial's
    re-measures by `run --confirm` (`search.confirm.merged`) when it has some."""
    from sola_search.search.confirm import confirm_key, merged

    sattrs, tattrs = study.user_attrs, trial.user_attrs
    where = f"study {study.study_name!r} trial {trial.number}"
    variant, resolution = sattrs.get("variant"), sattrs.get("resolution", 224)
    if not isinstance(variant, str):
        raise SolaError(f"{where}: the study has no 'variant' user attribute; is it a sola-search study?")
    text = tattrs.get("pattern")
    if text is None and isinstance(tattrs.get("duplicate_of"), int):  # answered from storage
        source = [t for t in study.get_trials(deepcopy=False) if t.number == tattrs["duplicate_of"]]
        text = source[0].user_attrs.get("pattern") if source else None
    if not isinstance(text, str):
        raise SolaError(f"{where}: the trial has no 'pattern' user attribute")
    if trial.values is None:
        raise SolaError(f"{where}: the trial has no objective values (state {trial.state.name})")
    names = study.metric_names or DEFAULT_OBJECTIVES
    source = tattrs.get("duplicate_of", trial.number)
    objectives = [OBJECTIVES[n] for n in names] if all(n in OBJECTIVES for n in names) else []
    record, default_seed = sattrs.get(confirm_key(source)), sattrs.get("seed")
    told, spread = merged(objectives, trial.values, tattrs, record, default_seed)
    values = dict(zip(names, told, strict=False))
    result = tattrs.get("proxy_result") if isinstance(tattrs.get("proxy_result"), dict) else {}
    # The score it does not rank by, merged the same way: the mean over the search's seeds and the re-measures.
    others = companion_scores(objectives, [result])
    searched = [statistics.fmean(tattrs.get(c.seeds_name) or [result[c.name]]) for c in others]
    other_told, other_spread = merged(others, searched, tattrs, record, default_seed)
    values |= {c.name: v for c, v in zip(others, other_told, strict=True)}
    spread |= other_spread
    pattern = Pattern.parse(text, variant)
    macs, params = tattrs.get("macs"), tattrs.get("params")
    if macs is None or params is None:
        cost = model_cost(variant, pattern, int(resolution))
        macs, params = cost.macs if macs is None else macs, cost.params if params is None else params
    proxy = {"preset": sattrs.get("preset"), "config": sattrs.get("proxy"), "result": result or None,
             "estimator": tattrs.get("estimator", "train")}  # train: the pattern's own run; supernet: shared weights
    seed = result.get("seed", sattrs.get("seed"))
    done = trial.datetime_complete
    return make_pattern_record(
        variant, pattern, resolution=int(resolution), val_top1=values.get("val_top1", result.get("val_top1")),
        macs=int(macs), params=int(params), val_loss=values.get("val_loss", result.get("val_loss")), proxy=proxy,
        study=study.study_name, trial=trial.number, seed=seed if isinstance(seed, int) else None,
        sola_search_version=sattrs.get("sola_search_version"), baseline=tattrs.get("baseline"),
        budget=sattrs.get("budget"),
        created=done.astimezone(UTC).isoformat(timespec="seconds") if done is not None else None,
        objectives={name: v for name, v in values.items() if name in OBJECTIVES}
        | {k: v for k, v in spread.items() if k != "seeds"},
        seeds=spread.get("seeds") if isinstance(spread.get("seeds"), list) else None,
    )

"""The Pareto front of a run's two objectives (accuracy versus cost): which trials are non-dominated,
the knee, and the hypervolume they cover."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd

from sola_search.errors import SolaError
from sola_search.objectives import (
    REF_MARGIN,
    Objective,
    Space,
    get_objectives,
    max_gmacs,  # noqa: F401 — the gmacs objective's reference bound, named here for callers of results
    study_objectives,
)
from sola_search.space.budget import Budget


def pareto_mask(top1: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """True for points no other point dominates (top-1 ≥ and cost ≤, one strictly); ties all kept.
    One sort, O(n log n) time and O(n) memory: a point is dominated when a strictly cheaper point
    is at least as accurate, or a point of the same cost is more accurate."""
    top1, cost = np.asarray(top1, float), np.asarray(cost, float)
    if not len(top1):
        return np.zeros(0, bool)
    order = np.argsort(cost, kind="stable")
    c, t = cost[order], top1[order]
    _, starts, group = np.unique(c, return_index=True, return_inverse=True)
    group_best = np.maximum.reduceat(t, starts)
    cheaper_best = np.concatenate([[-np.inf], np.maximum.accumulate(group_best)[:-1]])
    mask = np.empty(len(t), bool)
    mask[order] = (t > cheaper_best[group]) & (t >= group_best[group])
    return mask


def hypervolume(top1: np.ndarray, cost: np.ndarray, ref: tuple[float, float]) -> float:
    """Area dominated by the points inside the reference box (top-1 above ref[0], cost below ref[1])."""
    top1, cost = np.asarray(top1, float), np.asarray(cost, float)
    keep = (top1 > ref[0]) & (cost < ref[1])
    top1, cost = top1[keep], cost[keep]
    if not len(top1):
        return 0.0
    front = pareto_mask(top1, cost)
    order = np.lexsort((-top1[front], cost[front]))
    c, t = cost[front][order], top1[front][order]
    widths = np.diff(np.append(c, ref[1]))
    return float(np.sum(widths * (np.maximum.accumulate(t) - ref[0])))


# --- the study's trials as a table -----------------------------------------------------------
def columns(objectives: tuple[Objective, Objective]) -> list[str]:
    """The trials frame's columns: the run's objectives after number and state, then the standard
    error of each seeded one (NaN in a run without seeds); `latency_ms` where it is not an objective (NaN
    in a run without a latency table); last, how many of a trial's seeds `run --confirm` added (`confirm_seeds`)."""
    latency = [] if any(o.name == "latency_ms" for o in objectives) else ["latency_ms"]
    return ["number", "state", *(o.name for o in objectives), *(o.se_name for o in objectives if o.seeded), "macs",
            *latency, "params", "softmax_layers", "pattern", "baseline", "status", "reason", "duplicate_of", "feasible",
            "confirm_seeds", "estimator"]


def frame_objectives(frame: pd.DataFrame) -> tuple[Objective, Objective]:
    """The objectives a trials frame holds (`trials_frame` records them in `frame.attrs`)."""
    return get_objectives(frame.attrs.get("objectives"))


def _within_budget(budget: Budget | None, costs: dict[str, float]) -> bool:
    """No recorded cost over a limit of the study's budget (`Budget.violations`); a cost the trial
    did not record (NaN) is not held against it."""
    return budget is None or not any(v > 0 for v in budget.violations(costs).values())


def study_budget(study: optuna.Study) -> Budget | None:
    """The study's budget (its `budget` user attribute), or None when it has none or it does not parse."""
    text = study.user_attrs.get("budget")
    try:
        return Budget.parse(text) if isinstance(text, str) and text != "unlimited" else None
    except SolaError:
        return None


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial, in trial order, a column per objective of the study (`frame.attrs`
    names them). `feasible` is true for a completed trial whose Optuna
    constraints are all ≤ 0 (what `study.best_trials` uses), that the search did not mark
    `feasible: false`, and that is within the study's budget; an objective a trial's attributes
    give (`gmacs`, from `macs`) is known for failed trials too. A trial whose pattern `run --confirm`
    measured again has its seeds and theirs merged (`search.confirm.merged`: the mean and se over
    all, `confirm_seeds` of them confirmation seeds; 0 for others); Optuna's values stay the search's."""
    from sola_search.search.confirm import confirmations, merged

    objectives = study_objectives(study)
    budget = study_budget(study)
    records = confirmations(study.user_attrs)
    trials = study.get_trials(deepcopy=False)
    # A run with a latency table records each trial's latency_ms (a duplicate: its source's), a cost its budget reads.
    latency = {t.number: _number(t.user_attrs.get("latency_ms")) for t in trials}
    rows = []
    for t in trials:
        a = t.user_attrs
        done = t.state == optuna.trial.TrialState.COMPLETE and t.values is not None
        record = records.get(a.get("duplicate_of", t.number)) if done else None
        if record:
            merged_values, extra = merged(objectives, t.values, a, record, study.user_attrs.get("seed"))
            a = {**a, **extra}
        values = {o.name: (merged_values[i] if record else t.values[i]) if done else _or_nan(o.from_attrs(a))
                  for i, o in enumerate(objectives)}
        macs, gmacs = a.get("macs"), values.get("gmacs", np.nan)
        softmax = a.get("softmax_layers", np.nan)
        ms = values.get("latency_ms", _or_nan(latency.get(a.get("duplicate_of", t.number))))
        ok = done and all(c <= 0 for c in t.constraints.values()) and a.get("feasible", True) is not False
        ok = ok and _within_budget(budget, dict(softmax_layers=softmax, macs=macs if macs is not None else gmacs * 1e9,
                                                params=a.get("params", np.nan), latency_ms=ms))
        spread = {o.se_name: _or_nan(_number(a.get(o.se_name))) for o in objectives if o.seeded}
        rows.append(dict(
            number=t.number, state=t.state.name, **({"latency_ms": ms} | values), **spread,
            macs=macs if macs is not None else (round(gmacs * 1e9) if gmacs == gmacs else None),
            params=a.get("params"), softmax_layers=softmax, pattern=a.get("pattern"), baseline=a.get("baseline"),
            status=a.get("status", "ok" if done else None), reason=a.get("reason"),
            duplicate_of=a.get("duplicate_of"), feasible=bool(ok), confirm_seeds=a.get("confirm_seeds", 0),
            estimator=a.get("estimator", "train" if done else None),  # a run before estimators trained each pattern
        ))
    frame = pd.DataFrame(rows, columns=columns(objectives))
    # A trial answered from storage may carry only `duplicate_of`: it has its source's pattern.
    by_number = dict(zip(frame["number"], frame["pattern"], strict=True))
    missing = frame["pattern"].isna() & frame["duplicate_of"].notna()
    frame.loc[missing, "pattern"] = [by_number.get(int(n)) for n in frame.loc[missing, "duplicate_of"]]
    for col in ("macs", "params", "softmax_layers", "duplicate_of", "confirm_seeds"):
        frame[col] = frame[col].astype("Int64")
    frame.attrs["objectives"] = [o.name for o in objectives]
    return frame


def _or_nan(value: float | None) -> float:
    return np.nan if value is None else value


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def seeded(frame: pd.DataFrame) -> list[Objective]:
    """The objectives a frame's trials were measured on with several seeds (a standard error is
    known): what `run --seeds K` adds a `± se` to. Empty for a run without seeds."""
    return [o for o in frame_objectives(frame) if o.seeded and o.se_name in frame and frame[o.se_name].notna().any()]


# Two values are tied when their intervals mean ± TIE_SE standard errors overlap.
TIE_SE = 2.0


def ties(front: pd.DataFrame, chosen: pd.Series) -> list[int]:
    """The front's trials statistically tied with `chosen` (a trial's row) on a seeded objective:
    their intervals mean ± TIE_SE·se overlap, so the means that ranked them do not separate them.
    Empty without seeds. The knee and `best` are chosen on means; this names what they are tied with."""
    tied = np.zeros(len(front), bool)
    for o in seeded(front):
        se0 = chosen.get(o.se_name)
        if se0 is None or se0 != se0:
            continue
        m, se = front[o.name].to_numpy(float), front[o.se_name].to_numpy(float)
        tied |= np.abs(m - float(chosen[o.name])) <= TIE_SE * (se + float(se0))  # NaN se: never tied
    tied &= (front["pattern"] != chosen["pattern"]).to_numpy()  # itself, or its duplicates on the front
    return sorted(int(n) for n in front["number"][tied])


def tie_phrase(tied: list[int], objectives: list[Objective]) -> str:
    """How a report or an export names ties: `statistically tied on top-1 with trials 3, 7 of the
    front (mean ± 2 se overlap)`."""
    return (f"statistically tied on {', '.join(o.short for o in objectives)} with trial{'s' if len(tied) > 1 else ''} "
            f"{', '.join(map(str, tied))} of the front (mean ± {TIE_SE:g} se overlap)")


def oriented(frame: pd.DataFrame, objectives: tuple[Objective, Objective]) -> tuple[np.ndarray, np.ndarray]:
    """The two objectives' columns turned so that the first is maximized and the second minimized,
    as `pareto_mask`, `hypervolume` and `knee` take them."""
    a, b = objectives
    x, y = frame[a.name].to_numpy(float), frame[b.name].to_numpy(float)
    return (x if a.maximize else -x), (-y if b.maximize else y)


def best_first(objectives: tuple[Objective, Objective], then: list[str] | None = None,
               cost_first: bool = False) -> tuple[list[str], list[bool]]:
    """`sort_values` arguments: the better value of each objective first (the second objective
    first with `cost_first`, as a front is drawn), then the `then` columns ascending."""
    pair = objectives[::-1] if cost_first else objectives
    return [o.name for o in pair] + (then or []), [not o.maximize for o in pair] + [True] * len(then or [])


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated feasible completed trials on the run's two objectives (val_top1 ↑, gmacs ↓),
    sorted by the second (cost), then the first (best first), then trial number. Ties (equal values)
    are all kept, as `study.best_trials` does."""
    objectives = frame_objectives(frame)
    ok = frame[frame["feasible"] & (frame["state"] == "COMPLETE")]
    front = ok[pareto_mask(*oriented(ok, objectives))]
    by, ascending = best_first(objectives, ["number"], cost_first=True)
    return front.sort_values(by, ascending=ascending).reset_index(drop=True)


def knee(front: pd.DataFrame) -> pd.Series | None:
    """The knee of a front: with cost and top-1 scaled to [0, 1] over the front's own range, the point
    farthest above the chord from the cheapest to the most accurate point (largest top1ₙ − costₙ).
    Ties, and fronts of one or two points (where no point is above the chord), go to the more
    accurate point, then the lower trial number. None for an empty front."""
    if front.empty:
        return None
    t, c = oriented(front, frame_objectives(front))
    cn = (c - c.min()) / (np.ptp(c) or 1.0)
    tn = (t - t.min()) / (np.ptp(t) or 1.0)
    score = np.round(tn - cn, 12)
    order = np.lexsort((front["number"].to_numpy(), -t, -score))
    return front.iloc[int(order[0])]


def reference_point(study: optuna.Study, frame: pd.DataFrame | None = None) -> tuple[float, float]:
    """The hypervolume reference point, one value per objective: what its table entry says for the
    study's search space (top-1 0, the worst accuracy; 1.1 × the GMACs of the most expensive pattern
    the study's budget admits, `max_gmacs`). These depend only on the study's variant, resolution and
    budget, never on which trials ran, so two runs of one search space compare. A study without a
    known variant, or an objective without a reference: REF_MARGIN × its worst trial."""
    a = study.user_attrs
    space = Space(a.get("variant"), a.get("resolution", 224), study_budget(study))  # type: ignore[arg-type]
    ref = []
    for o in study_objectives(study):
        try:
            if o.reference is None:
                raise ValueError(o.name)
            ref.append(float(o.reference(space)))
        except (SolaError, TypeError, ValueError):
            frame = trials_frame(study) if frame is None else frame
            known = frame[o.name].notna().any()
            if o.maximize:
                ref.append(min(0.0, REF_MARGIN * float(np.nanmin(frame[o.name].to_numpy(float)))) if known else 0.0)
            else:
                ref.append(REF_MARGIN * float(np.nanmax(frame[o.name].to_numpy(float))) if known else REF_MARGIN)
    return ref[0], ref[1]


def front_hypervolume(front: pd.DataFrame, ref: tuple[float, float]) -> float:
    """Hypervolume (in the product of the two objectives' units, top-1 × GMACs) of a front at a
    reference point (one value per objective)."""
    objectives = frame_objectives(front)
    a, b = objectives
    turned = (ref[0] if a.maximize else -ref[0]), (-ref[1] if b.maximize else ref[1])
    return hypervolume(*oriented(front, objectives), turned)


# The trial attribute a stand-alone re-measurement of a supernet-scored trial records (`run --confirm`).
STANDALONE_ATTR = "standalone_val_top1"


def front_without_standalone(study: optuna.Study) -> list[int]:
    """The confirmation hook (issue 15; for `run --confirm N`): the numbers of the trials on the
    study's Pareto front, best first by the first objective, whose top-1 came from the supernet
    (trial attribute `estimator` "supernet") and that have no stand-alone value yet (no
    `STANDALONE_ATTR` attribute). `--confirm` trains each stand-alone (the train estimator, with the
    run's seeds), records the value there (and `estimator_confirmed`: "train"), and calls this again
    to see what is left; readers (`pareto`, `export`) then show both values. Until it does,
    `SearchConfig.check` refuses `--confirm` with `--estimator supernet` (today's `--confirm` adds
    seeds to a trained mean, and a supernet score is not one)."""
    front = pareto_front(trials_frame(study))
    by, ascending = best_first(frame_objectives(front))
    front = front.sort_values(by, ascending=ascending)
    attrs = {t.number: t.user_attrs for t in study.get_trials(deepcopy=False)}
    return [int(n) for n, est in zip(front["number"], front["estimator"], strict=True)
            if est == "supernet" and STANDALONE_ATTR not in attrs[int(n)]]

"""The accuracy-versus-cost Pareto front: which trials are non-dominated, and the hypervolume they cover."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd

from sola_search.errors import SolaError
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
COLUMNS = ["number", "state", "val_top1", "gmacs", "macs", "params", "softmax_layers", "pattern", "baseline",
           "status", "reason", "duplicate_of", "feasible"]
REF_TOP1 = 0.0  # hypervolume reference top-1: the worst possible accuracy, the same for every run
REF_COST_MARGIN = 1.1  # reference GMACs: 1.1 × the most expensive pattern within the budget (max_gmacs)


def _metric_indices(study: optuna.Study) -> tuple[int, int]:
    """Where val_top1 and gmacs are in a trial's values; a study that is not sola-search's is an error."""
    directions = [d.name.lower() for d in study.directions]
    names = study.metric_names or ["val_top1", "gmacs"]
    if sorted(names) != ["gmacs", "val_top1"] or len(directions) != 2:
        raise SolaError(f"study {study.study_name!r} has objectives {names}, expected val_top1 and gmacs "
                        f"(is it a sola-search study?)")
    i, j = names.index("val_top1"), names.index("gmacs")
    if (directions[i], directions[j]) != ("maximize", "minimize"):
        raise SolaError(f"study {study.study_name!r}: val_top1 must be maximized and gmacs minimized, "
                        f"found {directions[i]} and {directions[j]}")
    return i, j


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
    """One row per trial, in trial order. `feasible` is true for a completed trial whose Optuna
    constraints are all ≤ 0 (what `study.best_trials` uses), that the search did not mark
    `feasible: false`, and that is within the study's budget;
    `gmacs` is known for failed trials too when the trial recorded its `macs`."""
    i_top1, i_cost = _metric_indices(study)
    budget = study_budget(study)
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        done = t.state == optuna.trial.TrialState.COMPLETE and t.values is not None
        macs = a.get("macs")
        gmacs = t.values[i_cost] if done else (macs / 1e9 if isinstance(macs, int | float) else np.nan)
        softmax = a.get("softmax_layers", np.nan)
        ok = done and all(c <= 0 for c in t.constraints.values()) and a.get("feasible", True) is not False
        ok = ok and _within_budget(budget, dict(softmax_layers=softmax, macs=macs if macs is not None else gmacs * 1e9,
                                                params=a.get("params", np.nan)))
        rows.append(dict(
            number=t.number, state=t.state.name, val_top1=t.values[i_top1] if done else np.nan, gmacs=gmacs,
            macs=macs if macs is not None else (round(gmacs * 1e9) if gmacs == gmacs else None),
            params=a.get("params"), softmax_layers=softmax, pattern=a.get("pattern"), baseline=a.get("baseline"),
            status=a.get("status", "ok" if done else None), reason=a.get("reason"),
            duplicate_of=a.get("duplicate_of"), feasible=bool(ok),
        ))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    # A trial answered from storage may carry only `duplicate_of`: it has its source's pattern.
    by_number = dict(zip(frame["number"], frame["pattern"], strict=True))
    missing = frame["pattern"].isna() & frame["duplicate_of"].notna()
    frame.loc[missing, "pattern"] = [by_number.get(int(n)) for n in frame.loc[missing, "duplicate_of"]]
    for col in ("macs", "params", "softmax_layers", "duplicate_of"):
        frame[col] = frame[col].astype("Int64")
    return frame


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated feasible completed trials on (val_top1 ↑, gmacs ↓), sorted by cost, then
    top-1 descending, then trial number. Ties (equal values) are all kept, as `study.best_trials` does."""
    ok = frame[frame["feasible"] & (frame["state"] == "COMPLETE")]
    front = ok[pareto_mask(ok["val_top1"].to_numpy(float), ok["gmacs"].to_numpy(float))]
    return front.sort_values(["gmacs", "val_top1", "number"], ascending=[True, False, True]).reset_index(drop=True)


def knee(front: pd.DataFrame) -> pd.Series | None:
    """The knee of a front: with cost and top-1 scaled to [0, 1] over the front's own range, the point
    farthest above the chord from the cheapest to the most accurate point (largest top1ₙ − costₙ).
    Ties, and fronts of one or two points (where no point is above the chord), go to the more
    accurate point, then the lower trial number. None for an empty front."""
    if front.empty:
        return None
    c, t = front["gmacs"].to_numpy(float), front["val_top1"].to_numpy(float)
    cn = (c - c.min()) / (np.ptp(c) or 1.0)
    tn = (t - t.min()) / (np.ptp(t) or 1.0)
    score = np.round(tn - cn, 12)
    order = np.lexsort((front["number"].to_numpy(), -t, -score))
    return front.iloc[int(order[0])]


def max_gmacs(variant: str, resolution: int, budget: Budget | None = None) -> float:
    """The GMACs of the most expensive pattern of a variant at a resolution that the budget admits:
    cost is additive, so it is every positive softmax-minus-linear block delta, the largest first, up
    to the softmax limit, capped by a MACs limit. An upper bound on any feasible trial's cost."""
    from sola_search.space.cost import cost_table

    t = cost_table(variant, int(resolution))
    deltas = np.sort(t.delta)[::-1]
    deltas = deltas[deltas > 0]
    if budget is not None and budget.max_softmax is not None:
        deltas = deltas[: budget.max_softmax]
    macs = t.all_linear_macs + int(deltas.sum())
    if budget is not None and budget.max_macs is not None:
        macs = min(macs, budget.max_macs)
    return macs / 1e9


def reference_point(study: optuna.Study, frame: pd.DataFrame | None = None) -> tuple[float, float]:
    """The hypervolume reference point (top-1, GMACs): top-1 0 (the worst accuracy), and 1.1 × the
    GMACs of the most expensive pattern the study's budget admits (`max_gmacs`). Both depend only
    on the study's variant, resolution and budget, never on which trials ran, so two runs of one
    search space compare. A study without a known variant: 1.1 × its largest trial cost."""
    variant, resolution = study.user_attrs.get("variant"), study.user_attrs.get("resolution", 224)
    try:
        return REF_TOP1, REF_COST_MARGIN * max_gmacs(variant, int(resolution), study_budget(study))
    except (SolaError, TypeError, ValueError):
        frame = trials_frame(study) if frame is None else frame
        most = np.nanmax(frame["gmacs"].to_numpy(float)) if frame["gmacs"].notna().any() else 1.0
        return REF_TOP1, REF_COST_MARGIN * float(most)


def front_hypervolume(front: pd.DataFrame, ref: tuple[float, float]) -> float:
    """Hypervolume (in top-1 × GMACs) of a front at a reference point (top-1, GMACs)."""
    return hypervolume(front["val_top1"].to_numpy(float), front["gmacs"].to_numpy(float), ref)

"""Confirming the front (`run --confirm N`): once a run's trials are done, the patterns on its Pareto
front get more seeds, round by round, until the front's intervals separate or N seeds each are spent.

Where the re-measures live: Optuna's storages refuse to change a finished trial — its values, and its
user and system attributes alike (`check_trial_is_updatable` in `optuna/storages/_rdb/storage.py`,
Optuna 5.0) — and a new trial would count as a measurement of its own. So a confirmed trial's extra
seeds are one study user attribute, `confirm:<trial number>` (`confirm_key`), holding the pattern, the
seeds and each seeded objective's value per seed; the trial keeps what the search told Optuna.
`merged` is how every reader (the trials frame, pattern files) sees a trial: the mean and standard
error over all its seeds, every seed listed, and how many were confirmation seeds (`confirm_seeds`).

The separation rule (`unresolved`): the front is separated when no two of its members are tied —
their intervals mean ± 2 se (`front.TIE_SE`) overlap (`front.ties`) — and every member has a
standard error (two seeds at least). Along a front sorted by cost the means rise, so this is the same
as each member's interval being clear of its neighbours'. Only unresolved members get seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from sola_search.objectives import Objective, standard_error

CONFIRM_PREFIX = "confirm:"
CONFIRM_SEEDS = "confirm_seeds"  # how many of a trial's seeds were confirmation seeds (trials frame, pattern file)


def confirm_key(number: int) -> str:
    """The study user attribute that holds trial `number`'s re-measures."""
    return f"{CONFIRM_PREFIX}{number}"


def confirmations(study_attrs: Mapping[str, Any]) -> dict[int, dict]:
    """Trial number → its re-measures record, from a study's user attributes."""
    out = {}
    for key, value in study_attrs.items():
        n = key.removeprefix(CONFIRM_PREFIX)
        if key.startswith(CONFIRM_PREFIX) and n.isdigit() and isinstance(value, dict) \
                and isinstance(value.get("seeds"), list):
            out[int(n)] = value
    return out


def record_confirmation(study, number: int, pattern: str, seeds: Sequence[int],
                        values: Mapping[str, Sequence[float]]) -> dict:
    """Add a pattern's finished re-measures (`seeds`, and each seeded objective's value per seed) to
    its trial's record, written whole in one step: a kill keeps every pack that finished before it."""
    old = study.user_attrs.get(confirm_key(number)) or {"pattern": pattern, "seeds": []}
    new = {"pattern": pattern, "seeds": [*old["seeds"], *seeds]}
    for name, each in values.items():
        new[name] = [*old.get(name, []), *each]
    study.set_user_attr(confirm_key(number), new)
    return new


def search_seeds(tattrs: Mapping[str, Any], default: int | None) -> list[int]:
    """The seeds the search measured a trial with: its `seeds` (a run with seeds), else its run's."""
    if isinstance(tattrs.get("seeds"), list):
        return list(tattrs["seeds"])
    result = tattrs.get("proxy_result") if isinstance(tattrs.get("proxy_result"), dict) else {}
    seed = result.get("seed", default)
    return [seed] if isinstance(seed, int) else []


def merged(objectives: Sequence[Objective], values: Sequence[float], tattrs: Mapping[str, Any],
           record: Mapping[str, Any] | None, default_seed: int | None) -> tuple[list[float], dict[str, Any]]:
    """A completed trial's values with its re-measures (`record`) merged in: each seeded objective's
    mean over every seed, and the attributes that go with it (`<name>_se`, `<name>_seeds`, `seeds`,
    `confirm_seeds`). Without a record, the trial as the search told it and its own attributes."""
    spread = {name: tattrs[name] for o in objectives if o.seeded for name in (o.se_name, o.seeds_name)
              if name in tattrs}
    if "seeds" in tattrs:
        spread["seeds"] = tattrs["seeds"]
    if not record:
        return list(values), spread
    out = list(values)
    for i, o in enumerate(objectives):
        if o.seeded and isinstance(record.get(o.name), list):
            each = [*(tattrs.get(o.seeds_name) or [values[i]]), *record[o.name]]
            out[i] = statistics.fmean(each)
            spread[o.seeds_name] = each
            spread[o.se_name] = standard_error(each) if len(each) > 1 else math.nan
    spread["seeds"] = [*search_seeds(tattrs, default_seed), *record["seeds"]]
    spread[CONFIRM_SEEDS] = len(record["seeds"])
    return out, spread


def unresolved(front) -> list[int]:
    """The front's trials (a `pareto_front` without duplicates) not yet separated from the others:
    tied with one of them (`front.ties`), or without a standard error (a single seed). Empty: the
    front is separated (or has one member, which has nothing to separate from)."""
    from sola_search.results.front import frame_objectives, ties

    if len(front) < 2:
        return []
    seeded = [o for o in frame_objectives(front) if o.seeded]
    out = []
    for _, row in front.iterrows():
        if any(not row[o.se_name] == row[o.se_name] for o in seeded) or ties(front, row):
            out.append(int(row["number"]))
    return out


def next_seeds(used: Sequence[int], n: int) -> list[int]:
    """`n` seeds a pattern has not been measured with: the ones after its last (below 2**32)."""
    start = max(used) + 1 if used else 0
    return [(start + i) % 2**32 for i in range(n)]


def merged_front(study):
    """The front as it stands: from every trial's values merged with its re-measures, duplicates left out
    (a trials frame's rows)."""
    from sola_search.results.front import pareto_front, trials_frame

    frame = trials_frame(study)
    return pareto_front(frame[frame["duplicate_of"].isna()])


def plan_round(study, limit: int, step: int, skip: set[int] = frozenset()) -> tuple[list[tuple[int, str, list[int]]],
                                                                                        list[int]]:
    """The next round of confirmation: (trial number, pattern, new seeds) for each unresolved front
    member with confirmation seeds left (`step` more each, at most `limit` in all), and the unresolved
    members. An empty round: separated (no unresolved member) or spent. `skip`: trials whose
    re-measure failed this session (they would fail again)."""
    front = merged_front(study)
    tied = unresolved(front)
    records = confirmations(study.user_attrs)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    default = study.user_attrs.get("seed")
    jobs = []
    for n in tied:
        done = len(records.get(n, {}).get("seeds", []))
        take = min(step, limit - done)
        if n in skip or take <= 0:
            continue
        t = trials[n]
        used = [*search_seeds(t.user_attrs, default), *records.get(n, {}).get("seeds", [])]
        jobs.append((n, t.user_attrs["pattern"], next_seeds(used, take)))
    return jobs, tied


def outcome_text(outcome: str, rounds: int, tied: Sequence[int], front: Sequence[int], what: str, limit: int) -> str:
    """The run's last word on confirmation: the front separated (`front`: its trial numbers then), the
    seeds spent with `tied` members still tied, or the time limit reached. A front of one trial has
    nothing to separate: every other pattern is dominated on its mean, which is what it says."""
    done = f"{rounds} round(s) of confirmation" if rounds else "no confirmation seed"
    if outcome == "separated" and len(front) == 1:
        return (f"the front is trial {front[0]} alone after {done}: every other pattern measured costs as much or "
                f"more for a mean {what} no better")
    return {"separated": f"the front's {what} intervals (mean ± 2 se) separate after {done}",
            "spent": f"trial(s) {', '.join(map(str, tied))} of the front still tied after {done}: "
                     f"--confirm {limit} seeds each spent",
            "time": f"confirmation stopped at the time limit after {done}"}[outcome]

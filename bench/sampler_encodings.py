"""Which budget-aware encoding finds the accuracy-vs-MACs front fastest? A deterministic benchmark.

Each run is the search loop without Ray and without training: an in-memory multi-objective study
(maximize top-1, minimize GMACs), the named baselines enqueued first, then ask → suggest → tell
until 200 distinct feasible patterns were "trained". A proposal outside the budget is told PRUNED
(no training); a pattern already measured is answered from the measured values (no training), as
the search loop does. The x-axis is therefore trainings — what costs GPU time.

Objective (small variant, 224 px; noise-free, deterministic): with s_i the softmax blocks of stage
i, block j of a stage of depth d weighted w_j = 0.6 + 0.4·j/(d−1) (later blocks of a stage see
more refined features), e_i = Σ_{j∈s_i} w_j,

    top1 = 0.70 + Σ_i A_i·(1 − exp(−e_i / H_i))        diminishing returns per stage
                − 0.002·(adjacent softmax pairs inside a stage)     redundant neighbours
                + 0.004·[stage 3 and stage 4 both have softmax]     interaction across stages
    A = (0.004, 0.012, 0.030, 0.015),  H = (1.0, 1.5, 2.5, 1.0)

and gmacs = cost_table("small", 224).macs(pattern) / 1e9 (exact). Hypervolume: sola_search's
`hypervolume(top1, gmacs, ref)` with ref = (0.70, max feasible GMACs rounded up to 0.1), reported
as a percentage of the exact optimum (every feasible pattern enumerated).

    .venv/bin/python bench/sampler_encodings.py                  # both budgets, 5 seeds, all encodings
    .venv/bin/python bench/sampler_encodings.py --seeds 3 --budgets 8softmax --out /tmp/e.json
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from sola_search.results.front import hypervolume
from sola_search.search.encodings import (
    DEFAULT_ENCODING,
    ENCODINGS,
    BlocksEncoding,
    Encoding,
    KeysEncoding,
    enqueue_baselines,
    get_encoding,
)
from sola_search.space import Budget, FeasibleSet, baselines, cost_table, get_variant

VARIANT, RESOLUTION = "small", 224
BASE, GAIN, HALF = 0.70, (0.004, 0.012, 0.030, 0.015), (1.0, 1.5, 2.5, 1.0)
ADJACENT, BOTH_LATE = 0.002, 0.004
CHECKPOINTS = (50, 100, 200)
# Measured here only: `blocks` and `keys` with Optuna's default multi-objective TPE, which models
# each parameter independently (the encodings use multivariate TPE, which models them jointly).
EXTRA = {
    "blocks-indep": lambda budget: BlocksEncoding(VARIANT, budget, RESOLUTION, multivariate=None),
    "keys-indep": lambda budget: KeysEncoding(VARIANT, budget, RESOLUTION, multivariate=None),
}


def surrogate_top1(bits: np.ndarray) -> np.ndarray:
    """The accuracy surrogate of the module docstring for a (P, blocks) 0/1 matrix."""
    bits = np.atleast_2d(np.asarray(bits, float))
    top1 = np.full(len(bits), BASE)
    start, late = 0, []
    for i, d in enumerate(get_variant(VARIANT).depths):
        s = bits[:, start:start + d]
        w = 0.6 + 0.4 * np.arange(d) / max(d - 1, 1)
        top1 += GAIN[i] * (1 - np.exp(-(s @ w) / HALF[i]))
        top1 -= ADJACENT * (s[:, 1:] * s[:, :-1]).sum(1)
        if i >= 2:
            late.append(s.sum(1) > 0)
        start += d
    return top1 + BOTH_LATE * (late[0] & late[1])


def gmacs(bits: np.ndarray) -> np.ndarray:
    return cost_table(VARIANT, RESOLUTION).macs_many(np.atleast_2d(bits)) / 1e9


@dataclass(frozen=True)
class Problem:
    budget: str
    ref: tuple[float, float]
    optimum: float  # hypervolume of the exact front
    feasible: int


def problem(budget: str) -> Problem:
    fs = FeasibleSet(VARIANT, Budget.parse(budget), RESOLUTION)
    every = fs.enumerate_bits(limit=2_000_000)
    g = gmacs(every)
    ref = (BASE, math.ceil(g.max() * 10) / 10)
    # Only the best top-1 at each cost can be on the front (and `pareto_mask` is quadratic in memory).
    t = surrogate_top1(every)
    costs, inverse = np.unique(g, return_inverse=True)
    best = np.full(len(costs), -np.inf)
    np.maximum.at(best, inverse, t)
    return Problem(budget, ref, hypervolume(best, costs, ref), fs.count())


def make_encoding(name: str, budget: str) -> Encoding:
    return EXTRA[name](Budget.parse(budget)) if name in EXTRA else get_encoding(name, VARIANT, budget, RESOLUTION)


def _hv_pct(points: list[tuple[float, float]], prob: Problem) -> float:
    p = np.array(points, float).reshape(-1, 2)
    return 100 * hypervolume(p[:, 0], p[:, 1], prob.ref) / prob.optimum


def run(name: str, prob: Problem, seed: int, trainings: int = 200, max_proposals: int = 600) -> dict[str, Any]:
    """One search: the ask/tell loop of the module docstring, without Ray or training."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    encoding = make_encoding(name, prob.budget)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=encoding.sampler(seed))
    enqueue_baselines(study, baselines(VARIANT, encoding.budget, RESOLUTION), encoding)
    measured: dict[str, tuple[float, float, int]] = {}  # pattern -> (top1, gmacs, trial number)
    points: list[tuple[float, float]] = []
    hv: dict[int, float] = {}  # by trainings
    hv_asks: dict[int, float] = {}  # by proposals (Optuna trials of any state)
    proposals = infeasible = duplicates = 0
    ask_secs = 0.0
    t0 = time.perf_counter()
    while len(points) < trainings and proposals < max_proposals:
        if proposals in CHECKPOINTS:  # the first `proposals` asks are answered
            hv_asks[proposals] = _hv_pct(points, prob)
        t = time.perf_counter()
        trial = study.ask()
        pattern = encoding.suggest(trial)
        ask_secs += time.perf_counter() - t
        proposals += 1
        if pattern is None:
            study.tell(trial, state=TrialState.PRUNED)
            infeasible += 1
            continue
        key = str(pattern)
        if key in measured:
            top1, g, first = measured[key]
            trial.set_user_attr("duplicate_of", first)
            study.tell(trial, [top1, g])
            duplicates += 1
            continue
        bits = np.array(pattern.bits, np.int8)
        top1, g = float(surrogate_top1(bits)[0]), float(gmacs(bits)[0])
        measured[key] = (top1, g, trial.number)
        study.tell(trial, [top1, g])
        points.append((top1, g))
        if len(points) in CHECKPOINTS:
            hv[len(points)] = _hv_pct(points, prob)
    if proposals in CHECKPOINTS:
        hv_asks[proposals] = _hv_pct(points, prob)
    return {
        "encoding": name, "budget": prob.budget, "seed": seed, "trainings": len(points), "proposals": proposals,
        "infeasible": infeasible, "duplicates": duplicates, "hv_pct": {str(k): v for k, v in hv.items()},
        "hv_pct_by_proposals": {str(k): v for k, v in hv_asks.items()},
        "ms_per_proposal": 1000 * ask_secs / max(proposals, 1), "secs": time.perf_counter() - t0,
    }


def _run(args: tuple[str, Problem, int, int, int]) -> dict[str, Any]:
    return run(*args)


def _mean_std(xs: list[float]) -> str:
    if not xs:
        return "—"
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.2f}"


def summarize(results: list[dict[str, Any]], problems: dict[str, Problem], names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for budget in problems:
        for name in names:
            rs = [r for r in results if r["encoding"] == name and r["budget"] == budget]
            row: dict[str, Any] = {"budget": budget, "encoding": name, "seeds": len(rs)}
            for c in CHECKPOINTS:
                xs = [r["hv_pct"][str(c)] for r in rs if str(c) in r["hv_pct"]]
                row[f"hv@{c}"] = _mean_std(xs) + ("" if len(xs) == len(rs) else f" ({len(xs)}/{len(rs)} runs)")
                row[f"hv@{c}_mean"] = statistics.mean(xs) if xs else None
            xs = [r["hv_pct_by_proposals"]["200"] for r in rs if "200" in r["hv_pct_by_proposals"]]
            row["hv@200asks"] = _mean_std(xs)
            props = sum(r["proposals"] for r in rs)
            row["infeasible_pct"] = 100 * sum(r["infeasible"] for r in rs) / props
            row["duplicate_pct"] = 100 * sum(r["duplicates"] for r in rs) / props
            row["proposals"] = statistics.mean(r["proposals"] for r in rs)
            row["ms_per_proposal"] = statistics.mean(r["ms_per_proposal"] for r in rs)
            row["secs_per_run"] = statistics.mean(r["secs"] for r in rs)
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]], problems: dict[str, Problem]) -> str:
    head = ("| budget | encoding | HV@50 % | HV@100 % | HV@200 % | HV@200 asks % | infeasible % | duplicate % "
            "| asks | ms / ask |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        lines.append(f"| {r['budget']} | {r['encoding']} | {r['hv@50']} | {r['hv@100']} | {r['hv@200']} "
                     f"| {r['hv@200asks']} | {r['infeasible_pct']:.1f} | {r['duplicate_pct']:.1f} "
                     f"| {r['proposals']:.0f} | {r['ms_per_proposal']:.1f} |")
    notes = [f"- `{p.budget}`: {p.feasible} feasible patterns, ref = (top-1 {p.ref[0]}, {p.ref[1]} GMACs), "
             f"optimum HV = {p.optimum:.5f}" for p in problems.values()]
    return "\n".join(lines + [""] + notes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encodings", default=",".join(ENCODINGS), help=f"of {', '.join([*ENCODINGS, *EXTRA])}")
    ap.add_argument("--budgets", default="8softmax;8softmax,5gmacs", help="';'-separated budgets")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trainings", type=int, default=200)
    ap.add_argument("--max-proposals", type=int, default=600, help="stop a run after this many asks")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default="bench/out/encodings.json")
    args = ap.parse_args(argv)
    names = args.encodings.split(",")
    problems = {b: problem(b) for b in args.budgets.split(";")}
    work = [(n, p, s, args.trainings, args.max_proposals) for p in problems.values() for n in names
            for s in range(args.seeds)]
    t0, load_before = time.perf_counter(), os.getloadavg()
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        results = pool.map(_run, work, chunksize=1)
    rows = summarize(results, problems, names)
    text = table(rows, problems)
    print(text)
    print(f"\n{len(work)} runs in {time.perf_counter() - t0:.0f} s on {args.jobs} processes")
    out = {
        "command": " ".join([os.path.relpath(sys.argv[0]), *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "optuna": optuna.__version__,
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "jobs": args.jobs},
        "default_encoding": DEFAULT_ENCODING,
        "objective": {"variant": VARIANT, "resolution": RESOLUTION, "base": BASE, "gain": GAIN, "half": HALF,
                      "adjacent": ADJACENT, "both_late": BOTH_LATE},
        "problems": {b: vars(p) for b, p in problems.items()},
        "summary": rows, "runs": results, "table": text,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

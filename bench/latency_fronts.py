"""Where MACs and measured latency disagree, from one latency table (`sola-search latency`).

    python bench/latency_fronts.py --table latency-small-224px-cuda.json [--budget 8softmax] [--patterns 1000]
        [--run runs/NAME] [--out bench/out/latency_fronts.json]
    python bench/latency_fronts.py --smoke        # a CPU micro table at 64 px, made here; synthetic top-1 values

(a) The Spearman rank correlation between GMACs and the table's latency over `--patterns` feasible
    patterns of the budget, drawn uniformly (seeded); ties (blocks of a stage cost the same) get
    average ranks.
(b) With `--run`: the run's completed feasible trials, their proxy top-1 values as they are, priced
    two ways — the Pareto-optimal trials by (top-1, GMACs) and by (top-1, latency), how many are on
    both fronts, and the latency of the GMACs front's knee against the latency front's knee (the
    same knee rule as `sola-search pareto`). `--smoke` fills (b) with synthetic top-1 values.

Prints a table and writes JSON. (a) needs neither optuna nor ray (the device that measures tables
has neither); only `--run` opens a study.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from sola_search.space import Budget, FeasibleSet, Pattern, cost_table
from sola_search.space.latency import LatencyTable, measure_latency


def ranks(x: np.ndarray) -> np.ndarray:
    """0-based ranks, ties averaged."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=r) / counts)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def rank_correlation(table: LatencyTable, budget: Budget, n: int, seed: int) -> dict:
    """(a): GMACs against predicted latency over `n` feasible patterns of the budget."""
    bits = FeasibleSet(table.variant, budget, table.resolution).sample_bits(n, seed)
    gmacs = cost_table(table.variant, table.resolution).macs_many(bits) / 1e9
    ms = table.ms_many(bits)
    return dict(budget=str(budget), patterns=n, seed=seed, spearman=spearman(gmacs, ms),
                pearson=float(np.corrcoef(gmacs, ms)[0, 1]), gmacs_min=float(gmacs.min()), gmacs_max=float(gmacs.max()),
                ms_min=float(ms.min()), ms_max=float(ms.max()))


def fronts(numbers: np.ndarray, top1: np.ndarray, gmacs: np.ndarray, ms: np.ndarray, patterns: list[str]) -> dict:
    """(b): the two fronts of the same top-1 values, their overlap and their knees."""
    import pandas as pd

    from sola_search.results.front import knee, pareto_mask

    frame = pd.DataFrame(dict(number=numbers, val_top1=top1, gmacs=gmacs, latency_ms=ms, pattern=patterns))
    out = {}
    for cost in ("gmacs", "latency_ms"):
        front = frame[pareto_mask(frame["val_top1"].to_numpy(), frame[cost].to_numpy())].copy()
        front.attrs["objectives"] = ["val_top1", cost]
        k = knee(front.sort_values([cost, "val_top1"], ascending=[True, False]))
        out[cost] = dict(trials=sorted(int(n) for n in front["number"]),
                         knee=None if k is None else dict(trial=int(k["number"]), pattern=k["pattern"],
                                                          val_top1=float(k["val_top1"]), gmacs=float(k["gmacs"]),
                                                          latency_ms=float(k["latency_ms"])))
    both = set(out["gmacs"]["trials"]) & set(out["latency_ms"]["trials"])
    g, lat = out["gmacs"]["knee"], out["latency_ms"]["knee"]
    return dict(trials=len(frame), front_gmacs=len(out["gmacs"]["trials"]),
                front_latency=len(out["latency_ms"]["trials"]), on_both=len(both),
                knee_gmacs=g, knee_latency=lat,
                knee_latency_ratio=None if not (g and lat) else g["latency_ms"] / lat["latency_ms"], detail=out)


def run_trials(run_dir: str, table: LatencyTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The run's completed feasible trials: number, top-1, and GMACs and latency both at the table's
    resolution (the proxy's top-1 does not depend on the resolution costs are counted at, so one
    run's values serve tables at 224 and 1024 px)."""
    from sola_search.results.front import trials_frame
    from sola_search.results.runs import open_run

    run = open_run(run_dir)
    a = run.study.user_attrs
    table.check(a.get("variant"))
    frame = trials_frame(run.study)
    ok = frame[frame["feasible"] & (frame["state"] == "COMPLETE")]
    patterns = [Pattern.parse(p, table.variant) for p in ok["pattern"]]
    costs = cost_table(table.variant, table.resolution)
    gmacs = np.array([costs.macs(p) / 1e9 for p in patterns])
    ms = np.array([table.ms(p) for p in patterns])
    return ok["number"].to_numpy(int), ok["val_top1"].to_numpy(float), gmacs, ms, [str(p) for p in patterns]


def synthetic_trials(table: LatencyTable, budget: Budget, n: int, seed: int):
    """--smoke's stand-in for a run: feasible patterns with made-up top-1 values."""
    rng = np.random.default_rng(seed)
    bits = FeasibleSet(table.variant, budget, table.resolution).sample_bits(n, rng)
    top1 = 0.5 + 0.02 * bits.sum(1) + rng.normal(0, 0.02, n)
    patterns = [str(Pattern.from_bits(b, table.variant)) for b in bits]
    gmacs = cost_table(table.variant, table.resolution).macs_many(bits) / 1e9
    return np.arange(n), top1, gmacs, table.ms_many(bits), patterns


def print_report(table: LatencyTable, corr: dict, front: dict | None) -> None:
    v = table.validation
    err = "" if v.get("median_rel_error") is None else \
        f", validation median error {v['median_rel_error']:.1%}, worst {v['max_rel_error']:.1%}"
    print(f"table: {table.variant.name} at {table.resolution}px, batch {table.batch}, {table.dtype} on "
          f"{table.machine.get('device_name')}{err}")
    print(f"(a) {corr['patterns']} feasible patterns of {corr['budget']}: Spearman(GMACs, latency) "
          f"{corr['spearman']:.3f} (Pearson {corr['pearson']:.3f}); GMACs {corr['gmacs_min']:.3f}-"
          f"{corr['gmacs_max']:.3f}, latency {corr['ms_min']:.2f}-{corr['ms_max']:.2f} ms")
    if front is None:
        return
    print(f"(b) {front['trials']} trials: front by GMACs {front['front_gmacs']}, by latency {front['front_latency']},"
          f" on both {front['on_both']}")
    print(f"    {'knee by':<8} {'trial':>5} {'pattern':<28} {'top-1':>7} {'GMACs':>8} {'latency ms':>11}")
    for name, k in (("GMACs", front["knee_gmacs"]), ("latency", front["knee_latency"])):
        if k is not None:
            print(f"    {name:<8} {k['trial']:>5} {k['pattern']:<28} {100 * k['val_top1']:>6.2f}% {k['gmacs']:>8.3f}"
                  f" {k['latency_ms']:>11.3f}")
    if front["knee_latency_ratio"] is not None:
        print(f"    the GMACs knee's latency is {front['knee_latency_ratio']:.3f} x the latency knee's")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", help="a latency table (sola-search latency)")
    p.add_argument("--budget", default="8softmax", help="feasible patterns of this budget (default 8softmax)")
    p.add_argument("--patterns", type=int, default=1000, help="patterns for the rank correlation (default 1000)")
    p.add_argument("--run", help="a run directory: its trials' two fronts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON to write (default bench/out/latency_fronts-<table>.json)")
    p.add_argument("--smoke", action="store_true", help="a CPU micro table at 64 px, made here, and synthetic trials")
    args = p.parse_args(argv)
    budget = Budget.parse(args.budget)
    if args.smoke:
        table = measure_latency("micro", 64, batch=1, device="cpu", dtype="fp32", warmup=0, reps=1, patterns=3,
                                threads=1)
        name = "smoke"
    elif args.table:
        table = LatencyTable.load(args.table)
        name = Path(args.table).stem
    else:
        p.error("--table FILE or --smoke")
    corr = rank_correlation(table, budget, args.patterns, args.seed)
    trials = run_trials(args.run, table) if args.run else synthetic_trials(table, budget, 200, args.seed) \
        if args.smoke else None
    front = fronts(*trials) if trials is not None else None
    print_report(table, corr, front)
    record = dict(table=args.table or "smoke", variant=table.variant.name, resolution=table.resolution,
                  batch=table.batch, dtype=table.dtype, device=table.machine.get("device_name"),
                  validation={k: table.validation.get(k) for k in ("patterns", "median_rel_error", "max_rel_error")},
                  run=args.run, rank_correlation=corr, fronts=front, command=" ".join(sys.argv))
    out = Path(args.out or f"bench/out/latency_fronts-{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

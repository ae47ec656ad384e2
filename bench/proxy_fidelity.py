"""Fidelity of the proxy: does `default` rank patterns as `long` (≥10× the steps) does?

Kendall's tau between the two presets' validation top-1 over ≥16 patterns of the small variant under
8softmax: every baseline the budget admits plus uniformly sampled feasible patterns. `default` also
runs with a second seed, so the table shows how much of the disagreement is seed noise.
Runs spread over every visible GPU in packs (`train_proxies`: a pack's patterns train together on
the same batches, as a search worker trains them), long runs first.

    python bench/proxy_fidelity.py --data fashion-mnist:DIR [--pack 8] [--per-gpu 1] [--patterns 16]
    python bench/proxy_fidelity.py --smoke        # seconds, on the CPU

A benchmark longer than one job's time limit runs in parts and is merged afterwards:

    python bench/proxy_fidelity.py --data D --part 1/2 --out a.json   # same options in every part
    python bench/proxy_fidelity.py --data D --part 2/2 --out b.json
    python bench/proxy_fidelity.py --data D --merge a.json b.json      # the tables, from both parts' runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import NoReturn

from proxy_common import common_args, devices, env_info, kendall_tau, overrides, preset, run_pool, table, write_json

from sola_search.space import Budget, FeasibleSet, baselines, get_variant


def patterns(variant: str, budget: str, count: int, seed: int) -> list[tuple[str, str]]:
    """(name, pattern text): the budget's baselines, then uniform feasible samples, no duplicates."""
    v, b = get_variant(variant), Budget.parse(budget)
    chosen = {p: name for name, p in baselines(v, b).items()}
    feasible = FeasibleSet(v, b)
    draws = 0
    while len(chosen) < count and draws < 100 * count:
        for p in feasible.sample(count, rng=seed + draws):
            if len(chosen) < count and p not in chosen:
                chosen[p] = f"sample-{len(chosen)}"
        draws += count
    return [(name, str(p)) for p, name in chosen.items()]


def fail(msg: str) -> NoReturn:
    print(msg, file=sys.stderr)
    raise SystemExit(2)


def part(jobs: list[dict], spec: str) -> list[dict]:
    """The K-th of N parts of `jobs`: each job (longest first) goes to the part with the fewest
    training steps so far, so the parts take about equally long."""
    try:
        k, n = (int(x) for x in spec.split("/"))
        assert 1 <= k <= n
    except (ValueError, AssertionError):
        fail(f"--part {spec!r}: expected K/N with 1 <= K <= N")
    load, mine = [0] * n, []
    cost = lambda j: j["config"]["steps"] * len(j["patterns"])  # noqa: E731
    for j in sorted(jobs, key=cost, reverse=True):
        i = load.index(min(load))
        load[i] += cost(j)
        if i == k - 1:
            mine.append(j)
    return mine


# Config fields that do not change what a run trains: parts may differ in them and still merge
# (evaluation reads the weights and draws nothing from the training batches' generator).
UNTRAINED = ("device", "eval_every")


def merged(paths: list[str], jobs: list[dict]) -> list[dict]:
    """The runs of earlier parts, checked against this invocation's jobs (same patterns and configs)."""
    want = {(j["label"], p): j["config"] for j in jobs for p in j["patterns"]}
    same = lambda c: {k: v for k, v in c.items() if k not in UNTRAINED}  # noqa: E731
    done = {}
    for path in paths:
        try:
            runs = json.loads(Path(path).read_text())["runs"]
        except (OSError, ValueError, KeyError) as e:
            fail(f"--merge {path}: not a proxy_fidelity record ({type(e).__name__}: {e})")
        for d in runs:
            key = (d["label"], d["pattern"])
            if key not in want or same(d["config"]) != same(want[key]):
                fail(f"--merge {path}: run {key} is not one of this benchmark's (options differ?)")
            done[key] = d
    missing = len(want) - len(done)
    print(f"merged {len(done)} runs from {len(paths)} record(s); {missing} of this benchmark's runs missing")
    return list(done.values())


def along_long(by: dict, pats: list[tuple[str, str]]) -> list[dict]:
    """Where along `long` the order of the patterns settles: at each evaluation of the long runs
    (`eval_every` > 0), Kendall's tau of top-1 then against long's final top-1 and against
    default's (seed 0). A short proxy can only agree with long once long agrees with itself."""
    runs = [(by.get(("long", p), {}), by.get(("default/s0", p), {}), p.count("S")) for _, p in pats]
    runs = [(lg, d, n) for lg, d, n in runs if lg.get("status") == "ok" and lg.get("val_curve")]
    if len(runs) < 3:
        return []
    curves = [dict((int(s), a) for s, a in lg["val_curve"]) for lg, _, _ in runs]
    out = []
    for step in sorted(set.intersection(*(set(c) for c in curves))):  # merged parts may differ
        at = [c[step] for c in curves]
        final = [lg["val_top1"] for lg, _, _ in runs]
        short = [(a, d["val_top1"]) for a, (_, d, _) in zip(at, runs, strict=True) if d.get("status") == "ok"]
        out.append({"step": step, "vs long final": kendall_tau(at, final),
                    "vs default/s0": kendall_tau([a for a, _ in short], [b for _, b in short])
                    if len(short) >= 3 else None,
                    "vs softmax count": kendall_tau(at, [n for _, _, n in runs])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "proxy_fidelity")
    ap.add_argument("--variant", default="small")
    ap.add_argument("--budget", default="8softmax")
    ap.add_argument("--patterns", type=int, default=16, help="how many patterns (baselines included); >= 16")
    ap.add_argument("--default-seeds", type=int, default=2, help="seeds of the default preset (noise estimate)")
    ap.add_argument("--default-steps", type=int, help="override default's steps")
    ap.add_argument("--long-steps", type=int, help="override long's steps (default: the preset's, 10x default; "
                    "0: no long runs, only the seed-noise ceiling of default — a quick screen of a proxy)")
    ap.add_argument("--pack", type=int, default=8, help="patterns trained together in one process (default 8)")
    ap.add_argument("--per-gpu", type=int, default=1, help="processes per GPU (default 1)")
    ap.add_argument("--gpus", help="comma-separated GPU indices (default: all visible)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the pattern sample")
    ap.add_argument("--long-seeds", type=int, default=1, help="seeds of the long preset (>1: its own noise)")
    ap.add_argument("--only", nargs="+", metavar="LABEL", help="run only these runs, e.g. long/s1 default/s0")
    ap.add_argument("--part", help="K/N: run only the K-th of N parts (jobs balanced by training steps)")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="no training: the tables from these parts' records")
    args = ap.parse_args()

    over = overrides(args) | dict(variant=args.variant)
    if args.smoke:
        over["variant"] = args.variant = "micro"
        args.patterns, args.per_gpu = min(args.patterns, 5), 2
    cfg_default = preset("default", over, **({"steps": args.default_steps} if args.default_steps else {}))
    long_steps = args.long_steps if args.long_steps is not None else (10 * cfg_default.steps if args.smoke else None)
    cfg_long = preset("long", over, **({"steps": long_steps} if long_steps else {}))
    long_labels = [("long" if s == 0 else f"long/s{s}") for s in range(args.long_seeds if long_steps != 0 else 0)]
    labels = long_labels + [f"default/s{s}" for s in range(args.default_seeds)]
    pats = patterns(args.variant, args.budget, args.patterns, args.seed)
    print(f"{len(pats)} patterns of {args.variant} under {args.budget}; default {cfg_default.steps} steps, "
          f"long {cfg_long.steps} steps ({cfg_long.steps / cfg_default.steps:.0f}x)")

    names = {p: n for n, p in pats}
    packs = [[p for _, p in pats[i : i + args.pack]] for i in range(0, len(pats), args.pack)]
    runs = [(label, s, cfg_long.replace(seed=s)) for s, label in enumerate(long_labels)] + [
        (f"default/s{s}", s, cfg_default.replace(seed=s)) for s in range(args.default_seeds)]
    jobs = [dict(label=label, patterns=pack, seed=seed, config=cfg.to_dict()) for label, seed, cfg in runs
            for pack in packs if not args.only or label in args.only]
    devs = devices(args.smoke, args.gpus)
    t0 = time.time()
    if args.merge:
        done = merged(args.merge, jobs)
    else:
        def save(runs: list[dict]) -> None:  # a run cut short by a time limit keeps what it finished
            write_json(args.out, dict(bench="proxy_fidelity", partial=True, env=env_info(), runs=runs), quiet=True)

        done = run_pool(part(jobs, args.part) if args.part else jobs, devs, args.per_gpu, on_result=save)
    wall = time.time() - t0

    for d in done:
        d["name"] = names[d["pattern"]]
    by = {(d["label"], d["pattern"]): d["result"] for d in done}
    rows = []
    for name, p in pats:
        row = dict(name=name, pattern=p, softmax=p.count("S"))
        for label in labels:
            r = by.get((label, p), {})
            row[label] = r.get("val_top1") if r.get("status") == "ok" else None
            row[f"{label}:loss"] = r.get("val_loss") if r.get("status") == "ok" else None
        seeds = [row[f"default/s{s}"] for s in range(args.default_seeds) if row[f"default/s{s}"] is not None]
        row["default/mean"] = statistics.fmean(seeds) if seeds else None
        longs = [row[label] for label in long_labels if row[label] is not None]
        row["long/mean"] = statistics.fmean(longs) if len(longs) == len(long_labels) > 1 else None
        rows.append(row)
    def tau(a: str, b: str, loss: bool = False) -> float | None:
        sfx = ":loss" if loss else ""
        pairs = [(r.get(a + sfx), r.get(b + sfx)) for r in rows]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        return kendall_tau([x for x, _ in pairs], [y for _, y in pairs]) if len(pairs) >= 3 else None

    taus = {}
    for loss in (False, True):
        kind = "loss" if loss else "top1"
        if long_steps != 0:
            taus[f"{kind}:default_s0_vs_long"] = tau("default/s0", "long", loss)
        if args.default_seeds > 1:
            taus[f"{kind}:default_s0_vs_s1"] = tau("default/s0", "default/s1", loss)  # seed-noise ceiling
        if len(long_labels) > 1:
            taus[f"{kind}:long_s0_vs_s1"] = tau("long", "long/s1", loss)  # is the reference itself stable?
    if long_steps != 0:
        taus["top1:default_mean_vs_long"] = tau("default/mean", "long")
    # Which way does each preset lean? More softmax layers scoring higher short and lower long (the
    # 128 px runs, docs/performance.md) is a systematic disagreement that no seed averaging removes.
    for label in ("long", "long/mean", "default/mean"):
        if any(r.get(label) is not None for r in rows):
            taus[f"top1:softmax_count_vs_{label.replace('/', '_')}"] = tau("softmax", label)
    # Signal against noise: spread of default top-1 across patterns vs the typical seed-to-seed gap.
    s0 = [r["default/s0"] for r in rows if r.get("default/s0") is not None]
    gaps = [abs(r["default/s0"] - r["default/s1"]) for r in rows
            if r.get("default/s0") is not None and r.get("default/s1") is not None]
    spread = dict(default_top1_mean=statistics.fmean(s0) if s0 else None,
                  default_top1_sd_across_patterns=statistics.stdev(s0) if len(s0) > 1 else None,
                  default_seed_gap_mean=statistics.fmean(gaps) if gaps else None)
    rows.sort(key=lambda r: -(r.get("long") or r.get("default/mean") or 0))
    table(rows, ["name", "pattern", "softmax", *labels])
    for k, v in taus.items():
        print(f"kendall tau {k:<36} {v if v is None else round(v, 3)}")
    for k, v in spread.items():
        print(f"{k:<38} {v if v is None else round(v, 4)}")
    train_s = {label: [d["result"].get("train_s") for d in done if d["label"] == label and d["result"].get("train_s")]
               for label in ("long", "default/s0")}
    for label, ts in train_s.items():
        if ts:
            print(f"{label}: median train {statistics.median(ts):.1f}s a pack of up to {args.pack} "
                  f"({args.per_gpu} process(es) per GPU)")
    along = along_long(by, pats)
    if along:
        print("along long's run (--set eval_every=N): tau of top-1 at each step against ...")
        table(along, ["step", "vs long final", "vs default/s0", "vs softmax count"])
    failed = [d for d in done if d["result"].get("status") != "ok"]
    print(f"{len(done)} runs in packs of {args.pack} on {len(devs)} device(s) x {args.per_gpu} in {wall:.0f}s; "
          f"{len(failed)} failed; target tau >= 0.6")
    write_json(args.out, dict(bench="proxy_fidelity", env=env_info(), wall_s=round(wall, 1), devices=devs,
                              per_device=args.per_gpu, pack=args.pack, variant=args.variant, budget=args.budget,
                              taus=taus, spread=spread, along_long=along, rows=rows,
                              default_config=cfg_default.to_dict(), long_config=cfg_long.to_dict(), runs=done))


if __name__ == "__main__":
    main()

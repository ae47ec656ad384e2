"""Fidelity of the proxy: does `default` rank patterns as `long` (≥10× the steps) does?

Kendall's tau between the two presets' validation top-1 over ≥16 patterns of the small variant under
8softmax: every baseline the budget admits plus uniformly sampled feasible patterns. `default` also
runs with a second seed, so the table shows how much of the disagreement is seed noise.
Runs spread over every visible GPU in packs (`train_proxies`: a pack's patterns train together on
the same batches, as a search worker trains them), long runs first.

    python bench/proxy_fidelity.py --data fashion-mnist:DIR [--pack 8] [--per-gpu 1] [--patterns 16]
    python bench/proxy_fidelity.py --smoke        # seconds, on the CPU
"""

from __future__ import annotations

import argparse
import statistics
import time

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
    args = ap.parse_args()

    over = overrides(args) | dict(variant=args.variant)
    if args.smoke:
        over["variant"] = args.variant = "micro"
        args.patterns, args.per_gpu = min(args.patterns, 5), 2
    cfg_default = preset("default", over, **({"steps": args.default_steps} if args.default_steps else {}))
    long_steps = args.long_steps if args.long_steps is not None else (10 * cfg_default.steps if args.smoke else None)
    cfg_long = preset("long", over, **({"steps": long_steps} if long_steps else {}))
    labels = (["long"] if long_steps != 0 else []) + [f"default/s{s}" for s in range(args.default_seeds)]
    pats = patterns(args.variant, args.budget, args.patterns, args.seed)
    print(f"{len(pats)} patterns of {args.variant} under {args.budget}; default {cfg_default.steps} steps, "
          f"long {cfg_long.steps} steps ({cfg_long.steps / cfg_default.steps:.0f}x)")

    names = {p: n for n, p in pats}
    packs = [[p for _, p in pats[i : i + args.pack]] for i in range(0, len(pats), args.pack)]
    runs = ([("long", 0, cfg_long)] if long_steps != 0 else []) + [
        (f"default/s{s}", s, cfg_default.replace(seed=s)) for s in range(args.default_seeds)]
    jobs = [dict(label=label, patterns=pack, seed=seed, config=cfg.to_dict()) for label, seed, cfg in runs
            for pack in packs]
    devs = devices(args.smoke, args.gpus)
    t0 = time.time()
    done = run_pool(jobs, devs, args.per_gpu)
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
    if long_steps != 0:
        taus["top1:default_mean_vs_long"] = tau("default/mean", "long")
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
        print(f"kendall tau {k:<26} {v if v is None else round(v, 3)}")
    for k, v in spread.items():
        print(f"{k:<38} {v if v is None else round(v, 4)}")
    train_s = {label: [d["result"].get("train_s") for d in done if d["label"] == label and d["result"].get("train_s")]
               for label in ("long", "default/s0")}
    for label, ts in train_s.items():
        if ts:
            print(f"{label}: median train {statistics.median(ts):.1f}s a pack of up to {args.pack} "
                  f"({args.per_gpu} process(es) per GPU)")
    failed = [d for d in done if d["result"].get("status") != "ok"]
    print(f"{len(done)} runs in packs of {args.pack} on {len(devs)} device(s) x {args.per_gpu} in {wall:.0f}s; "
          f"{len(failed)} failed; target tau >= 0.6")
    write_json(args.out, dict(bench="proxy_fidelity", env=env_info(), wall_s=round(wall, 1), devices=devs,
                              per_device=args.per_gpu, pack=args.pack, variant=args.variant, budget=args.budget,
                              taus=taus, spread=spread, rows=rows, default_config=cfg_default.to_dict(),
                              long_config=cfg_long.to_dict(), runs=done))


if __name__ == "__main__":
    main()

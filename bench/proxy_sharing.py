"""Sharing one GPU: 1, 2, 4 and 8 proxy runs at once, aggregate images/s.

Each count starts that many processes on one GPU; each loads its data, waits at a barrier, then
runs `train_proxy` (different patterns, as a search would). (A `threads` mode, runs in threads of
one process, went with the package's thread-shared runs: docs/performance.md.)
Aggregate images/s = all training images / (last end − first start), start and end including model
build, CUDA-graph capture and evaluation, which is what a trial costs. The count with the most
trials per hour sets the default GPU fraction per trial (1/count).

    python bench/proxy_sharing.py --data fashion-mnist:DIR [--counts 1,2,4,8] [--steps 600]
    python bench/proxy_sharing.py --smoke
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

from proxy_common import common_args, env_info, overrides, preset, table, write_json


def _run(rank: int, pattern: str, cfg_dict: dict, barrier, results) -> None:
    import torch

    from sola_search.proxies import ProxyConfig, load_proxy_data, train_proxy

    cfg = ProxyConfig.from_dict(cfg_dict)
    if cfg.device.startswith("cuda"):
        torch.cuda.set_device(torch.device(cfg.device))
    data = load_proxy_data(cfg)
    barrier.wait()
    t0 = time.time()
    r = train_proxy(pattern, cfg, data).to_dict()
    results.put(dict(rank=rank, pattern=pattern, t0=t0, t1=time.time(), result=r))


def run_count(k: int, patterns: list[str], cfg_dict: dict) -> dict:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_run, args=(i, patterns[i % len(patterns)], cfg_dict, barrier, results))
             for i in range(k)]
    for p in procs:
        p.start()
    out = [results.get() for _ in range(k)]
    for p in procs:
        p.join()
    span = max(o["t1"] for o in out) - min(o["t0"] for o in out)
    rs = [o["result"] for o in out]
    ok = [r for r in rs if r["status"] == "ok"]
    images = sum(r["steps"] for r in ok) * cfg_dict["batch_size"]
    return dict(runs=k, ok=len(ok), span_s=round(span, 2), aggregate_images_per_s=round(images / span, 1),
                sum_loop_images_per_s=round(sum(r["images_per_s"] for r in ok), 1),
                mean_train_s=round(statistics.fmean(r["train_s"] for r in ok), 2) if ok else None,
                mean_wall_s=round(statistics.fmean(r["wall_s"] for r in ok), 2) if ok else None,
                trials_per_hour=round(len(ok) / span * 3600, 1),
                peak_mem_mb=max((r["peak_mem_mb"] for r in ok), default=None),
                failures=[f"{r['status']}: {r['reason']}" for r in rs if r["status"] != "ok"], details=out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "proxy_sharing")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--counts", default="1,2,4,8", help="concurrent runs to try (default 1,2,4,8)")
    ap.add_argument("--steps", type=int, default=600, help="steps of each run (default 600)")
    ap.add_argument("--device", default="cuda:0")
    args = ap.parse_args()

    over = overrides(args)
    counts = [int(c) for c in args.counts.split(",")]
    if args.smoke:
        counts = [c for c in counts if c <= 2]
    else:
        over |= dict(steps=args.steps, device=args.device)
    cfg = preset(args.preset, over)
    from sola_search.space import Budget, FeasibleSet, baselines

    budget = Budget.parse("8softmax")
    pats = [str(p) for p in baselines(cfg.variant, budget).values()]
    pats += [str(p) for p in FeasibleSet(cfg.variant, budget).sample(max(0, max(counts) - len(pats)), rng=0)]
    print(f"{cfg.variant} x{cfg.width} {cfg.resolution}px batch {cfg.batch_size}, {cfg.steps} steps a run, "
          f"on {cfg.device}; counts {counts}")
    rows = []
    for k in counts:
        row = run_count(k, pats, cfg.to_dict())
        rows.append(row)
        print(f"  {k} at once: {row['aggregate_images_per_s']:,.0f} images/s aggregate, "
              f"{row['span_s']}s span, {row['failures'] or 'no failures'}", flush=True)
    base = rows[0]["aggregate_images_per_s"] or 1.0
    for r in rows:
        r["vs_one"] = round(r["aggregate_images_per_s"] / base, 2)
    table(rows, ["runs", "ok", "aggregate_images_per_s", "vs_one", "sum_loop_images_per_s", "mean_train_s",
                 "mean_wall_s", "trials_per_hour", "peak_mem_mb"])
    best = max(rows, key=lambda r: r["trials_per_hour"])
    print(f"best: {best['runs']} runs at once -> GPU fraction per trial {1 / best['runs']:.3g}")
    write_json(args.out, dict(bench="proxy_sharing", env=env_info(), config=cfg.to_dict(), patterns=pats, rows=rows,
                              best_runs=best["runs"]))


if __name__ == "__main__":
    main()

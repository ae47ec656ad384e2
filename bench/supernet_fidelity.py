"""Fidelity and speed of the weight-sharing supernet estimator (issue 15).

Trains one supernet (`proxies/supernet.py`) of the proxy geometry on `--data` for `--steps` steps,
sampling a feasible pattern of `--budget` per sample group (the balanced rule, `--groups` patterns
per step, `--candidates` draws each), then scores the fidelity protocol's stratified pattern set
(`space.feasible.stratified_patterns`, as `bench/proxy_fidelity.py`: same variant, budget, count and
seed give the same set)
with the shared weights. Measured: the training's GPU-minutes, and scoring speed in patterns per
GPU-minute (the pattern set scored again and again in calls of `--pack` patterns, as a search's
worker scores them, until `--speed-patterns` patterns are done; the first call timed apart) of
`Supernet.score` (the prefix walk; the mixed path it replaced: docs/performance.md), at one or more memory
bounds (`--memory`). With `--reference FILE`
(a proxy_fidelity JSON record) it reports Kendall tau of the supernet scores against the reference
mean, with a bootstrap 90 % interval over patterns, and top-5 overlap, ranked by top-1 and by loss.

    python bench/supernet_fidelity.py --data recall --variant small --budget 8softmax --steps 3000 \\
        --reference bench/out/proxy_fidelity.json --out bench/out/supernet_fidelity_recall.json
    python bench/supernet_fidelity.py --smoke      # a minute, on the CPU
    python bench/supernet_fidelity.py --data recall:val=2000 --steps 300 --speed-patterns 1280
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from proxy_common import common_args, env_info, overrides, preset, table, write_json

from sola_search.proxies.supernet import (
    DEFAULT_CANDIDATES,
    DEFAULT_GROUPS,
    SupernetSpec,
    train_supernet,
)
from sola_search.results.fidelity import bootstrap_tau, kendall_tau, top_k_overlap
from sola_search.space import Budget
from sola_search.space.feasible import FeasibleSet, stratified_patterns


def reference_means(path: str, pats: list[str]) -> dict[str, dict[str, float]]:
    """pattern → mean top-1 and loss over the reference's seeds (the `ref/s*` runs of a proxy_fidelity record)."""
    runs = json.loads(Path(path).read_text())["runs"]
    by: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        res = r.get("result", {})
        if r["label"].startswith("ref/") and res.get("status") == "ok":
            d = by.setdefault(r["pattern"], {"top1": [], "loss": []})
            d["top1"].append(res["val_top1"])
            d["loss"].append(res["val_loss"])
    return {p: {k: statistics.fmean(v) for k, v in d.items()} for p, d in by.items() if p in pats}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "supernet_fidelity")
    ap.add_argument("--variant", default="small")
    ap.add_argument("--budget", default="8softmax")
    ap.add_argument("--preset", default="default", help="the proxy geometry's preset (default default)")
    ap.add_argument("--steps", type=int, help="supernet training steps (default 10x the preset's)")
    ap.add_argument("--groups", type=int, default=DEFAULT_GROUPS, help="patterns per training step")
    ap.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES, help="uniform draws per group (1: uniform)")
    ap.add_argument("--patterns", type=int, default=24, help="the stratified set's size (as proxy_fidelity)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the pattern set (as proxy_fidelity)")
    ap.add_argument("--train-seed", type=int, default=0, help="the supernet's seed (weights, batches, sampling)")
    ap.add_argument("--pack", type=int, default=64, help="patterns per scoring call (a search worker's pack)")
    ap.add_argument("--speed-patterns", type=int, default=20000,
                    help="patterns scored for the speed figure: drawn uniformly from the feasible set, as a "
                         "search's first proposals are (distinct, almost surely)")
    ap.add_argument("--memory", nargs="+", default=["auto"], metavar="GIB",
                    help="the prefix walk's memory bound in GiB (auto: Supernet's own); several: each timed on the "
                         "same patterns")
    ap.add_argument("--scoring-compile", nargs="+", default=["off"], choices=("off", "blocks"),
                    help="blocks: the prefix walk's blocks torch.compile'd (`Supernet.compile`, static shapes); "
                         "both: each timed on the same patterns, off first (compiled blocks stay compiled)")
    ap.add_argument("--images", type=int, help="score on the first N validation images only (default all)")
    ap.add_argument("--reference", metavar="JSON", help="a proxy_fidelity record: tau against its reference mean")
    ap.add_argument("--dir", help="where the supernet is written (default a temporary directory; an existing "
                    "supernet there is reused, a checkpoint resumed)")
    args = ap.parse_args()
    over = overrides(args) | dict(variant=args.variant, seed=args.train_seed)
    if args.smoke:
        over |= dict(variant="micro", device="cpu")
        args.variant, args.steps, args.speed_patterns = "micro", args.steps or 4, min(args.speed_patterns, 128)
        args.budget = "4softmax" if args.budget == "8softmax" else args.budget
    cfg = preset(args.preset if not args.smoke else "quick", over)
    if args.smoke:
        cfg = cfg.replace(max_train=512, batch_size=32)
    pats = [str(p) for _, p in stratified_patterns(args.variant, Budget.parse(args.budget), args.patterns, args.seed)]
    spec = SupernetSpec(cfg, args.budget, steps=args.steps, groups=args.groups, candidates=args.candidates)
    directory = Path(args.dir or tempfile.mkdtemp(prefix="supernet-"))
    print(f"supernet of {args.variant} x{cfg.width} {cfg.resolution}px on {cfg.data}: {spec.total_steps} steps x "
          f"{cfg.batch_size}, {args.groups} patterns per step (balanced of {args.candidates}); {len(pats)} patterns "
          f"under {args.budget}; into {directory}", flush=True)

    sync()
    t0 = time.perf_counter()
    supernet = train_supernet(spec, directory)
    sync()
    train_wall = time.perf_counter() - t0
    meta = supernet.meta
    counts = meta["mixer_counts"]
    share = [s / (s + lin) for s, lin in zip(counts["softmax"], counts["linear"], strict=True)]
    print(f"trained in {train_wall:.1f}s ({meta['train_s']}s loop, {meta['mode']}); softmax share per block "
          f"min {min(share):.2f} max {max(share):.2f}", flush=True)

    # A search's first proposals: distinct patterns drawn uniformly (a repeated pattern is computed once).
    speed_pats = [str(p) for p in FeasibleSet(args.variant, Budget.parse(args.budget)).sample(args.speed_patterns, 1)]
    speeds, auto = {}, supernet.prefix_cache_bytes
    modes = sorted(set(args.scoring_compile), key=("off", "blocks").index)  # once compiled, blocks stay so
    runs = [(bound, mode) for mode in modes for bound in args.memory]
    for bound, mode in runs:
        if mode == "blocks":
            supernet.compile()
        supernet.prefix_cache_bytes = auto if bound == "auto" else int(float(bound) * 2**30)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        sync()
        t1 = time.perf_counter()
        results = supernet.score(pats, images=args.images)
        sync()
        first_s = time.perf_counter() - t1
        calls, chunk, t2 = 0, 0, time.perf_counter()
        for at in range(0, len(speed_pats), args.pack):
            supernet.score(speed_pats[at : at + args.pack], images=args.images)
            calls, chunk = calls + 1, max(chunk, supernet.chunk)
        sync()
        per_min = 60 * len(speed_pats) / (time.perf_counter() - t2)
        images = int(results[0].notes.split(", ")[-1].split()[0])  # notes end "N validation images"
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        print(f"scoring ({mode}), memory bound {supernet.prefix_cache_bytes / 2**30:.1f} GiB ({bound}): {per_min:,.0f} "
              f"patterns per minute ({len(speed_pats)} patterns, {len(set(speed_pats))} distinct, in {calls} calls "
              f"of {args.pack}; {images} validation images in chunks of {chunk}); first call {first_s:.1f}s"
              + (f"; peak memory {peak:.1f} GiB" if peak else ""), flush=True)
        key = bound if len(modes) == 1 else f"{bound}/{mode}"
        speeds[key] = dict(compile=mode, patterns_per_minute=round(per_min, 1), patterns=len(speed_pats),
                           distinct=len(set(speed_pats)), calls=calls, pack=args.pack, first_call_s=round(first_s, 2),
                           images=images, chunk=chunk, bound_gib=supernet.prefix_cache_bytes / 2**30,
                           peak_gib=peak, mode=results[0].mode, scores=[(r.val_top1, r.val_loss) for r in results])
    if len(speeds) > 1:
        (ka, a), (kb, b) = list(speeds.items())[:2]
        pairs = list(zip(a["scores"], b["scores"], strict=True))
        print(f"{kb} over {ka}: "
              f"{b['patterns_per_minute'] / a['patterns_per_minute']:.2f}x; top-1 equal on "
              f"{sum(x[0] == y[0] for x, y in pairs)} of {len(pats)}, largest loss difference "
              f"{max(abs(x[1] - y[1]) / abs(x[1]) for x, y in pairs):.1e} relative", flush=True)
    speed = next(iter(speeds.values())) | {"by_memory": speeds}

    rows = [dict(pattern=str(r.pattern), softmax=str(r.pattern).count("S"), top1=r.val_top1, loss=r.val_loss)
            for r in results]
    summary: dict = {}
    if args.reference:
        ref = reference_means(args.reference, pats)
        common = [r for r in rows if r["pattern"] in ref]
        for row in common:
            row["ref top1"] = ref[row["pattern"]]["top1"]
        for score, key, sign in (("top1", "top1", 1), ("loss", "loss", -1)):
            a = [sign * r[key] for r in common]
            b = [sign * ref[r["pattern"]][key] for r in common]
            if len(common) >= 3:
                lo, hi = bootstrap_tau(a, b)
                summary[score] = dict(patterns=len(common), tau_vs_ref_mean=kendall_tau(a, b), tau_90=[lo, hi],
                                      top5_overlap=top_k_overlap(a, b))
                print(f"ranked by {score}: tau {summary[score]['tau_vs_ref_mean']:.3f} (90% {lo:.3f} to {hi:.3f}), "
                      f"top-5 overlap {summary[score]['top5_overlap']} of 5, {len(common)} patterns")
    rows.sort(key=lambda r: -(r["top1"] or 0))
    table(rows, ["pattern", "softmax", "top1", "loss", *(["ref top1"] if args.reference else [])])
    gpu = torch.cuda.is_available()
    write_json(args.out, dict(
        bench="supernet_fidelity", env=env_info(), variant=args.variant, budget=args.budget, data=cfg.data,
        supernet=dict(steps=spec.total_steps, groups=args.groups, candidates=args.candidates, sha256=supernet.sha256,
                      mixer_counts=counts, softmax_share=share, train_curve=meta["train_curve"], mode=meta["mode"],
                      directory=str(directory)),
        train_wall_s=round(train_wall, 2), train_gpu_minutes=round(train_wall / 60, 3) if gpu else None,
        scoring=speed,
        config=cfg.to_dict(), reference=args.reference, summary=summary, rows=rows,
        scores={str(r.pattern): dict(val_top1=r.val_top1, val_loss=r.val_loss, val_by_group=r.val_by_group)
                for r in results}))


if __name__ == "__main__":
    sys.exit(main())

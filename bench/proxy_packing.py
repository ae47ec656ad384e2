"""Packs: several patterns trained together in one process (`train_proxies`, one CUDA graph with a
branch per model) against runs in separate processes that share a GPU by taking turns.

A layout PxK is P processes on one GPU, each training packs of K patterns, `--rounds` packs in a
row after a warm-up (as a search worker warms up before its first trial). The P=1 layouts run one
after the other in one process. Per layout: trials per hour and aggregate training images/s over
the span from the barrier to the last end (build, capture and evaluation included), the median
phases of a pack, and the overhead (wall − training − evaluation) as a fraction of the wall. The
first pattern is in every layout's first pack: its top-1 must be the same everywhere.

    python bench/proxy_packing.py --data fashion-mnist:DIR [--layouts 1x1,1x4,1x8,4x1,2x8] [--rounds 2]
    python bench/proxy_packing.py --smoke
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

from proxy_common import common_args, env_info, overrides, preset, table, write_json


def _worker(rank: int, packs: list[int], rounds: int, patterns: list[str], cfg_dict: dict, barrier, results) -> None:
    """Warm up, then for each pack size: wait at the barrier (when several processes share the GPU)
    and train `rounds` packs."""
    import torch

    from sola_search.proxies import ProxyConfig, load_proxy_data, train_proxies, warm_up

    cfg = ProxyConfig.from_dict(cfg_dict)
    if cfg.device.startswith("cuda"):
        torch.cuda.set_device(torch.device(cfg.device))
        torch.set_num_threads(2)
    data = load_proxy_data(cfg)
    for k in packs:
        warm_up(cfg, data, k)
        if barrier is not None:
            barrier.wait()
        for r in range(rounds):
            start = (rank * rounds + r) * k
            pats = [patterns[(start + j) % len(patterns)] for j in range(k)]
            t0 = time.time()
            rs = [x.to_dict() for x in train_proxies(pats, cfg, data)]
            reserved = torch.cuda.memory_reserved() / 2**20 if torch.cuda.is_available() else 0.0
            results.put(dict(rank=rank, pack=k, round=r, t0=t0, t1=time.time(), results=rs, reserved_mb=reserved))
        results.put(dict(rank=rank, pack=k, done=True))


def summarize(layout: str, items: list[dict], batch: int) -> dict:
    span = max(i["t1"] for i in items) - min(i["t0"] for i in items)
    rs = [r for i in items for r in i["results"]]
    ok = [r for r in rs if r["status"] == "ok"]
    walls = [r["wall_s"] for r in ok]
    over = [(r["wall_s"] - r["train_s"] - r["phases"].get("eval", 0)) / r["wall_s"] for r in ok]
    med = {p: round(statistics.median(r["phases"].get(p, 0.0) for r in ok), 3)
           for p in ("build", "capture", "train", "eval", "cleanup")} if ok else {}
    first = min((i for i in items if i["rank"] == 0 and i["round"] == 0), key=lambda i: i["t0"])["results"][0]
    return dict(layout=layout, trials=len(rs), ok=len(ok), span_s=round(span, 2),
                trials_per_hour=round(len(ok) / span * 3600, 1),
                aggregate_images_per_s=round(sum(r["steps"] for r in ok) * batch / span, 1),
                pack_wall_s=round(statistics.median(walls), 2) if ok else None,
                overhead=round(statistics.median(over), 4) if ok else None, phases=med,
                peak_mem_mb=max((r["peak_mem_mb"] for r in ok), default=None),
                reserved_mb=[round(i["reserved_mb"]) for i in sorted(items, key=lambda i: i["t1"])],
                first_pattern=first["pattern"], first_top1=first["val_top1"], first_loss=first["val_loss"],
                mean_top1=round(statistics.fmean(r["val_top1"] for r in ok), 4) if ok else None,
                failures=sorted({f"{r['status']}: {r['reason']}" for r in rs if r["status"] != "ok"}))


def run_layouts(layouts: list[tuple[int, int]], rounds: int, patterns: list[str], cfg_dict: dict,
                on_row=None) -> list[dict]:
    """Every layout's row; `on_row(rows)` after each, so a cut-off run keeps what it measured."""
    ctx = mp.get_context("spawn")
    rows = []
    single = [k for p, k in layouts if p == 1]
    groups = ([(1, single)] if single else []) + [(p, [k]) for p, k in layouts if p > 1]
    for procs, packs in groups:
        barrier, results = (ctx.Barrier(procs) if procs > 1 else None), ctx.Queue()
        ps = [ctx.Process(target=_worker, args=(i, packs, rounds, patterns, cfg_dict, barrier, results))
              for i in range(procs)]
        for p in ps:
            p.start()
        by_pack: dict[int, list] = {k: [] for k in packs}
        done = dict.fromkeys(packs, 0)
        while sum(done.values()) < procs * len(packs):
            item = results.get()
            if item.get("done"):
                done[item["pack"]] += 1
                if done[item["pack"]] == procs:  # every process has finished this pack size
                    row = summarize(f"{procs}x{item['pack']}", by_pack[item["pack"]], cfg_dict["batch_size"])
                    rows.append(row)
                    if on_row is not None:
                        on_row(rows)
                    print(f"  {row['layout']}: {row['trials_per_hour']:,.0f} trials/h, "
                          f"{row['aggregate_images_per_s']:,.0f} images/s, pack wall {row['pack_wall_s']} s, "
                          f"overhead {row['overhead']}, phases {row['phases']}, first top-1 {row['first_top1']}, "
                          f"reserved MB {row['reserved_mb']}"
                          f"{', ' + '; '.join(row['failures']) if row['failures'] else ''}", flush=True)
            else:
                by_pack[item["pack"]].append(item)
        for p in ps:
            p.join()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "proxy_packing")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--layouts", default="1x1,1x2,1x4,1x8,1x16,4x1,2x8",
                    help="PROCESSESxPACK layouts on one GPU (default 1x1,1x2,1x4,1x8,1x16,4x1,2x8)")
    ap.add_argument("--rounds", type=int, default=2, help="packs each process trains after its warm-up (default 2)")
    ap.add_argument("--device", default="cuda:0")
    args = ap.parse_args()

    over = overrides(args)
    layouts = [tuple(int(v) for v in s.split("x")) for s in args.layouts.split(",")]
    if args.smoke:
        layouts = [(p, k) for p, k in layouts if p * k <= 4]
    else:
        over |= dict(device=args.device)
    cfg = preset(args.preset, over)
    from sola_search.space import Budget, FeasibleSet, baselines

    budget = Budget.parse("8softmax")
    need = max(p * k for p, k in layouts) * args.rounds
    pats = [str(p) for p in baselines(cfg.variant, budget).values()]
    pats += [str(p) for p in FeasibleSet(cfg.variant, budget).sample(max(0, need - len(pats)), rng=0)]
    print(f"{cfg.variant} x{cfg.width} {cfg.resolution}px batch {cfg.batch_size}, {cfg.steps} steps a run, "
          f"on {cfg.device}; layouts {args.layouts}, {args.rounds} rounds")
    def record(rows: list[dict]) -> None:
        write_json(args.out, dict(bench="proxy_packing", env=env_info(), config=cfg.to_dict(), patterns=pats,
                                  rows=rows))

    rows = run_layouts(layouts, args.rounds, pats, cfg.to_dict(), record)
    base = next((r for r in rows if r["layout"] == "4x1"), rows[0])
    for r in rows:
        r["vs_" + base["layout"]] = round(r["trials_per_hour"] / base["trials_per_hour"], 2)
    table(rows, ["layout", "ok", "trials_per_hour", "vs_" + base["layout"], "aggregate_images_per_s", "pack_wall_s",
                 "overhead", "peak_mem_mb", "first_top1", "mean_top1"])
    record(rows)


if __name__ == "__main__":
    main()

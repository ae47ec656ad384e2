"""Shared pieces of the proxy benchmarks: options, smoke settings, a pool of long-lived worker
processes pinned to GPUs (each keeps its dataset between runs, as a search worker does),
Kendall's tau, tables and the JSON record; for the kernel benches, the shapes a step runs, a CUDA-graph timer,
tiling sweeps and a step's totals."""

from __future__ import annotations

import argparse
import ast
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from sola_search.proxies import ProxyConfig, get_preset  # noqa: E402
from sola_search.results.fidelity import kendall_tau  # noqa: E402, F401 — the benches' one copy is the package's

OUT = Path(__file__).resolve().parent / "out"  # bench/out wherever the script is run from (ignored by git)

# --smoke: the micro variant at a tiny size on the CPU, so a script runs end to end in seconds.
SMOKE = dict(variant="micro", width=0.25, resolution=32, steps=4, batch_size=32, warmup_steps=1, max_train=2000,
             val_fraction=0.02, eval_batch_size=512, device="cpu", log_points=2)


def common_args(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("--data", default="fashion-mnist", help="data spec, e.g. fashion-mnist:/data/fashion-mnist")
    p.add_argument("--out", default=str(OUT / f"{name}.json"), help="where the JSON record goes")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="ProxyConfig overrides for every run, e.g. width=0.25 resolution=32 batch_size=512")
    p.add_argument("--smoke", action="store_true", help="a seconds-long CPU run of the whole script (micro, 4 steps)")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--set KEY=VALUE pairs (values parsed as Python literals when they are), plus --data and --smoke."""
    out: dict[str, Any] = dict(data=args.data)
    if args.smoke:
        out |= SMOKE
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def preset(name: str, over: dict[str, Any], **more: Any) -> ProxyConfig:
    return get_preset(name, **(over | more))


def devices(smoke: bool, gpus: str | None = None) -> list[str]:
    """The devices to spread runs over: every visible GPU (or the --gpus list), or the CPU. A --gpus list
    that names no visible GPU is an error, not a silent run on the CPU."""
    if smoke:
        return ["cpu"]
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        chosen = [i.strip() for i in gpus.split(",")]
        if not all(i.isdigit() and int(i) < count for i in chosen):
            raise SystemExit(f"bench: --gpus {gpus}: expected indices of the {count} visible GPU(s), comma-joined")
        return [f"cuda:{int(i)}" for i in chosen]
    return [f"cuda:{i}" for i in range(count)] or ["cpu"]


def env_info() -> dict[str, Any]:
    info = dict(python=platform.python_version(), torch=torch.__version__, host=platform.node(),
                argv=" ".join(sys.argv), cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
                time=time.strftime("%Y-%m-%d %H:%M:%S"))
    if torch.cuda.is_available():
        info |= dict(gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                     cuda=torch.version.cuda)
    return info


def timed(fn, n: int, dev) -> float:
    """Seconds per call of `fn` over `n` calls (CUDA events on a GPU)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(n):
            fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) / 1e3 / n
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


# --- the kernel benches (dwconv_speed, mala_speed, sdpa_backends): shapes a step runs, each way timed ------
def graph_ms(step, reps: int, replays: int = 5, warm: int = 3) -> float:
    """ms per call of `step` (a forward and backward, say) on the GPU: `warm` calls on a side stream, then `reps`
    calls captured on it as one CUDA graph (the capture's errors this thread's only, as the package captures),
    replayed `replays` times between CUDA events."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warm):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
        for _ in range(reps):
            step()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / (replays * reps)


def model_inputs(cfg: ProxyConfig, dev: torch.device, pattern: str | None, match, describe) -> list[dict]:
    """`describe(name, module, input)` for every module `match` accepts, in one forward pass of the preset's
    model as training runs it (channels-last, bf16 autocast on a GPU), in the order the step calls them."""
    from sola_search.space import build_backbone

    model = build_backbone(cfg.variant, pattern, width=cfg.width, num_classes=10, in_chans=1).to(
        dev, memory_format=torch.channels_last)
    seen: list[dict] = []
    for name, m in model.named_modules():
        if match(m):
            m.register_forward_pre_hook(lambda mod, args, name=name: seen.append(describe(name, mod, args[0])))
    x = torch.randn(cfg.batch_size, 1, cfg.resolution, cfg.resolution, device=dev).to(
        memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        model(x)
    return seen


def kernel_bench_args(name: str, doc: str, tile_keys: tuple[str, ...], tiles_help: str):
    """A kernel bench's command line (`--preset`, `--reps`, `--tiles` with the common ones): its arguments, the
    tilings asked for, the preset's config and the device (the CPU for `--smoke` or without a GPU)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    common_args(ap, name)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--reps", type=int, default=20, help="calls per CUDA graph (default 20)")
    ap.add_argument("--tiles", nargs="+", default=[], metavar=":".join(k.upper() for k in tile_keys),
                    help=f"{tiles_help}; each shape's fastest is reported")
    args = ap.parse_args()
    tilings = parse_tilings(ap, args.tiles, tile_keys)
    dev = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    return args, tilings, preset(args.preset, overrides(args)), dev


def parse_tilings(ap: argparse.ArgumentParser, texts: list[str], keys: tuple[str, ...]) -> list[dict[str, int]]:
    """`--tiles A:B ...` as dicts of `keys` (a kernel module's TILES); anything else is the parser's error."""
    try:
        return [dict(zip(keys, map(int, t.split(":")), strict=True)) for t in texts]
    except ValueError:
        ap.error(f"--tiles takes {':'.join(k.upper() for k in keys)}, {len(keys)} whole numbers, not {texts}")


def sweep_tilings(tiles: dict, tilings: list[dict], time_ms) -> dict[str, Any]:
    """`time_ms()` with the kernel module's `tiles` set to each tiling in turn (restored after, whatever
    happened): each tiling's ms (keyed A:B:...), and the fastest."""
    default = dict(tiles)
    out: dict[str, float] = {}
    try:
        for t in tilings:
            tiles.update(t)
            out[":".join(map(str, t.values()))] = round(time_ms(), 4)
    finally:
        tiles.update(default)
    best = min(out.items(), key=lambda kv: kv[1])
    return dict(tiles_ms=out, best_tiles=best[0], best_ms=best[1])


def time_shapes(seen: list[dict], key, check, time_way, ways: tuple[str, str], gpu: bool, tiles: dict,
                tilings: list[dict]) -> list[dict]:
    """Each distinct row of `seen` once (`calls`: how often a step runs it), with `check(row)`'s figures and, on
    a GPU, `time_way(row, way)` ms for the peer and the kernels (`ways`), the kernels at each of `tilings` of
    their module's `tiles` too."""
    peer, kernels = ways
    rows, distinct = [], {}
    for r in seen:
        if key(r) in distinct:
            distinct[key(r)]["calls"] += 1
            continue
        r = dict(r, calls=1)
        r.update(check(r))
        if gpu:
            r[f"{peer}_ms"], r[f"{kernels}_ms"] = (round(time_way(r, w), 4) for w in ways)
            r["speedup"] = round(r[f"{peer}_ms"] / r[f"{kernels}_ms"], 2)
            if tilings:
                r.update(sweep_tilings(tiles, tilings, lambda r=r: time_way(r, kernels)))
                r["best_speedup"] = round(r[f"{peer}_ms"] / r["best_ms"], 2)
        distinct[key(r)] = r
        rows.append(r)
    return rows


def timing_columns(ways: tuple[str, str], gpu: bool, tilings: list[dict]) -> list[str]:
    return ([f"{w}_ms" for w in ways] + ["speedup"] if gpu else []) + (
        ["best_tiles", "best_ms", "best_speedup"] if gpu and tilings else [])


def step_totals(rows: list[dict], ways: tuple[str, str], what: str, tilings: list[dict]) -> dict[str, float]:
    """One model's step, every call of every shape: ms each way, and the kernels with each shape at its fastest
    tiling (the default one included); printed."""
    peer, kernels = ways
    total = {w: round(sum(r[f"{w}_ms"] * r["calls"] for r in rows), 3) for w in ways}
    print(f"one model's step, every {what} forward + backward: {peer} {total[peer]} ms, {kernels} {total[kernels]} "
          f"ms ({total[peer] / total[kernels]:.2f}x)")
    if tilings:
        total[f"{kernels}_best"] = best = round(sum(min(r["best_ms"], r[f"{kernels}_ms"]) * r["calls"] for r in rows),
                                                3)
        print(f"with each shape's fastest tiling: {kernels} {best} ms ({total[peer] / best:.2f}x {peer})")
    return total


def write_json(path: str, record: dict[str, Any], quiet: bool = False) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    tmp.replace(p)
    if not quiet:
        print(f"wrote {p}")


def table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    def fmt(v: Any) -> str:
        if isinstance(v, float):  # a small error (1e-6) shown as itself, not as 0.0000
            return f"{v:.1e}" if 0 < abs(v) < 1e-3 else f"{v:,.4f}" if abs(v) < 10 else f"{v:,.1f}"
        return "-" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


# --- the plain loop a user writes first -----------------------------------------------------------
def plain_train(pattern, cfg: ProxyConfig, loader, num_classes: int, channels: int, dev: torch.device,
                item_every: int = 1) -> tuple[torch.nn.Module, list[float], int, float]:
    """Same model, steps and schedule as the proxy, written the plain way: batches from a DataLoader,
    fp32, eager, `loss.item()` every `item_every` steps. Returns (model, losses, steps, train seconds)."""
    import torch.nn.functional as F

    from sola_search.proxies import lr_at
    from sola_search.space import build_backbone

    torch.manual_seed(cfg.seed)
    model = build_backbone(cfg.variant, pattern, width=cfg.width, num_classes=num_classes, in_chans=channels,
                           layer_scale_init=cfg.layer_scale_init, drop_path_rate=cfg.drop_path_rate).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, cfg) / cfg.lr)
    model.train()
    losses, step = [], 0
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    while step < cfg.steps:
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad()
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            if step % item_every == 0 or step == cfg.steps:
                losses.append(loss.item())
            if step == cfg.steps:
                break
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return model, losses, step, time.perf_counter() - t0


# --- a pool of worker processes, one or more per device -------------------------------------------
def _worker(device: str, jobs, results, threads: int) -> None:
    from sola_search.proxies import ProxyConfig, train_proxies

    torch.set_num_threads(threads)  # many processes share the host: no oversubscription
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    while (job := jobs.get()) is not None:
        cfg = ProxyConfig.from_dict(job["config"] | dict(device=device))
        pats = job.get("patterns") or [job["pattern"]]
        t0 = time.time()
        try:
            rs = [r.to_dict() for r in train_proxies(pats, cfg, seeds=job.get("seeds"))]
        except Exception as e:  # noqa: BLE001 — bad input: report it, keep the pool alive
            rs = [dict(status="error", reason=f"{type(e).__name__}: {e}")] * len(pats)
        for p, r in zip(pats, rs, strict=True):
            results.put({**{k: v for k, v in job.items() if k not in ("patterns", "seeds")}, "pattern": p, "result": r,
                         "device": device, "t0": t0, "t1": time.time()})


def run_pool(jobs: list[dict[str, Any]], devs: list[str], per_device: int,
             on_result: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Run jobs ({"pattern" or "patterns": a pack trained together, "config": dict, ...}) on
    len(devs) × per_device long-lived processes, in the order given (put the longest first); returns
    one item per pattern with its `result`, in completion order. `on_result(done)` is called after
    each item, e.g. to save what is done before a time limit ends the script."""
    ctx = mp.get_context("spawn")
    q_jobs, q_results = ctx.Queue(), ctx.Queue()
    slots = [d for d in devs for _ in range(per_device)]
    for job in jobs:
        q_jobs.put(job)
    for _ in slots:
        q_jobs.put(None)
    threads = max(1, (os.cpu_count() or 1) // len(slots))
    procs = [ctx.Process(target=_worker, args=(d, q_jobs, q_results, threads), daemon=True) for d in slots]
    for p in procs:
        p.start()
    done, t_start = [], time.time()
    try:
        expected = sum(len(job.get("patterns") or [job["pattern"]]) for job in jobs)
        while len(done) < expected:
            try:
                item = q_results.get(timeout=5)
            except Exception:  # noqa: BLE001 — queue.Empty: check the workers are alive
                if not any(p.is_alive() for p in procs):
                    raise RuntimeError("every worker process died") from None
                continue
            done.append(item)
            if on_result is not None:
                on_result(done)
            r = item["result"]
            top1 = r.get("val_top1")
            print(f"[{len(done)}/{expected} {time.time() - t_start:6.0f}s] {item.get('label', '')} {item['pattern']} "
                  f"{r['status']} top1={top1 if top1 is None else round(top1, 4)} train={r.get('train_s')}s "
                  f"{r.get('images_per_s')} img/s on {item['device']} {r.get('reason', '')}", flush=True)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    return done

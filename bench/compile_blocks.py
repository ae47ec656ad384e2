"""Compiled blocks inside `train_proxies` (issue 16): a search worker's warm-up and packs, one compile
mode per process, as a search worker runs them.

The process pays a worker's warm-up (`warm_up`: data on the device, a full pack of an alternating
pattern primed: built, one eager step and one evaluation batch; with `--compile blocks` also the
compilation, from scratch or from inductor's caches on this machine's disk), then trains `--packs` packs
of `--pack` patterns (the same seeded feasible patterns in every process). Recorded: the warm-up's
seconds, graphs compiled (after the warm-up and after each pack: no new graph for a new pattern or pack
means blocks share them), each pack's wall, training seconds and images/s, and each pattern's loss curve and top-1.

    python bench/compile_blocks.py --compile blocks --out bench/out/blocks.json [--data ...] [--set ...]
    python bench/compile_blocks.py --compare bench/out/off.json bench/out/blocks.json
    python bench/compile_blocks.py --smoke
    python bench/compile_blocks.py --check-eval    # each pack's models evaluated both ways (graphed, eager)
    python bench/compile_blocks.py --ahead         # then the same packs each prepared while the one before trains
    python bench/compile_blocks.py --mala torch    # MALA as the package's formula (the fused kernels' peer)
    python bench/compile_blocks.py --dwconv cudnn  # depthwise convolutions as torch runs them (the kernels' peer)
    python bench/compile_blocks.py --dwconv-tiles bench/out/dwconv_speed.json  # each shape at its fastest tiling
    python bench/compile_blocks.py --profile-warm-up  # where the warm-up's wall-clock seconds go, by thread and op
    python bench/compile_blocks.py --threads 4     # on a Ray worker's CPU threads
"""

from __future__ import annotations

import argparse
import contextlib
import json
import linecache
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import torch
from proxy_common import common_args, env_info, overrides, preset, write_json

from sola_search.proxies import load_proxy_data, train, train_proxies, warm_up
from sola_search.proxies.compiled import cache_dir, cache_use, graphs_compiled
from sola_search.space import Budget, FeasibleSet


class StackSampler:
    """Where a warm-up's wall-clock seconds go: every `interval` s, the Python stack of each thread at
    work (not waiting on a lock or queue), C calls charged to the Python line that made them. cProfile
    would see one thread and Python's own time only; a warm-up runs on the package's device thread and
    autograd's, and much of it in C (loading kernels, cuDNN, the driver)."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.samples = interval, 0
        self.inclusive: Counter = Counter()  # function → samples with it anywhere on a working thread's stack
        self.leaf: Counter = Counter()  # the innermost Python function (what it called in C included)
        self.threads: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def __enter__(self) -> StackSampler:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.wall_s = time.perf_counter() - self._t0

    @staticmethod
    def _where(code) -> str:
        path = code.co_filename
        if "torchinductor" in path:
            path = "<inductor's generated code>"
        else:
            for root in ("site-packages/", f"{Path(__file__).resolve().parents[1]}/", "/lib/python3"):
                if root in path:
                    path = path.split(root, 1)[1]
                    break
        return f"{path}:{code.co_name}"

    @classmethod
    def _innermost(cls, frame) -> str:
        """The innermost function, and what it was doing where that says more: the op an `OpOverload`
        call runs in C, the line of inductor's generated code."""
        where = cls._where(frame.f_code)
        if frame.f_code.co_filename.endswith("torch/_ops.py") and frame.f_code.co_name == "__call__":
            op = frame.f_locals.get("self")
            return f"{where} ({getattr(op, '_name', op)})"
        if "torchinductor" in frame.f_code.co_filename:
            return f"{where}: {linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()[:90]}"
        return where

    def _run(self) -> None:
        me = threading.get_ident()
        # waiting, not working: locks, queues, and inductor's compile workers' pipes and timer
        idle = ("threading.py", "queue.py", "selectors.py", "subproc_pool.py", "compile_worker/timer.py")
        while not self._stop.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident == me or frame.f_code.co_filename.endswith(idle):
                    continue
                self.threads[names.get(ident, "a thread started in C (autograd's)")] += 1
                self.leaf[self._innermost(frame)] += 1
                seen = set()
                while frame is not None:
                    seen.add(self._where(frame.f_code))
                    frame = frame.f_back
                self.inclusive.update(seen)

    def report(self, top: int = 45) -> dict:
        """Printed and returned: seconds per working thread, per function on the stack, per innermost function."""
        s = self.wall_s / max(self.samples, 1)
        rep = dict(wall_s=round(self.wall_s, 2), samples=self.samples,
                   threads_s={k: round(v * s, 2) for k, v in self.threads.most_common()},
                   inclusive_s=[[k, round(v * s, 2)] for k, v in self.inclusive.most_common(top)],
                   leaf_s=[[k, round(v * s, 2)] for k, v in self.leaf.most_common(top)])
        print(f"warm-up sampled: {rep['wall_s']} s, {self.samples} samples; seconds at work by thread: "
              f"{rep['threads_s']}")
        for title, rows in (("on the stack (inclusive)", rep["inclusive_s"]), ("innermost", rep["leaf_s"])):
            print(f"  {title}:")
            for k, v in rows:
                print(f"    {v:7.2f} s  {k}")
        return rep


def compare(a_path: str, b_path: str) -> dict:
    """Loss curves and top-1 of the same patterns in two records: the largest relative difference of
    any logged loss, and of the final top-1."""
    a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    rows = []
    for ra, rb in zip(a["results"], b["results"], strict=True):
        assert ra["pattern"] == rb["pattern"]
        rel = [abs(x[1] - y[1]) / abs(x[1]) for x, y in zip(ra["train_curve"], rb["train_curve"], strict=True)]
        rows.append(dict(pattern=ra["pattern"], max_rel_loss=max(rel), final_loss=(ra["train_curve"][-1][1],
                         rb["train_curve"][-1][1]), top1=(ra["val_top1"], rb["val_top1"])))
    out = dict(a=a_path, b=b_path, patterns=len(rows), max_rel_loss=max(r["max_rel_loss"] for r in rows),
               mean_max_rel_loss=sum(r["max_rel_loss"] for r in rows) / len(rows),
               max_top1_diff=max(abs(r["top1"][0] - r["top1"][1]) for r in rows),
               mean_top1=(sum(r["top1"][0] for r in rows) / len(rows), sum(r["top1"][1] for r in rows) / len(rows)),
               rows=rows)
    print(f"{a_path} vs {b_path}: {len(rows)} patterns; loss curves differ by at most {out['max_rel_loss']:.4%} "
          f"(mean of the per-pattern maxima {out['mean_max_rel_loss']:.4%}); top-1 by at most "
          f"{out['max_top1_diff']:.4f} (means {out['mean_top1'][0]:.4f} / {out['mean_top1'][1]:.4f})")
    return out


def check_evaluation(record: list) -> None:
    """After each pack's evaluation (on a GPU one CUDA graph at the training's batch shape), the same
    trained models evaluated again the eager way (CUDA graphs off for evaluation only, batches of
    `eval_batch_size`): both ways' top-1 and loss per model into `record`; the pack keeps the first."""
    from dataclasses import replace

    inner = train._evaluate_pack

    def evaluate_pack(pack, prepared=None) -> None:
        inner(pack, prepared)
        first = [(r.res.val_top1, r.res.val_loss) for r in pack.runs]
        t = time.perf_counter()
        inner(replace(pack, cfg=pack.cfg.replace(cuda_graphs=False)))
        eager_s = time.perf_counter() - t
        second = [(r.res.val_top1, r.res.val_loss) for r in pack.runs]
        for run, (top1, loss) in zip(pack.runs, first, strict=True):
            run.res.val_top1, run.res.val_loss = top1, loss
        pairs = [(a, b) for a, b in zip(first, second, strict=True) if a[0] is not None and b[0] is not None]
        row = dict(graphed=first, eager=second, eager_s=round(eager_s, 3),
                   max_top1_diff=max((abs(a[0] - b[0]) for a, b in pairs), default=None),
                   max_rel_loss_diff=max((abs(a[1] - b[1]) / abs(b[1]) for a, b in pairs), default=None),
                   mean_top1=[sum(a[0] for a, _ in pairs) / max(1, len(pairs)),
                              sum(b[0] for _, b in pairs) / max(1, len(pairs))])
        record.append(row)
        print(f"evaluation check: {'graphed' if pack.cuda and pack.cfg.cuda_graphs else 'eager'} against eager, "
              f"top-1 differs by at most {row['max_top1_diff']}, loss by {row['max_rel_loss_diff']:.1e} relative; "
              f"means {row['mean_top1'][0]:.5f} / {row['mean_top1'][1]:.5f}", flush=True)

    train._evaluate_pack = evaluate_pack


def inductor_config(settings: list[str]) -> None:
    """`--inductor NAME=VALUE ...`: set inductor's config (VALUE a Python literal; dotted names reach its
    sub-configs, e.g. triton.persistent_reductions=False) before anything compiles."""
    import ast

    from torch._inductor import config

    for setting in settings:
        name, _, value = setting.partition("=")
        *path, leaf = name.split(".")
        obj = config
        for part in path:
            obj = getattr(obj, part, None)
        if obj is None or not hasattr(obj, leaf) or not value:
            raise ValueError(f"--inductor takes NAME=VALUE with NAME one of torch._inductor.config's: {setting!r}")
        try:
            setattr(obj, leaf, ast.literal_eval(value))
        except (ValueError, SyntaxError):
            raise ValueError(f"--inductor {setting!r}: VALUE must be a Python literal (True, 1, 'x')") from None


def use_mala(way: str, precision: str) -> None:
    """`--mala torch`: MALA as the package's formula, compiled within the blocks (the peer; `train.FUSED_MALA`
    off); `triton`, the default: through `sola_search/proxies/triton_mala.py`'s kernels, as training runs it,
    their dots at `precision`."""
    train.FUSED_MALA = way == "triton"
    if way == "triton":
        from sola_search.proxies import triton_mala

        triton_mala.PRECISION = precision


def use_dwconv(way: str, tiles_json: str | None) -> dict:
    """`--dwconv`: the depthwise convolutions through `sola_search/proxies/triton_dwconv.py`'s kernels as training
    runs them (`triton`), or as torch runs them (`cudnn`: train.FUSED_DWCONV off, the peer); with `--dwconv-tiles`,
    each shape at the tiling a `dwconv_speed.py --tiles` record found fastest (where it beat the rule's). Returns
    the tilings set."""
    train.FUSED_DWCONV = way == "triton"
    if way == "cudnn":
        return {}
    from sola_search.proxies import triton_dwconv

    chosen = {}
    for row in json.loads(Path(tiles_json).read_text())["rows"] if tiles_json else []:
        if row.get("best_ms") is not None and row["best_ms"] < row["triton_ms"]:
            elems, warps, progs = map(int, row["best_tiles"].split(":"))
            triton_dwconv.SHAPE_TILES[(row["k"], tuple(row["shape"]))] = dict(elems=elems, warps=warps,
                                                                               wgrad_progs=progs)
            chosen[row["what"]] = row["best_tiles"]
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "compile_blocks")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--compile", default="blocks", help="off or blocks (default blocks)")
    ap.add_argument("--pack", type=int, default=8, help="patterns per pack (default 8, a search worker's)")
    ap.add_argument("--packs", type=int, default=2, help="packs trained after the warm-up (default 2)")
    ap.add_argument("--budget", default="8softmax", help="the patterns are drawn within it (default 8softmax)")
    ap.add_argument("--profile-warm-up", action="store_true",
                    help="sample the warm-up's threads' stacks and print where its wall-clock seconds went")
    ap.add_argument("--check-eval", action="store_true",
                    help="after each pack's evaluation, evaluate its trained models again the eager way and compare")
    ap.add_argument("--ahead", action="store_true",
                    help="then the same packs again from two threads: each prepared while the one before trains")
    ap.add_argument("--ahead-only", action="store_true", help="only the packs prepared ahead")
    ap.add_argument("--threads", type=int, metavar="N",
                    help="torch's CPU threads (torch.set_num_threads), e.g. 4 as a Ray worker of a run on a 16-core "
                         "host runs; default torch's")
    ap.add_argument("--capture-warm-steps", type=int, default=train.CAPTURE_WARM_STEPS, metavar="N",
                    help="eager steps before a thread's first capture of a shape (train.CAPTURE_WARM_STEPS, default "
                         "the package's)")
    ap.add_argument("--ahead-steps", type=int, nargs="+", metavar="N",
                    help="the packs prepared ahead once per value of train.AHEAD_STEPS (the steps the pack training "
                         "runs before it hands the next pack to be prepared; default: the package's)")
    ap.add_argument("--queue-steps", type=int, nargs="+", metavar="N",
                    help="then the packs prepared ahead again with at most N steps queued on the device "
                         "(train.QUEUE_STEPS: the loop waits on an event, not inside a graph launch), once per value")
    ap.add_argument("--eval-blocks", choices=["compiled", "eager"], default="compiled",
                    help="evaluation through the compiled blocks' training forward (the package's way, default) "
                         "or eager in eval mode (train.EVAL_COMPILED off: the peer)")
    ap.add_argument("--inductor", nargs="+", default=[], metavar="NAME=VALUE",
                    help="torch._inductor.config settings for this run (a lever), e.g. coordinate_descent_tuning=True")
    ap.add_argument("--mala", choices=["torch", "triton"], default="triton",
                    help="MALA through the package's Triton kernels as training runs it (default) or as its formula, "
                         "compiled within the blocks (train.FUSED_MALA off: the peer)")
    ap.add_argument("--mala-precision", choices=["tf32x3", "tf32"], default="tf32x3",
                    help="with --mala triton: the kernels' dots as three TF32 products (default) or one "
                         "(triton_mala.PRECISION)")
    ap.add_argument("--dwconv", choices=["cudnn", "triton"], default="triton",
                    help="depthwise convolutions through the package's Triton kernels as training runs them "
                         "(default) or as torch runs them (cuDNN; train.FUSED_DWCONV off: the peer)")
    ap.add_argument("--dwconv-tiles", metavar="JSON",
                    help="with --dwconv triton: each shape's fastest tiling from a `dwconv_speed.py --tiles` record")
    ap.add_argument("--compare", nargs=2, metavar="JSON", help="compare two records' loss curves and top-1")
    args = ap.parse_args()
    if args.compare:
        write_json(args.out, compare(*args.compare))
        return

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = preset(args.preset, overrides(args), compile=args.compile)
    train.EVAL_COMPILED = args.eval_blocks == "compiled"
    train.CAPTURE_WARM_STEPS = args.capture_warm_steps
    try:
        inductor_config(args.inductor)
    except ValueError as e:
        ap.error(str(e))
    if args.smoke:
        args.pack, args.packs = 2, 3 if args.ahead else 1
    use_mala(args.mala, args.mala_precision)
    dwconv_tiles = use_dwconv(args.dwconv, args.dwconv_tiles)
    cache = cache_dir()
    rec: dict = dict(bench="compile_blocks", env=env_info(), config=cfg.to_dict(), cache_dir=cache,
                     inductor=args.inductor, mala=args.mala, mala_precision=args.mala_precision, dwconv=args.dwconv,
                     dwconv_tiles=dwconv_tiles,
                     cache_files_before=sum(len(f) for _, _, f in os.walk(cache)) if os.path.isdir(cache) else 0)
    patterns = [str(p) for p in FeasibleSet(cfg.variant, Budget.parse(args.budget)).sample(args.pack * args.packs, 0)]
    t0 = time.perf_counter()
    data = load_proxy_data(cfg)
    # what the models run: the kernels on a GPU Triton targets
    rec["fused_mala"], rec["fused_dwconv"] = train.fused_kernels(data.device)
    rec["eval_check"] = []
    if args.check_eval:
        check_evaluation(rec["eval_check"])
    t1 = time.perf_counter()
    with StackSampler() if args.profile_warm_up else contextlib.nullcontext() as sampler:
        warm = warm_up(cfg, data, args.pack)
    if sampler is not None:
        rec["warm_up_profile"] = sampler.report()
    t2 = time.perf_counter()
    rec |= dict(warm_data_s=round(t1 - t0, 2), warm_kernels_s=round(t2 - t1, 2), warm_status=warm.status,
                warm_reason=warm.reason, warm_phases=warm.phases,
                graphs_after_warm_up=graphs_compiled() if args.compile == "blocks" else 0,
                graphs_from=cache_use() if args.compile == "blocks" else {})
    print(f"compile {args.compile}: warm-up {t2 - t0:.1f} s (data {t1 - t0:.1f}, kernels {t2 - t1:.1f}: "
          f"phases {warm.phases}), {rec['graphs_after_warm_up']} graphs compiled ({rec['graphs_from']}), "
          f"cache {cache} had {rec['cache_files_before']} files", flush=True)
    if args.compile == "blocks":  # where the warm-up's compilation time went (dynamo's own accounting)
        from torch._dynamo.utils import compile_times
        rec["compile_times"] = compile_times(repr="str", aggregate=True)
        print(rec["compile_times"], flush=True)
    rec["packs"], rec["results"], rec["spans"] = [], [], []
    steps = args.ahead_steps or [train.AHEAD_STEPS]
    queue_default = train.QUEUE_STEPS  # the package's: "ahead" is what a worker runs
    ahead = [f"ahead {n}" if args.ahead_steps else "ahead" for n in steps] if args.ahead or args.ahead_only else []
    ways = (["one after another"] if not args.ahead_only else []) + ahead + (
        [f"ahead, queue {n}" for n in args.queue_steps or []] if ahead else [])
    for way in ways:
        if way.startswith("ahead "):
            train.AHEAD_STEPS = int(way.split()[1])
        train.QUEUE_STEPS = int(way.split()[-1]) if ", queue " in way else queue_default
        outs, t0 = train_packs(patterns, cfg, data, args, ahead=way != "one after another", way=way)
        span = max(end for _, _, end, _ in outs) - t0
        for i, start, end, results in sorted(outs, key=lambda o: o[1]):
            train_s = results[0].train_s
            images = sum(r.steps for r in results) * cfg.batch_size
            pack = dict(way=way, wall_s=round(end - start, 2), train_s=train_s, phases=results[0].phases,
                        images_per_s=round(images / train_s),
                        ms_per_model_step=round(1e3 * train_s / cfg.steps / len(results), 3),
                        graphs=graphs_compiled() if args.compile == "blocks" else 0, mode=results[0].mode,
                        notes=results[0].notes, statuses=[r.status for r in results],
                        peak_mem_mb=results[0].peak_mem_mb)
            rec["packs"].append(pack)
            rec["results"] += [dict(way=way, pattern=r.pattern, val_top1=r.val_top1, val_loss=r.val_loss,
                                    train_curve=r.train_curve, status=r.status) for r in results]
            print(f"{way}, pack {i}: wall {end - start:.1f} s, train {train_s:.1f} s, {pack['images_per_s']:,} "
                  f"images/s ({pack['ms_per_model_step']} ms per model-step), {pack['mode']}, {pack['notes']}, "
                  f"graphs {pack['graphs']}, phases {pack['phases']}, top-1 {[r.val_top1 for r in results]}",
                  flush=True)
        images = args.packs * args.pack * cfg.steps * cfg.batch_size
        rec["spans"].append(dict(way=way, span_s=round(span, 2), s_per_pack=round(span / args.packs, 2),
                                 images_per_s=round(images / span)))
        print(f"{way}: {args.packs} packs in {span:.1f} s, {span / args.packs:.2f} s a pack, "
              f"{images / span:,.0f} images/s over the span", flush=True)
    if len(ways) >= 2 and ways[0] == "one after another":
        by = {(r["way"], r["pattern"]): r["val_top1"] for r in rec["results"]}
        rec["ahead_vs_one_after_another"] = {}
        for i, way in enumerate(ways[1:], 1):
            diffs = [abs(by[(ways[0], p)] - by[(way, p)]) for w, p in by if w == ways[0]
                     if by[(ways[0], p)] is not None and by.get((way, p)) is not None]
            rec["ahead_vs_one_after_another"][way] = dict(
                speed=round(rec["spans"][0]["span_s"] / rec["spans"][i]["span_s"], 3),
                max_top1_diff=max(diffs, default=None))
        print(f"ahead: {rec['ahead_vs_one_after_another']}", flush=True)
    if torch.cuda.is_available():
        rec["peak_mem_mb"] = max(p["peak_mem_mb"] for p in rec["packs"])
    write_json(args.out, rec)


def train_packs(patterns: list[str], cfg, data, args, ahead: bool, way: str = "") -> tuple[list, float]:
    """Train `args.packs` packs: one after another, or from two threads, so that each pack waits for the
    device while the one before trains and is prepared by it (a search worker's `--ahead 1`). Returns
    (index, start, end, results) per pack, and the start."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int):
        start = time.perf_counter()
        print(f"pack {i} called at {start - t0:.1f} s", flush=True)
        results = train_proxies(patterns[i * args.pack : (i + 1) * args.pack], cfg, data)
        end = time.perf_counter()
        print(f"pack {i} ({way}) done at {end - t0:.1f} s: phases {results[0].phases}", flush=True)
        return i, start, end, results

    t0 = time.perf_counter()
    if not ahead:
        return [one(i) for i in range(args.packs)], t0
    import faulthandler
    import sys

    faulthandler.dump_traceback_later(120, repeat=True, file=sys.stderr)  # every thread's stack, should it hang
    try:
        with ThreadPoolExecutor(2) as pool:
            return [f.result() for f in [pool.submit(one, i) for i in range(args.packs)]], t0
    finally:
        faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    main()

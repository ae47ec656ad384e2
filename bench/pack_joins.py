"""What a pack's step loses at its joins, and to its per-model optimizers (issue 16).

Why: a pack's training step is one CUDA graph with one branch per model, forked from the pack's stream and joined
back to it at the end of every step; the next step's graph starts only when the slowest model has finished, and
while the last models finish their small kernels the GPU is partly idle. How much of a ~52 ms pack-step that costs
is what each way here measures, from the same pack (`train._prepare`: the package's models, compiled blocks, data
and captured step), each way as CUDA graphs replayed `--steps` times without data copies (learning rate 0):

- `the training loop`: the package's `_train_loop` over the config's steps with that graph (data drawn and augmented,
  learning rate set, losses summed between replays; `--ways loop`), against the same graph replayed as many times;
- `one graph a step`: the package's graph (the peer; every ratio is against it);
- `K steps a graph`: each model's branch runs K steps before the join (one join per K steps);
- `a graph per model`: each model's one-step graph replayed on its own stream, never joined until the end (the
  most that fewer joins can give);
- `one AdamW over the pack`: each branch forward, backward and clipping, then after the join one fused AdamW over
  every model's parameters (the same update, elementwise), against an AdamW per model in its branch;
- `evaluation beside training` (`--ways eval`): the pack's evaluation graph (`train._GraphedEval`, every batch of
  the validation split) replayed on a side stream while its training graph replays `--steps` times, against the
  two one after the other (the package's order): how much of a pack's evaluation the next pack's training could
  hide.

    python bench/pack_joins.py --data fashion-mnist:DIR --pack 8 [--ways loop graph k per-model adamw]
    python bench/pack_joins.py --smoke      # the CPU: each way's code runs eagerly, nothing timed on a GPU
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from proxy_common import common_args, env_info, overrides, preset, table, write_json

from sola_search.proxies import ProxyResult, load_proxy_data, train
from sola_search.space import Budget, FeasibleSet, resolve_pattern


def repeated(step, k: int):
    """A model's step run k times on the same batch (its branch in a graph of k steps)."""
    def steps(x, y):
        for _ in range(k):
            loss = step(x, y)
        return loss
    return steps


def without_optimizer(run, pack):
    """A model's step up to its clipping: what a branch does when one AdamW steps the whole pack."""
    cfg = pack.cfg

    def step(x, y):
        run.opt.zero_grad(set_to_none=True)
        with pack.autocast():
            logits = run.model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip, foreach=pack.cuda)
        return loss
    return step


def pack_optimizer(pack) -> torch.optim.Optimizer:
    """One AdamW over every model's parameters, with their own state tensors and the pack's learning rate."""
    cuda = pack.cuda
    groups = [dict(params=[p for r in pack.runs for p in r.opt.param_groups[k]["params"]],
                   weight_decay=pack.runs[0].opt.param_groups[k]["weight_decay"],
                   lr=pack.lr_t if cuda else pack.cfg.lr) for k in (0, 1)]
    opt = torch.optim.AdamW(groups, lr=pack.cfg.lr, betas=(0.9, 0.999), fused=cuda, capturable=cuda)
    for r in pack.runs:
        opt.state.update(r.opt.state)
    return opt


def ways(pack, xy, ks: list[int], names: list[str]) -> list[tuple[str, int, list]]:
    """(name, steps a replay, [(body, stream index)]): each body is captured as one graph on its stream
    (0: the pack's, which forks; i: model i's side stream) and every graph is replayed once a round."""
    fork, runs = pack.fork, pack.runs
    x = lambda run: xy[run.stream]  # noqa: E731
    out = [("one graph a step", 1, [(lambda: fork([lambda r=r: r.step(*x(r)) for r in runs]), 0)])]
    if "k" in names:
        for k in ks:
            out.append((f"{k} steps a graph", k,
                        [(lambda k=k: fork([lambda r=r: repeated(r.step, k)(*x(r)) for r in runs]), 0)]))
    if "per-model" in names:
        out.append(("a graph per model", 1, [(lambda r=r: r.step(*x(r)), i + 1) for i, r in enumerate(runs)]))
    if "adamw" in names:
        opt = pack_optimizer(pack)
        steps = [without_optimizer(r, pack) for r in runs]

        def one_adamw():
            losses = fork([lambda r=r, s=s: s(*x(r)) for r, s in zip(runs, steps, strict=True)])
            opt.step()
            return losses
        out.append(("one AdamW over the pack", 1, [(one_adamw, 0)]))
    return out


def loop_against_replays(prepared, rounds: int) -> list[dict]:
    """The package's training loop with the prepared graph, then the same graph replayed as often alone
    (wall clock, the device synchronized at both ends of each): what the loop adds a step."""
    pack, cfg = prepared.pack, prepared.pack.cfg
    rows = []
    for r in range(rounds):
        torch.cuda.synchronize()
        t = time.perf_counter()
        train._train_loop(pack, prepared.batches, prepared.first, prepared.graphed, None, 5.0)
        loop = (time.perf_counter() - t) / cfg.steps
        graph = prepared.graphed.graph
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(cfg.steps):
            graph.replay()
        torch.cuda.synchronize()
        alone = (time.perf_counter() - t) / cfg.steps
        for way, s in (("the training loop", loop), ("its graph replayed alone", alone)):
            rows.append(dict(way=way, repeat=r, ms_per_pack_step=round(1e3 * s, 3),
                             ms_per_model_step=round(1e3 * s / len(pack.runs), 3),
                             speed_vs_replayed_alone=round(alone / s, 4)))
            print(f"{way} (round {r}): {1e3 * s:.3f} ms a pack-step", flush=True)
    return rows


def eval_beside(prepared, steps: int, rounds: int) -> list[dict]:
    """The training graph replayed `steps` times and the pack's evaluation, one after the other and side by side
    (the evaluation on its own stream, queued first); device time from events, ms for the whole."""
    pack, data = prepared.pack, prepared.pack.data
    graph = prepared.graphed.graph
    evaluation = train._GraphedEval(pack, pack.runs, 0)
    main, side = torch.cuda.current_stream(), torch.cuda.Stream()

    def evaluate():
        with torch.cuda.stream(side):
            evaluation(data.val_x, data.val_y, None)

    def device_ms(fn) -> float:
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(main)
        side.wait_stream(main)
        fn()
        main.wait_stream(side)
        b.record(main)
        b.synchronize()
        return a.elapsed_time(b)

    def train_only():
        for _ in range(steps):
            graph.replay()

    def after():
        train_only()
        side.wait_stream(main)
        evaluate()

    def beside():
        evaluate()
        train_only()

    rows = []
    for r in range(rounds):
        ms = {name: device_ms(fn) for name, fn in (("training alone", train_only), ("evaluation alone", evaluate),
                                               ("evaluation after training", after),
                                               ("evaluation beside training", beside))}
        hidden = (ms["evaluation after training"] - ms["evaluation beside training"]) / ms["evaluation alone"]
        for name, t in ms.items():
            rows.append(dict(way=name, repeat=r, ms=round(t, 2), steps=steps,
                             eval_hidden=round(hidden, 3) if name == "evaluation beside training" else None))
            print(f"{name} (round {r}): {t:.2f} ms", flush=True)
    return rows


def ms_per_step(bodies: list, k: int, pack, n: int) -> float:
    """Each body once eagerly, then captured on its stream and the graphs replayed n // k rounds; ms per step."""
    streams = pack.fork.streams
    main = streams[0]
    graphs = []
    for body, s in bodies:
        streams[s].wait_stream(main)
        with torch.cuda.stream(streams[s]):
            body()
            graphs.append((train._graph_of(body)[0], streams[s]))
        main.wait_stream(streams[s])
    torch.cuda.synchronize()
    rounds = max(1, n // k)
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record(main)
    for _, s in graphs:
        s.wait_stream(main)
    for _ in range(rounds):
        for g, s in graphs:
            with torch.cuda.stream(s):
                g.replay()
    for _, s in graphs:
        main.wait_stream(s)
    b.record(main)
    b.synchronize()
    ms = a.elapsed_time(b) / (rounds * k)
    del graphs
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "pack_joins")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--pack", type=int, default=8, help="models in the pack (default 8, a search worker's)")
    ap.add_argument("--steps", type=int, default=200, help="pack-steps timed per way (default 200)")
    ap.add_argument("--k", type=int, nargs="+", default=[2, 4], help="steps per graph tried (default 2 4)")
    ap.add_argument("--budget", default="8softmax")
    ap.add_argument("--repeat", type=int, default=2, help="times every way is timed, in turn (default 2)")
    ap.add_argument("--ways", nargs="+", default=["loop", "graph"],
                    choices=["loop", "graph", "k", "per-model", "adamw", "eval"],
                    help="what is timed besides one graph a step, the peer, which always runs (default: loop graph)")
    args = ap.parse_args()
    cfg = preset(args.preset, overrides(args), compile="off" if args.smoke else "blocks")
    if args.smoke:
        args.pack, args.k = 2, [2]
    t0 = time.perf_counter()
    data = load_proxy_data(cfg)
    patterns = [resolve_pattern(str(p), cfg.variant)
                for p in FeasibleSet(cfg.variant, Budget.parse(args.budget)).sample(args.pack, 0)]
    results = [ProxyResult(status="ok") for _ in patterns]
    rows: list[dict] = []
    with train._on_device(data.device):
        prepared = train._prepare(patterns, [cfg] * len(patterns), data, results, {})
        pack = prepared.pack
        print(f"pack of {len(patterns)} prepared in {time.perf_counter() - t0:.1f} s ({results[0].mode}, "
              f"{results[0].notes})", flush=True)
        xy = [(data.normalize(xb, cfg.channels_last), yb) for xb, yb in prepared.first]
        all_ways = ways(pack, xy, args.k, args.ways)
        if not pack.cuda:  # the smoke: each way's bodies run eagerly, twice
            for name, _, bodies in all_ways:
                for _ in range(2):
                    for body, _ in bodies:
                        body()
                rows.append(dict(way=name, ms_per_pack_step=None))
            if "eval" in args.ways:  # the evaluation's batches, eagerly on the CPU
                train._GraphedEval(pack, pack.runs, 0)(data.val_x, data.val_y, None)
                rows.append(dict(way="evaluation beside training", ms=None))
        else:
            loop_rows = loop_against_replays(prepared, args.repeat) if "loop" in args.ways else []
            loop_rows += eval_beside(prepared, args.steps, args.repeat) if "eval" in args.ways else []
            prepared.graphed = None  # its graph's memory back before the ways capture theirs
            torch.cuda.empty_cache()
            pack.lr_t.fill_(0.0)
            for rep in range(args.repeat):
                for name, k, bodies in all_ways:
                    ms = ms_per_step(bodies, k, pack, args.steps)
                    rows.append(dict(way=name, repeat=rep, ms_per_pack_step=round(ms, 3),
                                     ms_per_model_step=round(ms / len(patterns), 3)))
                    print(f"{name} (round {rep}): {ms:.3f} ms a pack-step", flush=True)
            peer = {r["repeat"]: r["ms_per_pack_step"] for r in rows if r["way"] == "one graph a step"}
            for r in rows:
                r["speed_vs_one_graph_a_step"] = round(peer[r["repeat"]] / r["ms_per_pack_step"], 4)
            rows = loop_rows + rows
    table(rows, [c for c in ("way", "repeat", "ms", "eval_hidden", "ms_per_pack_step", "ms_per_model_step",
                             "speed_vs_replayed_alone", "speed_vs_one_graph_a_step") if any(c in r for r in rows)])
    write_json(args.out, dict(bench="pack_joins", env=env_info(), config=cfg.to_dict(), pack=len(patterns),
                              patterns=[str(p) for p in patterns], mode=results[0].mode, rows=rows))


if __name__ == "__main__":
    main()

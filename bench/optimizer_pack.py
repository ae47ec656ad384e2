"""A pack's optimizer step on its own: each model's AdamW on its own stream (what a pack runs now) against one
AdamW over every model's parameters (a lever for issue 16, unmeasured so far).

Why: in one model's compiled step (docs/performance.md, fifteenth session) fused AdamW took 0.33 ms and the gradient
clipping's multi-tensor norm 0.10 ms of 10.57, about ten times what their bytes need at the H200's bandwidth: many
small tensors, a launch per chunk. AdamW is elementwise, so one optimizer over a whole pack's parameters (two
groups: with and without weight decay) updates every parameter exactly as the model's own does, in fewer, larger
kernels. Clipping stays per model (its norm is the model's). Each way is captured as one CUDA graph of the pack's
clipping and step and timed over `--steps` replays; the parameters after one step are compared for equality.

    python bench/optimizer_pack.py --preset default --pack 8
    python bench/optimizer_pack.py --smoke      # the CPU, micro models, the equality check only
"""

from __future__ import annotations

import argparse

import torch
from proxy_common import common_args, env_info, overrides, preset, table, timed, write_json

from sola_search.proxies.train import _Fork, make_optimizer
from sola_search.space import build_backbone


def models_with_grads(cfg, n: int, dev: torch.device) -> list[torch.nn.Module]:
    """`n` proxy models of the config's geometry, each with a gradient drawn once (the same for every way)."""
    out = []
    for i in range(n):
        torch.manual_seed(cfg.seed + i)
        m = build_backbone(cfg.variant, "all-linear", width=cfg.width, num_classes=10, in_chans=1,
                           layer_scale_init=cfg.layer_scale_init).to(dev)
        for p in m.parameters():
            p.grad = torch.randn_like(p) * 1e-2
        out.append(m)
    return out


def per_model(models, cfg, dev, fork: _Fork):
    """A pack's way: each model's clipping and AdamW on its own stream."""
    opts = [make_optimizer(m, cfg, dev) for m in models]

    def clip_and_step(params, opt) -> None:
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=dev.type == "cuda")
        opt.step()

    return lambda: fork([lambda p=p, o=o: clip_and_step(p, o) for p, o in opts])


def one_optimizer(models, cfg, dev, fork: _Fork):
    """The lever: clipping per model on its own stream, then one AdamW over every model's parameters."""
    pairs = [make_optimizer(m, cfg, dev) for m in models]
    groups = [dict(params=[p for _, o in pairs for p in o.param_groups[k]["params"]],
                   weight_decay=pairs[0][1].param_groups[k]["weight_decay"]) for k in (0, 1)]
    cuda = dev.type == "cuda"
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), fused=cuda, capturable=cuda)
    for _, o in pairs:
        opt.state.update(o.state)  # the same state tensors make_optimizer created, as a capture needs

    def step() -> None:
        fork([lambda p=p: torch.nn.utils.clip_grad_norm_(p, cfg.grad_clip, foreach=cuda) for p, _ in pairs])
        opt.step()

    return step


def seconds_per_step(step, dev: torch.device, fork: _Fork, n: int) -> float:
    """`step` as a CUDA graph on the fork's main stream (three eager calls first, for the foreach kernels'
    workspaces), replayed `n` times; on the CPU `step` itself."""
    if dev.type != "cuda":
        return timed(step, n, dev)
    with torch.cuda.stream(fork.main):
        for _ in range(3):
            step()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=fork.main):
            step()
    return timed(graph.replay, n, dev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "optimizer_pack")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--pack", type=int, default=8, help="models in the pack (default 8, a search worker's)")
    ap.add_argument("--steps", type=int, default=200, help="replays timed (default 200)")
    args = ap.parse_args()
    cfg = preset(args.preset, overrides(args))
    dev = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    n = 3 if args.smoke else args.steps
    if args.smoke:
        args.pack = 2

    # Equality first: one step each way from the same weights, gradients and (zero) state.
    fork = _Fork(dev, args.pack)  # a pack's streams: its main one and one per model
    after = []
    for make in (per_model, one_optimizer):
        models = models_with_grads(cfg, args.pack, dev)
        make(models, cfg, dev, fork)()
        after.append([p.detach().clone() for m in models for p in m.parameters()])
    equal = all(torch.equal(a, b) for a, b in zip(*after, strict=True))
    params = sum(t.numel() for t in after[0]) // args.pack

    rows = []
    for name, make in (("each model's AdamW, own stream", per_model), ("one AdamW over the pack", one_optimizer)):
        models = models_with_grads(cfg, args.pack, dev)
        s = seconds_per_step(make(models, cfg, dev, fork), dev, fork, n)
        rows.append(dict(way=name, ms_per_pack_step=round(1e3 * s, 4)))
    for r in rows:
        r["vs_per_model"] = round(rows[0]["ms_per_pack_step"] / r["ms_per_pack_step"], 3)
    # What AdamW must move at least: fp32 parameter, gradient and two moments read, three written.
    bytes_moved = 28 * params * args.pack
    print(f"{cfg.variant} x{cfg.width}, pack of {args.pack}, {params:,} parameters a model, {bytes_moved / 1e6:.0f} MB "
          f"moved a pack-step at least; {dev}; results after one step equal both ways: {equal}")
    table(rows, ["way", "ms_per_pack_step", "vs_per_model"])
    write_json(args.out, dict(bench="optimizer_pack", env=env_info(), config=cfg.to_dict(), pack=args.pack,
                              params_per_model=params, bytes_per_pack_step=bytes_moved, equal_after_one_step=equal,
                              rows=rows))
    if not equal:
        raise SystemExit("the two ways' parameters differ after one step")


if __name__ == "__main__":
    main()

"""Softmax attention at the proxy's shapes, by kernel: which SDPA backend (or plain matmuls and a softmax that
inductor fuses) is fastest for a few hundred tokens or fewer (issue 16).

Why: at the `default` proxy's 64 px the four stages hold 256, 64, 16 and 4 tokens, head dimension 32, batch 256:
thousands of tiny attention problems, where a fused attention kernel's tiles (64-128 query rows) are mostly
empty. torch picks the backend (cuDNN's on an H200, fifteenth session: 0.57 ms of a `last-8` step). Each way runs
forward and backward (gradients of q, k and v) at each stage's shape in bf16, 20 calls as one CUDA graph; the
outputs and gradients are compared with the math backend's in fp32.

    python bench/sdpa_backends.py --preset default
    python bench/sdpa_backends.py --smoke      # the CPU: the math ways only, their agreement checked
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
import torch.nn.functional as F
from proxy_common import common_args, env_info, graph_ms, model_inputs, overrides, preset, table, timed, write_json
from torch.nn.attention import SDPBackend, sdpa_kernel

from sola_search.space.backbone import Attention


def shapes(cfg, dev: torch.device) -> list[tuple[int, int, int, int, int]]:
    """(stage, batch, heads, tokens, head dim) of each stage's attention in the proxy model, from a forward pass."""
    def describe(name: str, m: Attention, x: torch.Tensor) -> tuple[int, int, int, int, int]:
        b, h, w, _ = x.shape
        return int(name.split(".")[1]), b, m.num_heads, h * w, m.head_dim

    return sorted(set(model_inputs(cfg, dev, "all-softmax", lambda m: isinstance(m, Attention),
                                   describe)))


def plain(q, k, v):
    """Attention as matmuls and a softmax (what inductor fuses when compiled)."""
    s = q.shape[-1] ** -0.5
    return torch.softmax((q @ k.transpose(-2, -1)) * s, dim=-1) @ v


def ways(cuda: bool) -> dict:
    out = {"math (eager)": lambda q, k, v: _with(SDPBackend.MATH, q, k, v),
           "plain matmuls, compiled": torch.compile(plain, dynamic=False)}
    if cuda:
        out = {"torch's choice (eager)": F.scaled_dot_product_attention,
               "torch's choice, compiled": torch.compile(F.scaled_dot_product_attention, dynamic=False),
               "cuDNN": lambda q, k, v: _with(SDPBackend.CUDNN_ATTENTION, q, k, v),
               "flash": lambda q, k, v: _with(SDPBackend.FLASH_ATTENTION, q, k, v),
               "memory-efficient": lambda q, k, v: _with(SDPBackend.EFFICIENT_ATTENTION, q, k, v)} | out
    return out


def _with(backend, q, k, v):
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q, k, v)


def fwd_bwd(fn, q, k, v, g):
    out = fn(q, k, v)
    return (out, *torch.autograd.grad(out, (q, k, v), g))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "sdpa_backends")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--calls", type=int, default=20, help="calls per graph (default 20)")
    ap.add_argument("--reps", type=int, default=10, help="graph replays timed (default 10)")
    args = ap.parse_args()
    cfg = preset(args.preset, overrides(args))
    dev = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    cuda = dev.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    rows = []
    for stage, b, h, n, d in shapes(cfg, dev):
        gen = torch.Generator(device="cpu").manual_seed(stage)
        base = [torch.randn(b, h, n, d, generator=gen) for _ in range(4)]
        q, k, v, g = (t.to(dev, dtype) for t in base)
        q, k, v = (t.requires_grad_() for t in (q, k, v))
        ref = fwd_bwd(plain, *(t.double().requires_grad_() for t in base[:3]), base[3].double())
        for name, fn in ways(cuda).items():
            try:
                got = fwd_bwd(fn, q, k, v, g)  # also the compiled ways' compilation, before any capture
                err = max(((a.double().cpu() - r).abs().max() / r.abs().max()).item()
                          for a, r in zip(got, ref, strict=True))
                if cuda:
                    # Warmed up on the stream it is captured on, the capture's errors this thread's only (`graph_ms`,
                    # as the package captures): stage 0's captures failed twice without ("operation failed due to a
                    # previous error during capture"; the side stream alone did not mend it).
                    ms = graph_ms(partial(fwd_bwd, fn, q, k, v, g), args.calls, replays=args.reps, warm=2)
                else:
                    ms = 1e3 * timed(lambda fn=fn, t=(q, k, v, g): fwd_bwd(fn, *t), 2, dev)
                rows.append(dict(stage=stage, shape=f"{b}x{h}x{n}x{d}", way=name, ms=round(ms, 4),
                                 max_rel_err=float(f"{err:.2e}")))
            except Exception as e:  # noqa: BLE001 — a backend may not take a shape: say so and go on
                rows.append(dict(stage=stage, shape=f"{b}x{h}x{n}x{d}", way=name, ms=None,
                                 error=str(e).splitlines()[0][:120]))
            print(rows[-1], flush=True)
    table(rows, ["stage", "shape", "way", "ms", "max_rel_err", "error"])
    write_json(args.out, dict(bench="sdpa_backends", env=env_info(), config=cfg.to_dict(), rows=rows))


if __name__ == "__main__":
    main()

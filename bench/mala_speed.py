"""MALA, the backbone's linear attention, as inductor compiles the package's `Attention.mala` against the Triton
kernels (`sola_search/proxies/triton_mala.py`), at every shape one proxy step runs it (issue 16).

Each linear block's q, k, v are recorded from a forward pass of the preset's model (shape and strides: strided
chunks of qkvg's bf16 output), then each way is called as training calls it, forward and backward, as one
CUDA graph of `--reps` calls timed with CUDA events: `compiled` is `torch.compile(Attention.mala)` (what the
compiled blocks run), `triton` the kernels. Checked first at each shape: outputs and q, k, v gradients of
both ways and of the package's eager `mala` (fp32) against its formula in fp64 (relative to the largest
magnitude); the kernels under `torch.compile` against themselves eager (the custom ops' fake shapes and strides);
and with bf16 q, k, v (training's) the kernels against the package's `mala` (both bf16 out: their rounding).

    python bench/mala_speed.py [--preset default] [--set batch_size=128 width=0.25 resolution=128]
    python bench/mala_speed.py --tiles 32:2 64:8 128:4     # the kernels' tilings too (BLOCK_N:WARPS), each shape's best
    python bench/mala_speed.py --smoke     # the checks on the CPU (TRITON_INTERPRET=1), small shapes, no timing
"""

from __future__ import annotations

import os
import sys
from functools import partial

if "--smoke" in sys.argv:  # before Triton is imported: its kernels then run on the CPU
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402
from proxy_common import (  # noqa: E402
    env_info,
    graph_ms,
    kernel_bench_args,
    model_inputs,
    step_totals,
    table,
    time_shapes,
    timing_columns,
    write_json,
)

from sola_search.proxies import triton_mala  # noqa: E402
from sola_search.proxies.triton_mala import mala  # noqa: E402
from sola_search.space.backbone import Attention  # noqa: E402


def shapes(cfg, dev: torch.device) -> list[dict]:
    """Every `mala` call's q (its k and v alike: (B, heads, N, d) views of qkvg's (B, H, W, 4C) output) in one
    forward pass of the preset's model, every block linear (a search's pattern has each stage's shape in some
    of its linear blocks)."""
    def describe(name, m, x):
        B, H, W, C = x.shape
        return dict(shape=(B, m.num_heads, H * W, m.head_dim))

    return model_inputs(cfg, dev, "all-linear", lambda m: isinstance(m, Attention), describe)


def inputs(row: dict, dev: torch.device, dtype) -> list[torch.Tensor]:
    """q, k, v as training has them: (B, heads, N, d) views of one (B, N, 4·heads·d) qkvg output."""
    B, h, N, d = row["shape"]
    qkvg = torch.randn(B, N, 4 * h * d, device=dev, dtype=dtype)
    return [t.reshape(B, N, h, d).transpose(1, 2).detach().requires_grad_(True) for t in qkvg.chunk(4, -1)[:3]]


def mala64(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """`Attention.mala`'s formula in fp64 (the package's computes in fp32 whatever its inputs): the reference."""
    n, d = q.shape[-2], q.shape[-1]
    s = d**-0.5
    q, k = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
    kv = (k.transpose(-2, -1) @ v) * (s / n)
    z = (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1)) * s
    return (1 + 1 / z) * (q @ kv) - z * v.mean(dim=-2, keepdim=True)


def worst(got, ref) -> float:
    """The largest difference over the output and the three gradients, relative to the largest magnitude among
    them all (a gradient that is zero in exact arithmetic, as q's and k's with one token, is judged at that scale)."""
    scale = max(float(r.abs().max()) for r in ref)
    return round(max(float((a.double() - r).abs().max()) for a, r in zip(got, ref, strict=True)) / scale, 7)


def check(row: dict, dev: torch.device, dtype) -> dict:
    """Against the formula in fp64: the kernels, the package's `mala` (fp32: the yardstick) and, on a GPU, the
    package's compiled; and the kernels compiled against themselves eager."""
    q, k, v = inputs(row, dev, dtype)
    g = torch.randn(q.shape, device=dev, dtype=dtype)

    def run(fn, *xs):
        y = fn(*xs)
        return [y.detach(), *torch.autograd.grad(y, xs, g.to(y.dtype))]

    ref = run(mala64, *(t.detach().double().requires_grad_(True) for t in (q, k, v)))
    kernels = run(mala, q, k, v)
    compiled_kernels = run(torch.compile(mala, fullgraph=True), q, k, v)
    out = dict(triton=worst(kernels, ref), package=worst(run(Attention.mala, q, k, v), ref),
               compiled_vs_eager_triton=worst(compiled_kernels, [t.double() for t in kernels]))
    if dev.type == "cuda":
        out["compiled"] = worst(run(torch.compile(Attention.mala), q, k, v), ref)
    q, k, v = (t.detach().bfloat16().requires_grad_(True) for t in (q, k, v))  # as training has them
    g = g.bfloat16()
    out["bf16_vs_package"] = worst(run(mala, q, k, v), [t.double() for t in run(Attention.mala, q, k, v)])
    return out


def time_way(row: dict, dev: torch.device, fn, reps: int) -> float:
    """ms per forward + backward, one CUDA graph of `reps` calls."""
    q, k, v = inputs(row, dev, torch.bfloat16)

    def step():
        y = fn(q, k, v)
        return torch.autograd.grad(y, (q, k, v), torch.ones_like(y))

    return graph_ms(step, reps)


def main() -> None:
    args, tilings, cfg, dev = kernel_bench_args(
        "mala_speed", __doc__, ("block_n", "warps"),
        "the kernels timed at each tiling too (triton_mala.TILES: tokens a loop iteration reads, warps a program)")
    if args.smoke:  # the interpreter is slow: the micro variant's shapes at a small batch
        cfg = cfg.replace(variant="micro", width=1.0, resolution=32, batch_size=2)
    torch.set_float32_matmul_precision("high")  # as training sets it on a GPU (TF32 for MALA's fp32 matmuls)
    fn = dict(compiled=torch.compile(Attention.mala), triton=mala)
    gpu, ways = dev.type == "cuda", ("compiled", "triton")
    rows = [dict(r, what="x".join(map(str, r["shape"]))) for r in shapes(cfg, dev)]
    rows = time_shapes(rows, lambda r: r["shape"], partial(check, dev=dev, dtype=torch.float32),
                       lambda r, way: time_way(r, dev, fn[way], args.reps), ways, gpu, triton_mala.TILES, tilings)
    table(rows, ["what", "calls", "triton", "package", "compiled_vs_eager_triton", "bf16_vs_package",
                 *(["compiled"] if gpu else []), *timing_columns(ways, gpu, tilings)])
    total = step_totals(rows, ways, "MALA", tilings) if gpu else {}
    write_json(args.out, dict(env=env_info(), config=cfg.to_dict(), rows=rows, total_ms=total))


if __name__ == "__main__":
    main()

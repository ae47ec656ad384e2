"""MALA, the backbone's linear attention, as inductor compiles the package's `Attention.mala` against the Triton
kernels (`bench/triton_mala.py`), at every shape one proxy step runs it (issue 16).

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

import argparse
import os
import sys
from functools import partial

if "--smoke" in sys.argv:  # before Triton is imported: its kernels then run on the CPU
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402
import triton_mala  # noqa: E402
from proxy_common import (  # noqa: E402
    OUT,
    common_args,
    env_info,
    graph_ms,
    overrides,
    parse_tilings,
    preset,
    sweep_tilings,
    table,
    write_json,
)
from triton_mala import mala  # noqa: E402

from sola_search.space import build_backbone  # noqa: E402
from sola_search.space.backbone import Attention  # noqa: E402


def shapes(cfg, dev: torch.device, channels: int, classes: int) -> list[dict]:
    """Every `mala` call's q (its k and v alike) in one forward pass of the preset's model, every block linear
    (a search's pattern has each stage's shape in some of its linear blocks)."""
    model = build_backbone(cfg.variant, "all-linear", width=cfg.width, num_classes=classes, in_chans=channels).to(
        dev, memory_format=torch.channels_last)
    seen: list[dict] = []
    package = Attention.mala

    def record(q, k, v):
        seen.append(dict(shape=tuple(q.shape), stride=tuple(q.stride()), dtype=str(q.dtype).split(".")[-1]))
        return package(q, k, v)

    Attention.mala = staticmethod(record)
    try:
        x = torch.randn(cfg.batch_size, channels, cfg.resolution, cfg.resolution, device=dev).to(
            memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            model(x)
    finally:
        Attention.mala = staticmethod(package)
    return seen


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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "mala_speed")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--reps", type=int, default=20, help="calls per CUDA graph (default 20)")
    ap.add_argument("--tiles", nargs="+", default=[], metavar="BLOCK_N:WARPS",
                    help="the kernels timed at each tiling too (triton_mala.TILES: tokens a loop iteration reads, "
                         "warps a program); each shape's fastest is reported")
    args = ap.parse_args()
    try:
        tilings = parse_tilings(args.tiles, ("block_n", "warps"))
    except ValueError:
        ap.error(f"--tiles takes BLOCK_N:WARPS, two whole numbers, e.g. 64:4, not {args.tiles}")
    cfg = preset(args.preset, overrides(args))
    dev = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    if args.smoke:  # the interpreter is slow: the micro variant's shapes at a small batch
        cfg = cfg.replace(variant="micro", width=1.0, resolution=32, batch_size=2)
    torch.set_float32_matmul_precision("high")  # as training sets it on a GPU (TF32 for MALA's fp32 matmuls)
    compiled = torch.compile(Attention.mala)
    rows, distinct = [], {}
    for r in shapes(cfg, dev, 1, 10):
        key = (r["shape"], r["stride"])
        if key in distinct:
            distinct[key]["calls"] += 1
            continue
        r = dict(r, calls=1, what="x".join(map(str, r["shape"])))
        r.update(check(r, dev, torch.float32))
        if dev.type == "cuda":
            r["compiled_ms"] = round(time_way(r, dev, compiled, args.reps), 4)
            r["triton_ms"] = round(time_way(r, dev, mala, args.reps), 4)
            r["speedup"] = round(r["compiled_ms"] / r["triton_ms"], 2)
            if tilings:
                r.update(sweep_tilings(triton_mala.TILES, tilings, partial(time_way, r, dev, mala, args.reps)))
                r["best_speedup"] = round(r["compiled_ms"] / r["best_ms"], 2)
        distinct[key] = r
        rows.append(r)
    cols = ["what", "calls", "triton", "package", "compiled_vs_eager_triton", "bf16_vs_package"] + (
        ["compiled", "compiled_ms", "triton_ms", "speedup"] if dev.type == "cuda" else []) + (
        ["best_tiles", "best_ms", "best_speedup"] if tilings and dev.type == "cuda" else [])
    table(rows, cols)
    total = {}
    if dev.type == "cuda":
        total = {w: round(sum(r[f"{w}_ms"] * r["calls"] for r in rows), 3) for w in ("compiled", "triton")}
        print(f"one model's step, every MALA forward + backward: compiled {total['compiled']} ms, "
              f"Triton {total['triton']} ms ({total['compiled'] / total['triton']:.2f}x)")
        if tilings:
            total["triton_best"] = round(sum(min(r["best_ms"], r["triton_ms"]) * r["calls"] for r in rows), 3)
            print(f"with each shape's fastest tiling: Triton {total['triton_best']} ms "
                  f"({total['compiled'] / total['triton_best']:.2f}x)")
    write_json(args.out or str(OUT / "mala_speed.json"), dict(env=env_info(), config=cfg.to_dict(), rows=rows,
                                                              total_ms=total))


if __name__ == "__main__":
    main()

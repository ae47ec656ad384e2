"""LayerNorm over few channels, forward + backward under bf16 autocast: which way is fastest on a GPU.

The proxy's LayerNorms normalise 8-64 channels over 10^5-10^6 positions (channels-last tensors):
torch.profiler puts them at 20-36 % of a training step (bench/proxy_profile.py). Ways timed, each
on the shapes of the `default` and the fidelity geometry:
  native      nn.LayerNorm (autocast runs it in fp32)
  split       F.layer_norm without weight and bias, then `* weight + bias` (the weight's and bias's
              gradients become a plain sum over positions instead of LayerNorm's own reduction)
  compiled    the native LayerNorm through torch.compile (one fused forward and backward)
  triton      bench/triton_layernorm.py: several rows per program, no cast kernel before it
Each way's forward + backward is captured as a CUDA graph and replayed (device time, not launches).
Also checks that each agrees with native (max difference of output and gradients, relative to
the largest value).

    python bench/layernorm_speed.py [--out FILE]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from proxy_common import OUT, env_info, table, write_json
from triton_layernorm import layer_norm as triton_layer_norm

SHAPES = {  # (batch, height, width, channels) of the proxy's LayerNorms at batch 256
    "default stem 1": (256, 32, 32, 16), "default stage 1": (256, 16, 16, 32), "default stage 2": (256, 8, 8, 64),
    "fidelity stem 1": (256, 64, 64, 8), "fidelity stage 1": (256, 32, 32, 16), "fidelity stage 2": (256, 16, 16, 32),
}


def native(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, 1e-6)


def split(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), None, None, 1e-6) * w + b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT / "layernorm_speed.json"))
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args()
    dev = torch.device("cuda")
    compiled = torch.compile(native)
    ways = dict(native=native, split=split, compiled=compiled,
                triton=lambda x, w, b: triton_layer_norm(x, w, b, 1e-6))
    rows = []
    for name, shape in SHAPES.items():
        x0 = torch.randn(shape, device=dev, dtype=torch.bfloat16)
        w0 = torch.rand(shape[-1], device=dev) + 0.5
        b0 = torch.randn(shape[-1], device=dev)
        g = torch.randn(shape, device=dev, dtype=torch.float32)
        ref = None
        row = dict(shape=name, positions=shape[0] * shape[1] * shape[2], channels=shape[-1])
        for way, fn in ways.items():
            x, w, b = (t.clone().requires_grad_() for t in (x0, w0, b0))

            def step(fn=fn, x=x, w=w, b=b, g=g):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    y = fn(x, w, b)
                y.backward(g.to(y.dtype))
                return y

            for _ in range(3):
                y = step()
            x.grad = w.grad = b.grad = None
            y = step()
            got = (y.float(), x.grad.float(), w.grad, b.grad)
            if ref is None:
                ref = got
            row[f"{way}_err"] = max((a - r).abs().max().item() / max(r.abs().max().item(), 1e-9)
                                    for a, r in zip(got, ref, strict=True))
            x.grad = w.grad = b.grad = None
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                step()
            torch.cuda.current_stream().wait_stream(s)
            x.grad = w.grad = b.grad = None
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            torch.cuda.synchronize()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            for _ in range(args.reps):
                graph.replay()
            e1.record()
            e1.synchronize()
            row[f"{way}_ms"] = e0.elapsed_time(e1) / args.reps
        rows.append(row)
    table(rows, ["shape", "positions", "channels", "native_ms", "split_ms", "compiled_ms", "triton_ms",
                 "split_err", "compiled_err", "triton_err"])
    write_json(args.out, dict(rows=rows, env=env_info()))


if __name__ == "__main__":
    main()

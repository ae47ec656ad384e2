"""The backbone's depthwise convolutions, cuDNN against the Triton kernels (`sola_search/proxies/triton_dwconv.py`),
at every shape one proxy step runs them (issue 16).

Each depthwise convolution of a model of the preset's geometry is called as training calls it (its input's
shape and strides recorded by a forward hook: channels-last, LePE's a strided chunk of qkvg's output), under
bf16 autocast: forward and backward (input, weight and bias gradients), each way as one CUDA graph of
`--reps` calls, timed with CUDA events. Checked first, both ways on the same input: outputs and gradients
in fp32 (no autocast; the kernels against cuDNN to float rounding) and under bf16 autocast.

    python bench/dwconv_speed.py [--preset default] [--set batch_size=128 width=0.25 resolution=128]
    python bench/dwconv_speed.py --tiles 4096:4:64 2048:4:64 8192:8:64 4096:4:256   # the kernels' tilings
    python bench/dwconv_speed.py --smoke     # the checks on the CPU (TRITON_INTERPRET=1), no timing
"""

from __future__ import annotations

import os
import sys
from functools import partial

if "--smoke" in sys.argv:  # before Triton is imported: its kernels then run on the CPU
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
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

from sola_search.proxies import triton_dwconv  # noqa: E402
from sola_search.proxies.triton_dwconv import depthwise_conv2d, fits  # noqa: E402


def shapes(cfg, dev: torch.device) -> list[dict]:
    """Every depthwise convolution's input in one forward pass of the preset's model: name, kernel, shape
    and strides (the same shape once per block and kind)."""
    return model_inputs(cfg, dev, None, fits, lambda name, m, x: dict(name=name, k=m.kernel_size[0],
                                                                       shape=tuple(x.shape), stride=tuple(x.stride())))


def make_input(row: dict, dev: torch.device, dtype) -> torch.Tensor:
    """A tensor of the recorded shape and strides (a strided chunk where training's was one)."""
    size = max(sum((n - 1) * s for n, s in zip(row["shape"], row["stride"], strict=True)) + 1, 1)
    base = torch.randn(size, device=dev, dtype=dtype)
    return torch.as_strided(base, row["shape"], row["stride"]).detach().requires_grad_(True)


def both(x, w, b, k, autocast: bool):
    """cuDNN's and the kernels' output and (input, weight, bias) gradients for one upstream gradient."""
    out = []
    g = None
    for fn in (lambda: F.conv2d(x, w, b, padding=k // 2, groups=w.shape[0]), lambda: depthwise_conv2d(x, w, b, False)):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            y = fn()
        if g is None:
            g = torch.randn_like(y)
        grads = torch.autograd.grad(y, (x, w, b), g)
        out.append([y.detach().float(), *(t.float() for t in grads)])
    return out


def check(row: dict, dev: torch.device) -> dict:
    """Largest difference of the kernels against cuDNN, relative to the largest magnitude, per output."""
    res = {}
    for mode, autocast in (("fp32", False), ("bf16", dev.type == "cuda")):
        C, k = row["shape"][1], row["k"]
        x = make_input(row, dev, torch.float32)
        w = torch.randn(C, 1, k, k, device=dev, requires_grad=True)
        b = torch.randn(C, device=dev, requires_grad=True)
        ref, got = both(x, w, b, k, autocast)
        res[mode] = [round(float((a - r).abs().max() / r.abs().max().clamp_min(1e-12)), 7) for r, a in zip(ref, got,
                                                                                                          strict=True)]
    return res


def time_way(row: dict, way: str, dev: torch.device, reps: int) -> float:
    """ms per forward + backward, one CUDA graph of `reps` calls."""
    C, k = row["shape"][1], row["k"]
    x = make_input(row, dev, torch.bfloat16)
    w = torch.randn(C, 1, k, k, device=dev, requires_grad=True)
    b = torch.randn(C, device=dev, requires_grad=True)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = (F.conv2d(x, w, b, padding=k // 2, groups=C) if way == "cudnn" else depthwise_conv2d(x, w, b, False))
        return torch.autograd.grad(y, (x, w, b), torch.ones_like(y))

    return graph_ms(step, reps)


def main() -> None:
    args, tilings, cfg, dev = kernel_bench_args(
        "dwconv_speed", __doc__, ("elems", "warps", "wgrad_progs"),
        "the Triton way timed at each tiling too (triton_dwconv.TILES: elements and warps a program, the weights' "
        "gradient's most programs)")
    torch.backends.cudnn.benchmark = True  # as training has it
    gpu, ways = dev.type == "cuda", ("cudnn", "triton")
    rows = time_shapes(shapes(cfg, dev), lambda r: (r["k"], r["shape"], r["stride"]), partial(check, dev=dev),
                       partial(time_way, dev=dev, reps=args.reps), ways, gpu, triton_dwconv.TILES, tilings)
    for r in rows:
        r["what"] = f"{r['name'].split('.')[-1]} {r['k']}x{r['k']} {'x'.join(map(str, r['shape']))}"
        r["worst fp32"], r["worst bf16"] = max(r["fp32"]), max(r["bf16"])
    table(rows, ["what", "calls", "worst fp32", "worst bf16", *timing_columns(ways, gpu, tilings)])
    total = step_totals(rows, ways, "depthwise convolution", tilings) if gpu else {}
    write_json(args.out, dict(env=env_info(), config=cfg.to_dict(), rows=rows, total_ms=total))


if __name__ == "__main__":
    main()

"""The backbone's depthwise convolutions (CPE 3x3, LePE 5x5, MLP 3x3) as Triton kernels: what the GPU's proxy
training runs (`use_fused_dwconv`, `train.FUSED_DWCONV`); the CPU keeps torch's convolution.

Why: cuDNN autotunes each convolution's algorithms in every new process (`cudnn.benchmark`), and for these
small channels-last depthwise convolutions that took 16-19 s of a worker's 28-31 s warm-up on an H200; its
heuristics alone instead make the step 9 % slower. These kernels are compiled once and then loaded from Triton's
cache: a warm warm-up of 11.2 s, a cold one of 77 s against 130, a pack's model-step of 5.97-5.98 ms against
cuDNN's 6.00-6.02, and real runs of 1,911-1,932 trials an hour against 1,860-1,890 (docs/performance.md, issue
16, thirtieth session).

Each kernel reads a tile of positions x channels (channels contiguous) and sums the k x k taps in fp32: the
forward, the input's gradient (the same kernel with the weights flipped) and the weights' gradient (per-program
partial sums, then one sum: deterministic). They are custom ops (`torch.library`), so dynamo and inductor treat
them as opaque calls inside a compiled block, and CUDA graphs capture them like any kernel.

Under autocast (bf16, the proxy's only mixed precision) they see what cuDNN would: input, weights and
bias cast to bf16, accumulation in fp32, output in bf16. `TRITON_INTERPRET=1` runs the kernels on the CPU
(tests/test_triton_dwconv.py, `bench/dwconv_speed.py --smoke`); `bench/dwconv_speed.py --tiles` times them
against cuDNN at every shape of a step."""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn


@triton.jit
def _dw_kernel(x_ptr, w_ptr, b_ptr, y_ptr, N, H, W, C,
               sxb, sxc, sxh, sxw, syb, syc, syh, syw,
               K: tl.constexpr, FLIP: tl.constexpr, HAS_BIAS: tl.constexpr,
               BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """y[b, c, h, w] = sum_ij x[b, c, h + i - K//2, w + j - K//2] * w[c, i, j] (+ bias[c]), zero padding;
    FLIP reads w[c, K-1-i, K-1-j] (the input's gradient). A program: BLOCK_P positions x BLOCK_C channels."""
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    pm, cm = p < N, c < C
    b, hw = p // (H * W), p % (H * W)
    h, w = hw // W, hw % W
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for i in tl.static_range(K):
        for j in tl.static_range(K):
            hh, ww = h + (i - K // 2), w + (j - K // 2)
            m = pm & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
            xv = tl.load(x_ptr + (b * sxb + hh * sxh + ww * sxw)[:, None] + (c * sxc)[None, :],
                         mask=m[:, None] & cm[None, :], other=0.0)
            tap = (K - 1 - i) * K + (K - 1 - j) if FLIP else i * K + j
            wv = tl.load(w_ptr + c * (K * K) + tap, mask=cm, other=0.0)
            acc += xv.to(tl.float32) * wv.to(tl.float32)[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + c, mask=cm, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + (b * syb + h * syh + w * syw)[:, None] + (c * syc)[None, :],
             acc.to(y_ptr.dtype.element_ty), mask=pm[:, None] & cm[None, :])


@triton.jit
def _dw_wgrad_kernel(g_ptr, x_ptr, part_ptr, N, H, W, C,
                     sgb, sgc, sgh, sgw, sxb, sxc, sxh, sxw,
                     K: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """part[prog, tap, c] = this program's share of sum_{b,h,w} g[b, c, h, w] * x[b, c, h + i - K//2, w + j - K//2]
    for tap = i * K + j (grid axis 2); the programs of axis 0 stride over the positions."""
    prog, n_prog, tap = tl.program_id(0), tl.num_programs(0), tl.program_id(2)
    i, j = tap // K, tap % K
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = c < C
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for start in range(prog * BLOCK_P, N, n_prog * BLOCK_P):
        p = start + tl.arange(0, BLOCK_P)
        pm = p < N
        b, hw = p // (H * W), p % (H * W)
        h, w = hw // W, hw % W
        hh, ww = h + (i - K // 2), w + (j - K // 2)
        m = pm & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
        gv = tl.load(g_ptr + (b * sgb + h * sgh + w * sgw)[:, None] + (c * sgc)[None, :],
                     mask=pm[:, None] & cm[None, :], other=0.0)
        xv = tl.load(x_ptr + (b * sxb + hh * sxh + ww * sxw)[:, None] + (c * sxc)[None, :],
                     mask=m[:, None] & cm[None, :], other=0.0)
        acc += gv.to(tl.float32) * xv.to(tl.float32)
    tl.store(part_ptr + (prog * K * K + tap) * C + c, tl.sum(acc, axis=0), mask=cm)


# The launch's tiling: elements a program (positions x channels), warps a program (0: the rule below), and the
# most programs the weights' gradient spreads the positions over. `bench/dwconv_speed.py --tiles` sweeps them.
TILES = dict(elems=2048, warps=0, wgrad_progs=64)
# A tiling per convolution, (k, (B, C, H, W)) -> TILES' keys, where a sweep chose one (`compile_blocks --dwconv-tiles`):
# the forward, the input's gradient and the weights' gradient of that convolution all take it.
SHAPE_TILES: dict[tuple, dict] = {}


def _tiles(k: int, shape) -> dict:
    """The tiling of a k x k convolution of `shape`. The warps' rule, measured on an H200 (`dwconv_speed --tiles`,
    thirtieth session: each of the `default` step's twelve shapes within 3 % of its fastest of ten tilings): 4
    for 5x5 or at least 256 positions a sample, else 2."""
    tiles = SHAPE_TILES.get((k, tuple(shape)), TILES)
    if tiles["warps"] == 0:
        tiles = dict(tiles, warps=4 if k == 5 or shape[2] * shape[3] >= 256 else 2)
    return tiles


def _blocks(C: int, tiles: dict) -> tuple[int, int]:
    """(positions, channels) per program: channels as wide as the tensor's (up to 64), about
    `tiles["elems"]` elements a program."""
    block_c = min(64, triton.next_power_of_2(C))
    return max(16, tiles["elems"] // block_c), block_c


def _check(x: torch.Tensor, weight: torch.Tensor) -> None:
    k = weight.shape[-1]
    if x.ndim != 4 or tuple(weight.shape) != (x.shape[1], 1, k, k) or k % 2 == 0:
        raise ValueError(f"depthwise_conv2d: input {tuple(x.shape)} and weight {tuple(weight.shape)} are not "
                         "(B, C, H, W) and (C, 1, k, k) with k odd")


@torch.library.custom_op("sola::depthwise_conv2d", mutates_args=())
def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, flip: bool) -> torch.Tensor:
    """Depthwise k x k convolution, stride 1, padding k // 2, of x (B, C, H, W, any strides); the output
    is channels-last in x's dtype."""
    B, C, H, W = x.shape
    K = weight.shape[-1]
    _check(x, weight)
    y = torch.empty((B, C, H, W), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    tiles = _tiles(K, x.shape)
    block_p, block_c = _blocks(C, tiles)
    N = B * H * W
    grid = (triton.cdiv(N, block_p), triton.cdiv(C, block_c))
    _dw_kernel[grid](x, weight.contiguous(), bias if bias is not None else weight, y, N, H, W, C,
                     *x.stride(), *y.stride(), K=K, FLIP=flip, HAS_BIAS=bias is not None,
                     BLOCK_P=block_p, BLOCK_C=block_c, num_warps=tiles["warps"])
    return y


@depthwise_conv2d.register_fake
def _(x, weight, bias, flip):
    _check(x, weight)
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)


@torch.library.custom_op("sola::depthwise_conv2d_wgrad", mutates_args=())
def depthwise_conv2d_wgrad(grad: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """The weights' gradient of `depthwise_conv2d`, (C, 1, k, k) in fp32."""
    B, C, H, W = x.shape
    N = B * H * W
    tiles = _tiles(k, x.shape)
    block_p, block_c = _blocks(C, tiles)
    progs = min(triton.cdiv(N, block_p), tiles["wgrad_progs"])
    part = torch.empty((progs, k * k, C), dtype=torch.float32, device=x.device)
    _dw_wgrad_kernel[(progs, triton.cdiv(C, block_c), k * k)](grad, x, part, N, H, W, C, *grad.stride(), *x.stride(),
                                                              K=k, BLOCK_P=block_p, BLOCK_C=block_c,
                                                              num_warps=tiles["warps"])
    return part.sum(0).t().contiguous().reshape(C, 1, k, k)  # the fake's (contiguous) strides


@depthwise_conv2d_wgrad.register_fake
def _(grad, x, k):
    return torch.empty((x.shape[1], 1, k, k), dtype=torch.float32, device=x.device)


def _setup_context(ctx, inputs, output):
    x, weight, bias, flip = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    k = weight.shape[-1]
    gx = depthwise_conv2d(grad, weight, None, True) if ctx.needs_input_grad[0] else None
    gw = depthwise_conv2d_wgrad(grad, x, k).to(weight.dtype) if ctx.needs_input_grad[1] else None
    gb = grad.sum((0, 2, 3), dtype=torch.float32).to(weight.dtype) if ctx.has_bias and ctx.needs_input_grad[2] else None
    return gx, gw, gb, None


depthwise_conv2d.register_autograd(_backward, setup_context=_setup_context)
# Under autocast (the proxy's bf16), what cuDNN's convolution gets: input, weights and bias in bf16.
torch.library.register_autocast("sola::depthwise_conv2d", "cuda", torch.bfloat16)


def fits(m: nn.Module) -> bool:
    """A depthwise convolution the kernels compute: stride 1, padding k // 2, odd square k, no dilation."""
    return (type(m) is nn.Conv2d and m.groups == m.in_channels == m.out_channels and m.stride == (1, 1)
            and m.dilation == (1, 1) and m.kernel_size[0] == m.kernel_size[1] and m.kernel_size[0] % 2 == 1
            and m.padding == (m.kernel_size[0] // 2,) * 2 and m.padding_mode == "zeros")


class FusedDepthwise(nn.Conv2d):
    """A depthwise `nn.Conv2d` (the same parameters and state dict) whose forward runs the kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv2d(x, self.weight, self.bias, False)


def use_fused_dwconv(model: nn.Module) -> nn.Module:
    """Every depthwise convolution of `model` the kernels compute runs through them (its class swapped to
    `FusedDepthwise`: other models keep torch's convolution)."""
    for m in model.modules():
        if fits(m):
            m.__class__ = FusedDepthwise
    return model

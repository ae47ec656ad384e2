"""A LayerNorm for few channels on a GPU (a lever under measurement for issue 16, not yet in the package).

PyTorch's LayerNorm kernels give each row its own thread block; the proxy's rows hold 8-64 numbers,
so most of each block idles (torch.profiler: 21-28x the op's roofline). Here one Triton program
normalises BLOCK_M rows at once, reads the input in its own dtype (no cast kernel before it) and
writes fp32, as autocast's LayerNorm does. The backward writes each program's partial sums of the
weight's and bias's gradients, summed afterwards by torch. `reference` is the same function in
plain torch, the CPU reference it is checked against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl


@triton.jit
def _fwd(X, W, B, Y, Mean, Rstd, M, N, eps, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    rmask, cmask = rows < M, cols < N
    mask = rmask[:, None] & cmask[None, :]
    offs = rows[:, None] * N + cols[None, :]
    x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=1) / N
    xc = tl.where(mask, x - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / N + eps)
    w = tl.load(W + cols, mask=cmask, other=0.0).to(tl.float32)
    b = tl.load(B + cols, mask=cmask, other=0.0).to(tl.float32)
    y = xc * rstd[:, None] * w[None, :] + b[None, :]
    tl.store(Y + offs, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(Mean + rows, mean, mask=rmask)
    tl.store(Rstd + rows, rstd, mask=rmask)


@triton.jit
def _bwd(DY, X, W, Mean, Rstd, DX, DW, DB, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    rmask, cmask = rows < M, cols < N
    mask = rmask[:, None] & cmask[None, :]
    offs = rows[:, None] * N + cols[None, :]
    x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    dy = tl.load(DY + offs, mask=mask, other=0.0).to(tl.float32)
    mean = tl.load(Mean + rows, mask=rmask, other=0.0)
    rstd = tl.load(Rstd + rows, mask=rmask, other=0.0)
    w = tl.load(W + cols, mask=cmask, other=0.0).to(tl.float32)
    xhat = tl.where(mask, (x - mean[:, None]) * rstd[:, None], 0.0)
    wdy = tl.where(mask, w[None, :] * dy, 0.0)
    c1 = tl.sum(xhat * wdy, axis=1) / N
    c2 = tl.sum(wdy, axis=1) / N
    dx = (wdy - (xhat * c1[:, None] + c2[:, None])) * rstd[:, None]
    tl.store(DX + offs, dx.to(DX.dtype.element_ty), mask=mask)
    tl.store(DW + pid * N + cols, tl.sum(dy * xhat, axis=0), mask=cmask)
    tl.store(DB + pid * N + cols, tl.sum(dy, axis=0), mask=cmask)


def _blocks(n: int) -> tuple[int, int]:
    block_n = triton.next_power_of_2(n)
    return max(1, min(256, 4096 // block_n)), block_n


class _LayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        shape, n = x.shape, x.shape[-1]
        x2 = x.reshape(-1, n).contiguous()
        m = x2.shape[0]
        y = torch.empty(x2.shape, device=x.device, dtype=torch.float32)
        mean = torch.empty(m, device=x.device, dtype=torch.float32)
        rstd = torch.empty_like(mean)
        bm, bn = _blocks(n)
        _fwd[(triton.cdiv(m, bm),)](x2, weight, bias, y, mean, rstd, m, n, eps, BLOCK_M=bm, BLOCK_N=bn)
        ctx.save_for_backward(x2, weight, mean, rstd)
        ctx.shape = shape
        return y.view(shape)

    @staticmethod
    def backward(ctx, dy):
        x2, weight, mean, rstd = ctx.saved_tensors
        m, n = x2.shape
        bm, bn = _blocks(n)
        grid = triton.cdiv(m, bm)
        dx = torch.empty_like(x2)
        dw = torch.empty(grid, n, device=x2.device, dtype=torch.float32)
        db = torch.empty_like(dw)
        _bwd[(grid,)](dy.reshape(-1, n).contiguous(), x2, weight, mean, rstd, dx, dw, db, m, n,
                      BLOCK_M=bm, BLOCK_N=bn)
        return dx.view(ctx.shape), dw.sum(0).to(weight.dtype), db.sum(0).to(weight.dtype), None


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last dimension, fp32 out (as under autocast); Triton on a GPU."""
    if not x.is_cuda:
        return reference(x, weight, bias, eps)
    return _LayerNorm.apply(x, weight, bias, eps)


def reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    return F.layer_norm(x.float(), (x.shape[-1],), weight.float(), bias.float(), eps)


def use_in(model: torch.nn.Module, skip_compiled: bool = False) -> int:
    """Make every nn.LayerNorm of `model` use `layer_norm` (with `skip_compiled`, those outside modules
    marked for torch.compile only); returns how many."""
    inside = {id(n) for m in model.modules() if skip_compiled and getattr(m, "_compiled_call_impl", None)
              for n in m.modules()}
    count = 0
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm) and id(m) not in inside:
            m.forward = lambda x, m=m: layer_norm(x, m.weight, m.bias, m.eps)
            count += 1
    return count

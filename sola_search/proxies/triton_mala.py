"""MALA, the backbone's linear attention (`Attention.mala`), as one Triton kernel forward and one backward: what
the GPU's proxy training runs (`use_fused_mala`, `train.FUSED_MALA`); the CPU keeps the package's own.

Why: inductor compiles `mala` as several kernels around three fp32 batched matmuls (φ(k)ᵀv, φ(q)·k̄, φ(q)·kv),
so φ(q), φ(k), v and φ(q)·kv each cross memory in fp32, forward and backward. One program per (sample, head)
here reads q, k, v once in bf16 (twice in the backward) and keeps kv (d x d), k̄ and v̄ on chip. On an H200
a `default` step's MALA takes 0.89 ms against the compiled formula's 2.24 ms, a pack's model-step 6.07 ms
against 6.46, and real runs make 1,860-1,890 trials an hour against 1,748 (docs/performance.md, issue 16).

The math is `Attention.mala`'s, in fp32: φ = ELU + 1, s = d^-½, kv = (s/N)·Σ_j φ(k_j)ᵀv_j, k̄ = mean φ(k), v̄ = mean
v, z_i = s·φ(q_i)·k̄ᵀ and y_i = (1 + 1/z_i)·φ(q_i)·kv − z_i·v̄; its dots as three TF32 products (fp32's accuracy:
1e-6 of the formula, where one TF32 product is 4e-3 and the compiled formula 7e-4). The backward recomputes φ(q), z
and φ(q)·kv from q and the saved kv, k̄, v̄ (one pass over q and dy gives dq and the sums dkv, dk̄, dv̄; a second
over k and v gives dk and dv). Outputs and gradients are in q's dtype (rounded to nearest) with the (B, N, heads, d)
layout that `Attention.forward` reshapes to (B, H, W, C) as a view. Custom ops (`torch.library`): opaque to dynamo
and inductor inside a compiled block, captured by CUDA graphs like any kernel. `TRITON_INTERPRET=1` runs them on the
CPU (tests/test_triton_mala.py, `bench/mala_speed.py --smoke`)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sola_search.space.backbone import Attention

# The launch's tiling: tokens a loop iteration reads (fewer where a head has fewer) and warps a program, 0
# for the rule measured on an H200 (`bench/mala_speed.py --tiles`): 2 where a head has at most 16 tokens,
# else 4. The bench's sweep sets both.
TILES = dict(block_n=64, warps=0)
# How the dots run on a GPU: "tf32x3" (three TF32 products: fp32's accuracy) or "tf32" (one: 4e-3 from the
# formula, a model-step 5.87 ms against 6.07, loss curves as far from the peer's as run-to-run noise; a real run
# 1,967 trials an hour against 1,860-1,890); `bench/compile_blocks.py --mala-precision` measures each. The CPU's
# interpreter: fp32.
PRECISION = "tf32x3"


@triton.jit
def _phi(x):
    """ELU + 1."""
    return tl.where(x > 0, x + 1.0, tl.exp(tl.minimum(x, 0.0)))


@triton.jit
def _dphi(x):
    """ELU + 1's derivative."""
    return tl.where(x > 0, 1.0, tl.exp(tl.minimum(x, 0.0)))


@triton.jit
def _mala_fwd(q_ptr, k_ptr, v_ptr, y_ptr, kv_ptr, km_ptr, vm_ptr, HEADS, N, D, s,
              sqb, sqh, sqn, sqd, skb, skh, skn, skd, svb, svh, svn, svd, syb, syh, syn, syd,
              BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PREC: tl.constexpr):
    pid = tl.program_id(0)
    b, h = pid // HEADS, pid % HEADS
    d = tl.arange(0, BLOCK_D)
    dm = d < D
    kv = tl.zeros((BLOCK_D, BLOCK_D), dtype=tl.float32)
    ksum = tl.zeros((BLOCK_D,), dtype=tl.float32)
    vsum = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        m = (n < N)[:, None] & dm[None, :]
        kt = tl.load(k_ptr + b * skb + h * skh + n[:, None] * skn + d[None, :] * skd, mask=m, other=0.0).to(tl.float32)
        vt = tl.load(v_ptr + b * svb + h * svh + n[:, None] * svn + d[None, :] * svd, mask=m, other=0.0).to(tl.float32)
        pk = tl.where(m, _phi(kt), 0.0)
        kv += tl.dot(tl.trans(pk), vt, input_precision=PREC)
        ksum += tl.sum(pk, 0)
        vsum += tl.sum(vt, 0)
    kv = kv * (s / N)
    km = ksum / N
    vm = vsum / N
    stat = pid * BLOCK_D * BLOCK_D
    tl.store(kv_ptr + stat + d[:, None] * BLOCK_D + d[None, :], kv)
    tl.store(km_ptr + pid * BLOCK_D + d, km)
    tl.store(vm_ptr + pid * BLOCK_D + d, vm)
    for n0 in range(0, N, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        nm = n < N
        m = nm[:, None] & dm[None, :]
        qt = tl.load(q_ptr + b * sqb + h * sqh + n[:, None] * sqn + d[None, :] * sqd, mask=m, other=0.0).to(tl.float32)
        pq = tl.where(m, _phi(qt), 0.0)
        z = tl.where(nm, tl.sum(pq * km[None, :], 1) * s, 1.0)
        p = tl.dot(pq, kv, input_precision=PREC)
        y = (1.0 + 1.0 / z)[:, None] * p - z[:, None] * vm[None, :]
        tl.store(y_ptr + b * syb + h * syh + n[:, None] * syn + d[None, :] * syd,
                 y.to(y_ptr.dtype.element_ty, fp_downcast_rounding="rtne"), mask=m)


@triton.jit
def _mala_bwd(q_ptr, k_ptr, v_ptr, g_ptr, kv_ptr, km_ptr, vm_ptr, dq_ptr, dk_ptr, dv_ptr, HEADS, N, D, s,
              sqb, sqh, sqn, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sgb, sgh, sgn, sgd,
              sob, soh, son, sod,
              BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PREC: tl.constexpr):
    pid = tl.program_id(0)
    b, h = pid // HEADS, pid % HEADS
    d = tl.arange(0, BLOCK_D)
    dm = d < D
    stat = pid * BLOCK_D * BLOCK_D
    kv = tl.load(kv_ptr + stat + d[:, None] * BLOCK_D + d[None, :])
    km = tl.load(km_ptr + pid * BLOCK_D + d)
    vm = tl.load(vm_ptr + pid * BLOCK_D + d)
    dkv = tl.zeros((BLOCK_D, BLOCK_D), dtype=tl.float32)
    dkm = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dvm = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):  # dq, and the sums the second pass needs
        n = n0 + tl.arange(0, BLOCK_N)
        nm = n < N
        m = nm[:, None] & dm[None, :]
        qt = tl.load(q_ptr + b * sqb + h * sqh + n[:, None] * sqn + d[None, :] * sqd, mask=m, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + b * sgb + h * sgh + n[:, None] * sgn + d[None, :] * sgd, mask=m, other=0.0).to(tl.float32)
        pq = tl.where(m, _phi(qt), 0.0)
        z = tl.where(nm, tl.sum(pq * km[None, :], 1) * s, 1.0)
        p = tl.dot(pq, kv, input_precision=PREC)
        dp = (1.0 + 1.0 / z)[:, None] * g
        dz = tl.where(nm, -tl.sum(g * p, 1) / (z * z) - tl.sum(g * vm[None, :], 1), 0.0)
        dvm -= tl.sum(z[:, None] * g, 0)
        dkv += tl.dot(tl.trans(pq), dp, input_precision=PREC)
        dkm += tl.sum(dz[:, None] * pq, 0) * s
        dpq = tl.dot(dp, tl.trans(kv), input_precision=PREC) + dz[:, None] * (km * s)[None, :]
        dq = dpq * _dphi(qt)
        tl.store(dq_ptr + b * sob + h * soh + n[:, None] * son + d[None, :] * sod,
                 dq.to(dq_ptr.dtype.element_ty, fp_downcast_rounding="rtne"), mask=m)
    for n0 in range(0, N, BLOCK_N):  # dk and dv from dkv, dk̄, dv̄
        n = n0 + tl.arange(0, BLOCK_N)
        m = (n < N)[:, None] & dm[None, :]
        kt = tl.load(k_ptr + b * skb + h * skh + n[:, None] * skn + d[None, :] * skd, mask=m, other=0.0).to(tl.float32)
        vt = tl.load(v_ptr + b * svb + h * svh + n[:, None] * svn + d[None, :] * svd, mask=m, other=0.0).to(tl.float32)
        pk = tl.where(m, _phi(kt), 0.0)
        dpk = tl.dot(vt, tl.trans(dkv), input_precision=PREC) * (s / N) + (dkm / N)[None, :]
        dv = tl.dot(pk, dkv, input_precision=PREC) * (s / N) + (dvm / N)[None, :]
        dk = dpk * _dphi(kt)
        off = b * sob + h * soh + n[:, None] * son + d[None, :] * sod
        tl.store(dk_ptr + off, dk.to(dk_ptr.dtype.element_ty, fp_downcast_rounding="rtne"), mask=m)
        tl.store(dv_ptr + off, dv.to(dv_ptr.dtype.element_ty, fp_downcast_rounding="rtne"), mask=m)


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.ndim != 4 or q.shape != k.shape or q.shape != v.shape or not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"mala: q, k, v {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)} are not three "
                         "(B, heads, N, d) tensors of one shape and dtype")


def _layout(q: torch.Tensor) -> torch.Tensor:
    """An empty (B, heads, N, d) tensor stored as (B, N, heads, d): what `Attention.forward` reshapes freely."""
    B, h, N, d = q.shape
    return q.new_empty((B, N, h, d)).transpose(1, 2)


def _forward_outputs(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Empty y, kv, k̄, v̄ of `mala_forward` (the op and its fake alike)."""
    B, h, N, d = q.shape
    _, block_d = _blocks(q)
    return (_layout(q), q.new_empty((B * h, block_d, block_d), dtype=torch.float32),
            q.new_empty((B * h, block_d), dtype=torch.float32), q.new_empty((B * h, block_d), dtype=torch.float32))


def _blocks(q: torch.Tensor) -> tuple[int, int]:
    return (min(TILES["block_n"], max(16, triton.next_power_of_2(q.shape[2]))),
            max(16, triton.next_power_of_2(q.shape[3])))


def _warps(q: torch.Tensor) -> int:
    return TILES["warps"] or (2 if q.shape[2] <= 16 else 4)


def _precision(q: torch.Tensor) -> str:
    return PRECISION if q.is_cuda else "ieee"


@torch.library.custom_op("sola::mala", mutates_args=())
def mala_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                             torch.Tensor, torch.Tensor]:
    """y, and the statistics the backward reads: kv (B·heads, D, D), k̄ and v̄ (B·heads, D), fp32, D the
    head's dimension rounded up to a power of two (>= 16)."""
    _check(q, k, v)
    B, h, N, d = q.shape
    block_n, block_d = _blocks(q)
    y, kv, km, vm = _forward_outputs(q)
    _mala_fwd[(B * h,)](q, k, v, y, kv, km, vm, h, N, d, d**-0.5, *q.stride(), *k.stride(), *v.stride(), *y.stride(),
                        BLOCK_N=block_n, BLOCK_D=block_d, PREC=_precision(q), num_warps=_warps(q))
    return y, kv, km, vm


@mala_forward.register_fake
def _(q, k, v):
    _check(q, k, v)
    return _forward_outputs(q)


@torch.library.custom_op("sola::mala_backward", mutates_args=())
def mala_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad: torch.Tensor, kv: torch.Tensor,
                  km: torch.Tensor, vm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dq, dk, dv of `mala_forward`'s y for its upstream gradient `grad`."""
    B, h, N, d = q.shape
    block_n, block_d = _blocks(q)
    dq, dk, dv = _layout(q), _layout(q), _layout(q)
    _mala_bwd[(B * h,)](q, k, v, grad, kv, km, vm, dq, dk, dv, h, N, d, d**-0.5,
                        *q.stride(), *k.stride(), *v.stride(), *grad.stride(), *dq.stride(),
                        BLOCK_N=block_n, BLOCK_D=block_d, PREC=_precision(q), num_warps=_warps(q))
    return dq, dk, dv


@mala_backward.register_fake
def _(q, k, v, grad, kv, km, vm):
    return _layout(q), _layout(q), _layout(q)


def _setup_context(ctx, inputs, output):
    q, k, v = inputs
    _, kv, km, vm = output
    ctx.mark_non_differentiable(kv, km, vm)
    ctx.save_for_backward(q, k, v, kv, km, vm)


def _backward(ctx, grad, *_stats):
    q, k, v, kv, km, vm = ctx.saved_tensors
    return mala_backward(q, k, v, grad, kv, km, vm)


mala_forward.register_autograd(_backward, setup_context=_setup_context)


def mala(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """`Attention.mala` (the same signature and result) through the kernels."""
    return mala_forward(q, k, v)[0]


def use_fused_mala(model: torch.nn.Module) -> torch.nn.Module:
    """Every `Attention` of `model` computes MALA through the kernels (an attribute of each module: other
    models, and the class, keep the package's)."""
    for m in model.modules():
        if isinstance(m, Attention):
            m.mala = mala
    return model

"""The depthwise convolution kernels (`sola_search/proxies/triton_dwconv.py`, what GPU training runs) against
torch's convolution on the CPU: Triton's interpreter (TRITON_INTERPRET=1, which must be set before Triton is
imported, hence a subprocess) runs the same kernels a GPU compiles."""

from __future__ import annotations

import pytest
import torch
from triton_support import interpret

CHECKS = r"""
import json, torch
import torch.nn.functional as F
from sola_search.proxies import triton_dwconv
from sola_search.space.backbone import build_backbone

torch.manual_seed(0)
out = {}


def both(fn, xs, g):
    y = fn(*xs)
    return [y.detach(), *torch.autograd.grad(y, [t for t in xs if t is not None], g)]


def gap(a, b):
    # the largest difference over output and gradients, each relative to its largest magnitude
    return max(float((x.double() - t.double()).abs().max() / t.double().abs().max().clamp_min(1e-30))
               for x, t in zip(a, b, strict=True))


def torch_conv(x, w, b):
    return F.conv2d(x, w, b, padding=w.shape[-1] // 2, groups=w.shape[0])


def fused(x, w, b):
    return triton_dwconv.depthwise_conv2d(x, w, b, False)


# 3x3 and 5x5; channels fewer than, not a power of two and more than a 64-channel tile; positions that leave a
# ragged last tile; one position; no bias
cases = [(3, 2, 24, 7, 5, True), (5, 3, 80, 6, 6, True), (3, 2, 130, 4, 4, False), (5, 1, 16, 1, 1, True)]
for k, B, C, H, W, bias in cases:
    x = torch.randn(B, H, W, C).permute(0, 3, 1, 2).requires_grad_(True)  # channels-last, as training has it
    w = torch.randn(C, 1, k, k, requires_grad=True)
    b = torch.randn(C, requires_grad=True) if bias else None
    g = torch.randn(B, C, H, W)
    got = both(fused, (x, w, b), g)
    out[f"fp32 k{k} {B}x{C}x{H}x{W}"] = gap(got, both(torch_conv, (x, w, b), g))
    out[f"channels-last k{k} {B}x{C}x{H}x{W}"] = got[0].is_contiguous(memory_format=torch.channels_last)

# LePE's input: a strided chunk of qkvg's output, read in place
qkvg = torch.randn(2, 5, 5, 4 * 32)
x = qkvg[..., 64:96].permute(0, 3, 1, 2).detach().requires_grad_(True)
w, b, g = torch.randn(32, 1, 5, 5, requires_grad=True), torch.randn(32, requires_grad=True), torch.randn(2, 32, 5, 5)
out["strided chunk"] = gap(both(fused, (x, w, b), g), both(torch_conv, (x, w, b), g))

x = torch.randn(2, 24, 6, 6).bfloat16().requires_grad_(True)
w, b = torch.randn(24, 1, 3, 3).bfloat16().requires_grad_(True), torch.randn(24).bfloat16().requires_grad_(True)
g = torch.randn(2, 24, 6, 6).bfloat16()
got = both(fused, (x, w, b), g)
out["bf16 dtypes"] = sorted({str(t.dtype) for t in got})
out["bf16"] = gap(got, both(torch_conv, (x.float(), w.float(), b.float()), g.float()))

compiled = torch.compile(fused, fullgraph=True, backend="aot_eager")  # the ops' fake shapes, autograd
x = torch.randn(2, 40, 5, 5).requires_grad_(True)
w, b, g = torch.randn(40, 1, 3, 3, requires_grad=True), torch.randn(40, requires_grad=True), torch.randn(2, 40, 5, 5)
out["compiled vs eager"] = gap(both(compiled, (x, w, b), g), both(fused, (x, w, b), g))

# a whole model: the same weights, one with the kernels (use_fused_dwconv), forward and backward
a = build_backbone("micro", "all-linear", num_classes=10, in_chans=1)
m = build_backbone("micro", "all-linear", num_classes=10, in_chans=1)
m.load_state_dict(a.state_dict())
triton_dwconv.use_fused_dwconv(m)
x = torch.randn(2, 1, 32, 32)
ga, gm = (torch.autograd.grad(n(x).square().sum(), list(n.parameters())) for n in (a, m))
out["model logits"] = gap([m(x).detach()], [a(x).detach()])
out["model grads"] = max(gap([u], [v]) for u, v in zip(gm, ga) if float(v.abs().max()) > 0)
out["model convolutions fused"] = [sum(type(n) is triton_dwconv.FusedDepthwise for n in t.modules()) for t in (m, a)]
out["depthwise convolutions"] = sum(triton_dwconv.fits(n) for n in a.modules())
out["state dict keys"] = list(m.state_dict()) == list(a.state_dict())

try:
    fused(torch.randn(2, 8, 4, 4), torch.randn(8, 1, 4, 4), None)
    out["bad shapes"] = "no error"
except ValueError as e:
    out["bad shapes"] = str(e)
print("RESULT", json.dumps(out))
"""


@pytest.fixture(scope="module")
def checks() -> dict:
    return interpret(CHECKS)


def test_the_kernels_compute_torchs_depthwise_convolution_and_its_gradients(checks):
    fp32 = {k: v for k, v in checks.items() if k.startswith("fp32")}
    assert len(fp32) == 4
    assert all(v < 1e-5 for v in fp32.values()), fp32
    assert checks["strided chunk"] < 1e-5


def test_outputs_are_channels_last_as_the_blocks_read_them(checks):
    layouts = {k: v for k, v in checks.items() if k.startswith("channels-last")}
    assert len(layouts) == 4 and all(layouts.values()), layouts


def test_bf16_inputs_give_bf16_results_within_its_rounding(checks):
    assert checks["bf16 dtypes"] == ["torch.bfloat16"]
    assert checks["bf16"] < 2**-6  # bf16 roundings apart, not a different function


def test_the_ops_compile_as_their_eager_selves(checks):
    assert checks["compiled vs eager"] < 1e-6


def test_a_model_with_fused_depthwise_convolutions_trains_as_the_package_model(checks):
    assert checks["model logits"] < 1e-5
    assert checks["model grads"] < 1e-4
    assert checks["depthwise convolutions"] > 0
    assert checks["model convolutions fused"] == [checks["depthwise convolutions"], 0]  # the other model unchanged
    assert checks["state dict keys"]


def test_mismatched_inputs_are_refused_with_a_clear_error(checks):
    assert "are not (B, C, H, W) and (C, 1, k, k) with k odd" in checks["bad shapes"]


def test_the_tiling_rule_and_a_sweeps_choice(monkeypatch):
    from sola_search.proxies import triton_dwconv

    assert triton_dwconv._tiles(5, (256, 64, 8, 8))["warps"] == 4
    assert triton_dwconv._tiles(3, (256, 32, 16, 16))["warps"] == 4
    assert triton_dwconv._tiles(3, (256, 640, 4, 4))["warps"] == 2
    chosen = dict(elems=8192, warps=8, wgrad_progs=16)
    monkeypatch.setitem(triton_dwconv.SHAPE_TILES, (3, (256, 640, 4, 4)), chosen)
    assert triton_dwconv._tiles(3, (256, 640, 4, 4)) == chosen
    assert triton_dwconv._tiles(3, (128, 640, 4, 4))["warps"] == 2


def test_cpu_training_keeps_torchs_convolution(npz_data):
    """FUSED_DWCONV is for GPUs: a CPU-trained proxy's models run torch's convolution (results unchanged)."""
    from sola_search.proxies import ProxyConfig, train, train_proxy
    from sola_search.proxies.triton_dwconv import FusedDepthwise

    assert train.FUSED_DWCONV
    cfg = ProxyConfig(variant="micro", width=0.25, resolution=32, steps=2, batch_size=16, warmup_steps=1,
                      data=npz_data, val_fraction=0.2, eval_batch_size=64, device="cpu", log_points=2)
    assert train_proxy("all-linear", cfg).ok
    models = [m for spare in train._MODELS.spare.values() for m in spare]
    assert models and not any(isinstance(n, FusedDepthwise) for m in models for n in m.modules())
    assert any(isinstance(n, torch.nn.Conv2d) and n.groups > 1 for m in models for n in m.modules())

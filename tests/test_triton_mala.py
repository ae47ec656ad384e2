"""The fused MALA kernels (`sola_search/proxies/triton_mala.py`, what GPU training runs) against the package's
`Attention.mala` on the CPU: Triton's interpreter (TRITON_INTERPRET=1, which must be set before Triton is
imported, hence a subprocess) runs the same kernels a GPU compiles."""

from __future__ import annotations

import pytest
from triton_support import interpret

CHECKS = r"""
import json, torch
from sola_search.proxies import triton_mala
from sola_search.space.backbone import Attention, build_backbone

torch.manual_seed(0)
out = {}


def qkv(B, h, N, d, dtype):
    # as training has them: (B, heads, N, d) views of one (B, N, 4·heads·d) qkvg output
    qkvg = torch.randn(B, N, 4 * h * d, dtype=dtype)
    return [t.reshape(B, N, h, d).transpose(1, 2).detach().requires_grad_(True) for t in qkvg.chunk(4, -1)[:3]]


def both(fn, xs, g):
    y = fn(*xs)
    return [y.detach(), *torch.autograd.grad(y, xs, g)]


def gap(a, b):
    # the largest difference over output and gradients, relative to their largest magnitude
    scale = max(float(t.abs().max()) for t in b)
    return max(float((x.double() - t.double()).abs().max()) for x, t in zip(a, b)) / scale


# several token blocks with a ragged last one, a head size that is not a power of two, one token
shapes = [(2, 2, 100, 24), (3, 1, 64, 16), (2, 4, 1, 32), (1, 3, 17, 8)]
for B, h, N, d in shapes:
    xs = qkv(B, h, N, d, torch.float32)
    g = torch.randn(B, h, N, d)
    fused = both(triton_mala.mala, xs, g)
    out[f"fp32 {B}x{h}x{N}x{d}"] = gap(fused, both(Attention.mala, xs, g))
    y = fused[0]
    out[f"layout {B}x{h}x{N}x{d}"] = [list(y.shape), list(triton_mala.mala(*xs).transpose(1, 2).stride())]

xs = qkv(2, 2, 100, 24, torch.bfloat16)
g = torch.randn(2, 2, 100, 24).bfloat16()
fused, package = both(triton_mala.mala, xs, g), both(Attention.mala, xs, g)
out["bf16 dtypes"] = sorted({str(t.dtype) for t in fused})
out["bf16"] = gap(fused, package)

compiled = torch.compile(triton_mala.mala, fullgraph=True, backend="aot_eager")  # the ops' fake shapes, autograd
xs = qkv(2, 2, 100, 24, torch.float32)
g = torch.randn(2, 2, 100, 24)
out["compiled vs eager"] = gap(both(compiled, xs, g), both(triton_mala.mala, xs, g))

# a whole model: the same weights, one with the kernels (use_fused_mala), forward and backward
a = build_backbone("micro", "all-linear", num_classes=10, in_chans=1)
b = build_backbone("micro", "all-linear", num_classes=10, in_chans=1)
b.load_state_dict(a.state_dict())
triton_mala.use_fused_mala(b)
x = torch.randn(2, 1, 32, 32)
ga, gb = (torch.autograd.grad(m(x).square().sum(), list(m.parameters())) for m in (a, b))
out["model logits"] = gap([b(x).detach()], [a(x).detach()])
out["model grads"] = max(gap([u], [w]) for u, w in zip(gb, ga) if float(w.abs().max()) > 0)
attns = [m for m in b.modules() if isinstance(m, Attention)]
out["model attentions fused"] = [m.mala is triton_mala.mala for m in attns]
out["others unchanged"] = [all("mala" not in m.__dict__ for m in a.modules()), Attention.mala is not triton_mala.mala]

try:
    triton_mala.mala(*qkv(2, 1, 8, 16, torch.float32)[:2], torch.randn(2, 1, 9, 16))
    out["bad shapes"] = "no error"
except ValueError as e:
    out["bad shapes"] = str(e)
print("RESULT", json.dumps(out))
"""


@pytest.fixture(scope="module")
def checks() -> dict:
    return interpret(CHECKS)


def test_the_kernels_compute_the_packages_mala_and_its_gradients(checks):
    fp32 = {k: v for k, v in checks.items() if k.startswith("fp32")}
    assert len(fp32) == 4
    assert all(v < 1e-5 for v in fp32.values()), fp32


def test_outputs_come_in_the_layout_attention_reshapes_as_a_view(checks):
    for k, (shape, strides) in ((k, v) for k, v in checks.items() if k.startswith("layout")):
        B, h, N, d = shape
        assert strides == [N * h * d, h * d, d, 1], k  # (B, N, heads, d) contiguous


def test_bf16_inputs_give_bf16_results_within_its_rounding(checks):
    assert checks["bf16 dtypes"] == ["torch.bfloat16"]
    assert checks["bf16"] < 2**-6  # two bf16 roundings apart at most, not a different function


def test_the_ops_compile_as_their_eager_selves(checks):
    assert checks["compiled vs eager"] < 1e-6


def test_a_model_with_fused_mala_trains_as_the_package_model(checks):
    assert checks["model logits"] < 1e-5
    assert checks["model grads"] < 1e-4
    assert checks["model attentions fused"] and all(checks["model attentions fused"])
    assert checks["others unchanged"] == [True, True]


def test_mismatched_inputs_are_refused_with_a_clear_error(checks):
    assert "are not three (B, heads, N, d) tensors of one shape and dtype" in checks["bad shapes"]


def test_cpu_training_keeps_the_packages_mala(npz_data):
    """FUSED_MALA is for GPUs: a CPU-trained proxy's models compute the formula (results as they always were)."""
    from sola_search.proxies import ProxyConfig, train, train_proxy
    from sola_search.space.backbone import Attention

    assert train.FUSED_MALA
    cfg = ProxyConfig(variant="micro", width=0.25, resolution=32, steps=2, batch_size=16, warmup_steps=1,
                      data=npz_data, val_fraction=0.2, eval_batch_size=64, device="cpu", log_points=2)
    assert train_proxy("all-linear", cfg).ok
    models = [m for spare in train._MODELS.spare.values() for m in spare]
    attns = [a for m in models for a in m.modules() if isinstance(a, Attention)]
    assert attns and all("mala" not in a.__dict__ for a in attns)


def test_the_fused_kernels_only_where_triton_targets_the_gpu(monkeypatch):
    """A GPU Triton cannot target (too old, or no Triton) trains with MALA's formula and torch's depthwise
    convolutions instead of failing every trial; the CPU always does; each switch turns its kernels off."""
    import torch.utils._triton

    from sola_search.proxies import train

    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: True)
    assert train.fused_kernels(gpu) == (True, True) and train.fused_kernels(torch.device("cpu")) == (False, False)
    monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: False)
    with pytest.warns(UserWarning, match="Triton cannot run here, so the blocks train uncompiled, MALA as its"):
        assert train.fused_kernels(gpu) == (False, False)
    monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: True)
    monkeypatch.setattr(train, "FUSED_MALA", False)
    assert train.fused_kernels(gpu) == (False, True)
    monkeypatch.setattr(train, "FUSED_DWCONV", False)
    assert train.fused_kernels(gpu) == (False, False)


def test_compiled_blocks_only_where_triton_targets_the_gpu(monkeypatch):
    """`--compile blocks` (the default) needs Triton: on a GPU it cannot target, the blocks train uncompiled
    with one warning instead of every trial failing in the worker's warm-up; the CPU never compiles."""
    from types import SimpleNamespace

    import torch.utils._triton

    from sola_search.proxies import get_preset, train

    cfg = get_preset("default")
    assert cfg.compile == "blocks"

    def pack(dev, cfg=cfg):
        return train._Pack(cfg=cfg, data=SimpleNamespace(device=torch.device(dev)), fork=None, bf16=True)

    monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: True)
    assert pack("cuda").compiled and not pack("cpu").compiled
    assert not pack("cuda", cfg.replace(compile="off")).compiled
    monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: False)
    with pytest.warns(UserWarning, match="Triton cannot run here, so the blocks train uncompiled"):
        assert not pack("cuda").compiled

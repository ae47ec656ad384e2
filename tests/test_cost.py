"""The analytic cost model against PyTorch's own count: FlopCounterMode (MATH SDPA) / 2 and numel."""

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from sola_search.space import VARIANTS, Pattern, baseline, build_backbone, cost_table, get_variant, model_cost


def torch_count(variant, pattern, resolution, device="meta", **kwargs) -> tuple[int, int]:
    """(MACs, params) as PyTorch counts them: FlopCounterMode under the MATH SDPA backend, halved."""
    with torch.device(device):
        model = build_backbone(variant, pattern, **kwargs)
        x = torch.empty(1, kwargs.get("in_chans", 3), resolution, resolution)
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        model(x)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2, sum(p.numel() for p in model.parameters())


def patterns_for(variant, rng, n_random=2) -> list[Pattern]:
    v = VARIANTS[variant]
    return [baseline("all-linear", v), baseline("all-softmax", v)] + [
        Pattern.from_bits(rng.integers(0, 2, v.num_blocks), v) for _ in range(n_random)]


# 193 px: every stride-2 convolution rounds up (193 → 97 → 49 → 25 → 13 → 7), so an off-by-one in the
# token counts would show; 224 px divides evenly.
@pytest.mark.parametrize("variant, resolution", [(v, r) for v in VARIANTS for r in (224, 193)
                                                 if (v, r) != ("base", 193)])  # base at 193: 5 s for what small shows
def test_cost_equals_flop_counter_and_numel(variant, resolution, rng):
    for p in patterns_for(variant, rng):
        macs, params = torch_count(variant, p, resolution)
        cost = model_cost(variant, p, resolution)
        assert (cost.macs, cost.params) == (macs, params), str(p)


@pytest.mark.parametrize("variant, width, resolution", [("tiny", 0.5, 128), ("small", 0.5, 96), ("base", 0.25, 64),
                                                        ("micro", 0.5, 75), ("small", 0.25, 130)])
def test_proxy_instances(variant, width, resolution, rng):
    v = get_variant(variant).scaled(width)
    assert v.depths == VARIANTS[variant].depths and v.dims != VARIANTS[variant].dims
    t = cost_table(v, resolution)
    patterns = patterns_for(variant, rng, n_random=1)
    for p in patterns:
        assert (t.macs(p), t.params) == torch_count(v, p, resolution)  # the proxy Variant itself
    p = patterns[-1]
    assert (t.macs(p), t.params) == torch_count(variant, p, resolution, width=width)  # the named variant, width=


@pytest.mark.parametrize("num_classes, in_chans", [(10, 3), (0, 3), (37, 1)])
def test_num_classes_and_in_chans(num_classes, in_chans, rng):
    p = patterns_for("tiny", rng, n_random=1)[-1]
    t = cost_table("tiny", 160, num_classes=num_classes, in_chans=in_chans)
    assert (t.macs(p), t.params) == torch_count("tiny", p, 160, num_classes=num_classes, in_chans=in_chans)
    if in_chans == 3:
        c = model_cost("tiny", p, 160, num_classes=num_classes)
        assert (c.macs, c.params) == (t.macs(p), t.params)


def test_meta_count_equals_cpu_count():
    p = Pattern.parse("LS-SL-LSLS-SL")
    assert torch_count("micro", p, 64, device="cpu") == torch_count("micro", p, 64)


def test_macs_many_equals_per_pattern(rng):
    for variant in VARIANTS:
        for resolution in (224, 193, 512):
            t = cost_table(variant, resolution)
            bits = rng.integers(0, 2, (300, VARIANTS[variant].num_blocks))
            many = t.macs_many(bits)
            assert many.dtype == np.int64
            assert many.tolist() == [t.macs(Pattern.from_bits(b, variant)) for b in bits]
            assert t.macs_many(bits.astype(bool)).tolist() == many.tolist()


def test_table_parts():
    t = cost_table("tiny", 224)
    n = VARIANTS["tiny"].num_blocks
    assert t.linear_macs.shape == t.softmax_macs.shape == (n,)
    assert t.all_linear_macs == t.macs(baseline("all-linear", "tiny"))
    assert t.all_linear_macs + int(t.delta.sum()) == t.macs(baseline("all-softmax", "tiny"))
    # stage 4 at 224 px has 49 tokens < head dim 64: softmax is cheaper there; stage 1 it is far dearer
    assert (t.delta[-2:] < 0).all() and (t.delta[:2] > 10**9).all()
    c = model_cost("tiny", baseline("late-stages", "tiny"))
    assert c.gflops == 2 * c.gmacs and c.gmacs == c.macs / 1e9 and c.mparams == c.params / 1e6
    assert model_cost("tiny", baseline("all-linear", "tiny")).params == c.params  # params don't depend on the pattern


def test_pattern_of_the_wrong_shape_is_refused():
    from sola_search.errors import SolaError

    with pytest.raises(SolaError, match="stage 3"):
        model_cost("tiny", Pattern.parse("LL-LL-LL-SS"))


def test_text_and_baseline_names_are_counted_as_build_backbone_takes_them():
    from sola_search.errors import SolaError

    assert model_cost("micro", "ll-ll-llss-ls") == model_cost("micro", Pattern.parse("LL-LL-LLSS-LS"))
    assert model_cost("micro", "all-linear") == model_cost("micro", baseline("all-linear", "micro"))
    with pytest.raises(SolaError, match="stage 2"):
        model_cost("micro", "LL-XX-LLSS-LS")


# Published figures (DESIGN.md), stages 1–2 linear, 3–4 softmax, 224²: within 10%.
@pytest.mark.parametrize("variant, mparams, gmacs", [("tiny", 16, 2.5), ("small", 27, 4.6)])
def test_late_stages_lands_on_published_mavit(variant, mparams, gmacs):
    c = model_cost(variant, baseline("late-stages", variant), 224)
    assert abs(c.mparams / mparams - 1) < 0.10, c.mparams
    assert abs(c.gmacs / gmacs - 1) < 0.10, c.gmacs

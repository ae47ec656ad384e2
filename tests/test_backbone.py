"""The backbone: forward/backward of every variant, identical mixer parameters, MALA against the
formula, bf16 autocast, and the timm API (create_model, pattern files, features_only, ...)."""

import json
import warnings

import pytest
import timm
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import sola_search  # noqa: F401  (registers sola_vision_* with timm)
from sola_search.errors import SolaError
from sola_search.space import VARIANTS, Pattern, SolaVision, baseline, build_backbone, get_variant
from sola_search.space.backbone import Attention, Block


def mixed(variant: str) -> Pattern:
    """Softmax in the odd-numbered blocks: every stage holds both mixers."""
    v = VARIANTS[variant]
    return Pattern.from_bits([i % 2 for i in range(v.num_blocks)], v)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("kind", ["all-linear", "all-softmax", "mixed"])
def test_forward_backward_small_proxy(variant, kind):
    torch.manual_seed(0)
    p = mixed(variant) if kind == "mixed" else baseline(kind, variant)
    model = build_backbone(variant, p, width=0.25, num_classes=7, drop_path_rate=0.1)
    assert model.pattern == p and model.variant == get_variant(variant).scaled(0.25)
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert model.stages[2].blocks[0].attn.qkvg.weight.grad.abs().sum() > 0


def test_blocks_choose_their_mixer_from_the_pattern():
    model = build_backbone("micro", "LS-SL-LLSS-SL")
    kinds = [b.attn.kind[0].upper() for s in model.stages for b in s.blocks]
    assert "".join(kinds) == "LSSLLLSSSL"


def test_both_mixers_have_identical_parameters():
    torch.manual_seed(0)
    lin, soft = Block(64, 4, "linear", 4.0, 0.0, 1.0), Block(64, 4, "softmax", 4.0, 0.0, 1.0)
    a, b = lin.state_dict(), soft.state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    soft.load_state_dict(a, strict=True)
    x = torch.randn(2, 5, 5, 64)
    assert torch.equal(soft.cpe.weight, lin.cpe.weight)
    assert not torch.allclose(soft(x), lin(x))  # same weights, different mixing
    # whole models too: a linear backbone's weights load into any other pattern of the variant
    m_lin = build_backbone("micro", "all-linear", width=0.5)
    m_mixed = build_backbone("micro", mixed("micro"), width=0.5)
    m_mixed.load_state_dict(m_lin.state_dict(), strict=True)


def mala_reference(q, k, v):
    """DESIGN.md, written out token by token in float64 — no N×N matrix, no shared code:
    φ = ELU + 1, s = d^-½, k̄ = mean φ(k), v̄ = mean v, z_i = s·φ(q_i)·k̄ᵀ,
    Y_i = (1 + 1/z_i)·φ(q_i)·[(s/N)·Σ_j φ(k_j)ᵀ v_j] − z_i·v̄."""
    q, k, v = q.double(), k.double(), v.double()
    phi = lambda t: F.elu(t) + 1
    B, h, N, d = q.shape
    s = d**-0.5
    out = torch.empty_like(v)
    for b in range(B):
        for head in range(h):
            fq, fk, vv = phi(q[b, head]), phi(k[b, head]), v[b, head]
            S = sum(torch.outer(fk[j], vv[j]) for j in range(N)) * (s / N)  # (d, d)
            k_bar, v_bar = fk.mean(0), vv.mean(0)
            for i in range(N):
                z = s * torch.dot(fq[i], k_bar)
                out[b, head, i] = (1 + 1 / z) * (fq[i] @ S) - z * v_bar
    return out


def test_mala_matches_the_formula():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 17, 8) for _ in range(3))
    got = Attention.mala(q, k, v)
    assert got.dtype == torch.float32 and got.shape == v.shape
    torch.testing.assert_close(got.double(), mala_reference(q, k, v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "softmax"])
def test_mixer_forward_matches_a_written_out_reference(kind):
    torch.manual_seed(0)
    attn = Attention(32, 2, kind)
    x = torch.randn(2, 4, 5, 32)
    B, H, W, C = x.shape
    q, k, v, g = attn.qkvg(x).chunk(4, dim=-1)
    lepe = attn.lepe(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    q, k, v = (t.reshape(B, H * W, 2, 16).transpose(1, 2) for t in (q, k, v))
    if kind == "linear":
        y = mala_reference(q, k, v).float()
    else:
        y = torch.softmax(q @ k.transpose(-2, -1) / 16**0.5, dim=-1) @ v
    y = y.transpose(1, 2).reshape(B, H, W, C)
    expected = attn.proj((y + lepe) * F.silu(g))
    torch.testing.assert_close(attn(x), expected, rtol=1e-4, atol=1e-5)


class MatmulDtypes(TorchDispatchMode):
    """Records the input dtypes of every matrix product dispatched inside the mode."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in ("mm", "bmm", "matmul", "addmm", "baddbmm"):
            self.seen.append(tuple(a.dtype for a in args if isinstance(a, torch.Tensor)))
        return func(*args, **(kwargs or {}))


def test_bf16_autocast_keeps_kv_in_fp32():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 49, 16, dtype=torch.bfloat16) for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16), MatmulDtypes() as mode:
        y = Attention.mala(q, k, v)
    assert mode.seen and all(set(d) == {torch.float32} for d in mode.seen), mode.seen
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), Attention.mala(q.float(), k.float(), v.float()), rtol=2e-2, atol=2e-2)


def test_bf16_autocast_whole_model():
    torch.manual_seed(0)
    model = build_backbone("micro", mixed("micro"), width=0.5, num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    out.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = build_backbone("micro", mixed("micro"), width=0.5, layer_scale_init=1.0)
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-4, atol=1e-6, msg=n)


# --- timm ------------------------------------------------------------------------------------------
def test_timm_registration():
    names = timm.list_models("sola_vision_*")
    assert {f"sola_vision_{v}" for v in VARIANTS} <= set(names)


def test_timm_create_model_with_a_baseline_name():
    model = timm.create_model("sola_vision_micro", pattern="late-stages", num_classes=10)
    assert isinstance(model, SolaVision) and str(model.pattern) == "LL-LL-SSSS-SS"
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)
    assert model.pretrained_cfg["classifier"] == "head.fc"


def test_timm_create_model_with_text_and_default_pattern():
    m = timm.create_model("sola_vision_tiny", pattern="ll-ls-llslls-ss", width=0.25, num_classes=3)
    assert str(m.pattern) == "LL-LS-LLSLLS-SS" and m(torch.randn(1, 3, 64, 64)).shape == (1, 3)


def test_timm_says_which_pattern_it_built_when_given_none():
    """`timm.create_model("sola_vision_small")` built late-stages in silence: a warning names the
    pattern and how to pass one (timm warns, rather than fails, about defaults); with a pattern, none."""
    with pytest.warns(UserWarning, match=r"sola_vision_micro: no pattern= given; built the late-stages baseline "
                                         r"LL-LL-SSSS-SS .*pattern="):
        assert str(timm.create_model("sola_vision_micro").pattern) == "LL-LL-SSSS-SS"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        timm.create_model("sola_vision_micro", pattern="late-stages")
        build_backbone("micro")  # the library call documents its default


def test_no_pretrained_weights_is_one_clear_error(tmp_path):
    """load_backbone(..., pretrained=True) was a raw TypeError from SolaVision.__init__."""
    from sola_search import load_backbone
    from sola_search.results.patterns import make_pattern_record, write_pattern_file
    from sola_search.space import model_cost

    p = mixed("micro")
    cost = model_cost("micro", p, 224)
    path = write_pattern_file(tmp_path / "knee.json", make_pattern_record(
        "micro", p, resolution=224, val_top1=0.5, macs=cost.macs, params=cost.params))
    for build in (lambda: load_backbone(path, pretrained=True), lambda: build_backbone("micro", pretrained=True)):
        with pytest.raises(SolaError, match="no pretrained weights exist for a searched pattern"):
            build()
    assert load_backbone(path, pretrained=False).pattern == p


def test_timm_create_model_with_a_pattern_file(tmp_path):
    p = mixed("micro")
    path = tmp_path / "pattern.json"
    path.write_text(json.dumps({"variant": "micro", "layer_types": p.layer_types}))
    model = timm.create_model("sola_vision_micro", pattern=str(path), num_classes=4)
    assert model.pattern == p and model(torch.randn(2, 3, 64, 64)).shape == (2, 4)
    assert build_backbone("micro", path).pattern == p  # a Path works too
    text_file = tmp_path / "text.json"
    text_file.write_text(json.dumps({"pattern": str(p)}))
    assert build_backbone("micro", str(text_file)).pattern == p


def test_a_pattern_file_named_without_json_in_this_directory(tmp_path, monkeypatch):
    """`export --out knee` writes `knee` and prints `timm.create_model(..., pattern='knee')`: that file is
    read (it was parsed as the pattern text 'KNEE'); a directory of that name is named as one; text and
    baseline names stay what they are, a file of that name or not."""
    p = mixed("micro")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "knee").write_text(json.dumps({"variant": "micro", "layer_types": p.layer_types}))
    assert timm.create_model("sola_vision_micro", pattern="knee").pattern == p
    (tmp_path / "folder").mkdir()
    with pytest.raises(SolaError, match="pattern file folder: a directory; expected a file"):
        build_backbone("micro", "folder")
    for name in ("all-linear", "LL-LL-LLLL-LL"):
        (tmp_path / name).write_text("not a pattern file")
        assert build_backbone("micro", name).pattern == Pattern.parse("LL-LL-LLLL-LL")
    with pytest.raises(SolaError, match="pattern stage 1 'NONSENSE'"):
        build_backbone("micro", "nonsense")


@pytest.mark.parametrize("content, match", [
    (None, "pattern file .*missing.json"),
    ("{not json", "pattern file .*bad.json"),
    ([1, 2], "expected a JSON object with 'layer_types' or 'pattern'"),
    ({"variant": "micro"}, "expected a JSON object with 'layer_types' or 'pattern'"),
    ({"variant": "tiny", "layer_types": ["linear"] * 12}, "made for variant 'tiny', not 'micro'"),
    ({"layer_types": ["linear"] * 9}, "layer_types has 9 entries, expected 10"),
    ({"layer_types": ["linear"] * 9 + ["gated"]}, r"layer_types\[9\] = 'gated'"),
    ({"pattern": "LL-LL-LLL-SS"}, "stage 3 'LLL': found 3 blocks, expected 4"),
])
def test_bad_pattern_files(tmp_path, content, match):
    name = {None: "missing.json", "{not json": "bad.json"}.get(content if isinstance(content, str | None) else 0,
                                                               "p.json")
    path = tmp_path / name
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(SolaError, match=match):
        build_backbone("micro", str(path))


def test_features_only():
    v = get_variant("small").scaled(0.25)
    model = timm.create_model("sola_vision_small", features_only=True, width=0.25, pattern="mambavision")
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    assert model.feature_info.channels() == list(v.dims)
    feats = model(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, c, 64 // r, 64 // r) for c, r in zip(v.dims, (4, 8, 16, 32),
                                                                                           strict=True)]
    assert all(torch.isfinite(f).all() for f in feats)
    some = timm.create_model("sola_vision_micro", features_only=True, out_indices=(1, 3), pattern="late-stages")
    assert some.feature_info.reduction() == [8, 32] and len(some(torch.randn(1, 3, 64, 64))) == 2


def test_forward_intermediates_head_and_classifier():
    torch.manual_seed(0)
    model = timm.create_model("sola_vision_micro", pattern=str(mixed("micro")), num_classes=6).eval()
    v = get_variant("micro")
    x = torch.randn(2, 3, 96, 96)
    final, inter = model.forward_intermediates(x)
    assert [tuple(t.shape) for t in inter] == [(2, c, 96 // r, 96 // r) for c, r in zip(v.dims, (4, 8, 16, 32),
                                                                                          strict=True)]
    feats = model.forward_features(x)
    assert feats.shape == (2, v.dims[-1], 3, 3)
    torch.testing.assert_close(final, feats)
    torch.testing.assert_close(inter[-1], feats)
    last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [t.shape[1] for t in last_two] == list(v.dims[2:])
    early = model.forward_intermediates(x, indices=[0], intermediates_only=True)
    assert len(early) == 1 and early[0].shape == (2, v.dims[0], 24, 24)

    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (2, model.num_features) and model.num_features == v.dims[-1]
    logits = model.forward_head(feats)
    torch.testing.assert_close(logits, model(x))
    torch.testing.assert_close(logits, model.get_classifier()(pre))
    assert isinstance(model.get_classifier(), torch.nn.Linear) and model.get_classifier().out_features == 6

    model.reset_classifier(11)
    assert model.num_classes == 11 and model(x).shape == (2, 11)
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), torch.nn.Identity)
    torch.testing.assert_close(model(x), pre)

    # No pooling, as timm's ConvNeXt: the head at every position, (B, classes, H, W).
    model.reset_classifier(5, "")
    dense = model(x)
    assert dense.shape == (2, 5, 3, 3)
    at = model.get_classifier()(model.head.norm(feats[:, :, 1, 2]))  # one position through norm and linear
    torch.testing.assert_close(dense[:, :, 1, 2], at)
    with pytest.raises(ValueError, match="global_pool 'max'"):
        model.reset_classifier(5, "max")
    with pytest.raises(ValueError, match="feature index 4 is out of range"):
        model.forward_intermediates(x, indices=[4])
    with pytest.raises(ValueError, match="the last 1 to 4 stages"):
        model.forward_intermediates(x, indices=5)


def test_feature_indices_are_timms_with_or_without_timm(monkeypatch):
    """`forward_intermediates` reads `indices` by timm's `feature_take_indices`, and by the same rule
    written out when timm is not installed; a bad index is the same ValueError either way."""
    from sola_search.space import backbone

    cases = [None, 1, 4, [0], [-1, 0], (1, 3), [-4]]
    with_timm = [backbone._take_indices(4, c) for c in cases]
    assert with_timm == [[0, 1, 2, 3], [3], [0, 1, 2, 3], [0], [3, 0], [1, 3], [0]]
    errors = []
    for timm_take in (backbone.feature_take_indices, None):
        monkeypatch.setattr(backbone, "feature_take_indices", timm_take)
        assert [backbone._take_indices(4, c) for c in cases] == with_timm
        for bad in (0, 5, [4], [1, -5]):
            with pytest.raises(ValueError) as e:
                backbone._take_indices(4, bad)
            errors.append(str(e.value))
    assert errors[:4] == errors[4:]


def test_in_chans_and_bad_inputs():
    assert build_backbone("micro", in_chans=1, num_classes=2)(torch.randn(1, 1, 64, 64)).shape == (1, 2)
    with pytest.raises(SolaError, match="unknown variant"):
        build_backbone("huge")
    with pytest.raises(SolaError, match="stage 4"):
        build_backbone("micro", "LL-LL-LLLL-S")
    with pytest.raises(SolaError, match="width multiplier 0"):
        build_backbone("micro", width=0)


def test_a_custom_variant_scales_and_builds():
    from sola_search.space import Variant

    custom = Variant("wide-micro", (32, 64, 128, 256), (1, 1, 2, 1), (1, 2, 4, 8))
    half = custom.scaled(0.5)
    assert half.dims == (16, 32, 64, 128) and half.depths == custom.depths and half.width == 0.5
    model = build_backbone(custom, "L-S-LS-S", width=0.5, num_classes=3)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(SolaError, match="already scaled"):
        half.scaled(0.25)


def test_importing_the_package_loads_no_torch_and_still_registers_with_timm():
    """`sola-search show` starts at once (no torch, no timm), and timm finds the models whichever
    of the two a user imports first. The training side (every Ray worker) loads torch but not timm,
    which would pull in torchvision: ~3 s more of each process's start. Each first import in a fresh
    interpreter of its own, the three side by side."""
    import subprocess
    import sys

    code = {"sola_search": "import sys, sola_search; assert 'torch' not in sys.modules and 'timm' not in sys.modules; ",
            "timm": "import timm, sola_search; ",
            "sola_search.proxies": "import sys, sola_search.proxies; assert 'timm' not in sys.modules; "}
    tail = ("import timm, torch; print(sorted(timm.list_models('sola_vision*'))); "
            "m = timm.create_model('sola_vision_micro', pattern='all-linear', features_only=True); "
            "print(len(m(torch.zeros(1, 3, 32, 32))))")
    procs = {first: subprocess.Popen([sys.executable, "-c", c + tail], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True) for first, c in code.items()}
    for first, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (first, err)
        assert "sola_vision_micro" in out and "sola_vision_base" in out, first
        assert out.splitlines()[-1] == "4", first  # timm's features_only wrapper: the four stages


def test_a_pattern_files_resolution_sets_timms_data_config(tmp_path):
    """timm builds the evaluation transform from pretrained_cfg: a 384 px pattern file must say 384,
    and load_backbone must agree with timm.create_model."""
    from timm.data import resolve_model_data_config

    from sola_search import load_backbone
    from sola_search.results.patterns import make_pattern_record, write_pattern_file
    from sola_search.space import model_cost

    p = mixed("micro")
    cost = model_cost("micro", p, 384)
    path = write_pattern_file(tmp_path / "r384.json", make_pattern_record(
        "micro", p, resolution=384, val_top1=0.5, macs=cost.macs, params=cost.params))
    by_timm = timm.create_model("sola_vision_micro", pattern=str(path))
    by_file = load_backbone(path)
    for model in (by_timm, by_file):
        cfg = resolve_model_data_config(model)
        assert cfg["input_size"] == (3, 384, 384) and cfg["crop_pct"] == 0.9
        assert model.pretrained_cfg["pool_size"] == (12, 12)
    mine = timm.create_model("sola_vision_micro", pattern=str(path),
                             pretrained_cfg_overlay=dict(input_size=(3, 320, 320)))
    assert resolve_model_data_config(mine)["input_size"] == (3, 320, 320)  # the user's overlay wins
    plain = timm.create_model("sola_vision_micro", pattern="late-stages")
    assert resolve_model_data_config(plain)["input_size"] == (3, 224, 224)
    assert resolve_model_data_config(build_backbone("micro"))["input_size"] == (3, 224, 224)

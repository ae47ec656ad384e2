"""The SoLA-Vision backbone: a four-stage hierarchy whose blocks each mix tokens with linear (MALA)
or global softmax attention, chosen per block by a `Pattern`. Written in timm's style (blocks →
stages → model) and registered with timm as `sola_vision_<variant>` once timm is loaded.

Both mixers own exactly the same parameters, so one block's weights serve either choice.
Tensors are (B, H, W, C) inside a stage and (B, C, H, W) between stages.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from sola_search.errors import SolaError
from sola_search.space.baselines import pattern_file_defaults, resolve_pattern
from sola_search.space.pattern import SOFTMAX, Pattern
from sola_search.space.variants import VARIANTS, Variant, get_variant

# timm's own index rule, bound when the backbone registers with timm (`_register_with_timm`). timm is an
# optional extra and is never imported here for its own sake: it pulls in torchvision, ~3 s of every
# process's start (each Ray worker's too); without it a model still builds and runs (`_take_indices`).
feature_take_indices = None
_registered = False


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


def dwconv(dim: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim)


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


class Attention(nn.Module):
    """Token mixer with a q, k, v and gate projection, a 5×5 depthwise LePE on V and an output
    projection; `kind` picks global softmax attention (SDPA) or magnitude-aware linear attention.

    `kind = "mixed"` (a weight-sharing supernet, `SolaVision.set_mixing`): both mixers run on the
    shared projections and each sample takes the one its `choice` (a bool per sample, softmax where
    True) names, so one batch holds several patterns and the pattern is data, not code: a step with
    another pattern is the same CUDA graph and the same compiled block. `forward(x, kind)` runs the
    mixer `kind` names whatever `self.kind` says (a supernet's prefix scoring walks one model through
    many patterns without switching it)."""

    def __init__(self, dim: int, num_heads: int, kind: str):
        super().__init__()
        assert kind in ("linear", "softmax")
        self.kind, self.num_heads, self.head_dim = kind, num_heads, dim // num_heads
        self.qkvg = nn.Linear(dim, 4 * dim)
        self.lepe = dwconv(dim, 5)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("choice", torch.zeros(0, dtype=torch.bool), persistent=False)

    def forward(self, x: torch.Tensor, kind: str | None = None) -> torch.Tensor:
        B, H, W, C = x.shape
        kind = kind or self.kind
        q, k, v, g = self.qkvg(x).chunk(4, dim=-1)
        lepe = _nhwc(self.lepe(_nchw(v)))
        q, k, v = (t.reshape(B, H * W, self.num_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        if kind == "mixed":  # where, not a blend: the other mixer's values (and gradients) never enter
            y = torch.where(self.choice.view(B, 1, 1, 1), F.scaled_dot_product_attention(q, k, v), self.mala(q, k, v))
        elif kind == "softmax":
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            y = self.mala(q, k, v)
        y = y.transpose(1, 2).reshape(B, H, W, C)
        return self.proj((y + lepe) * F.silu(g))

    @staticmethod
    def mala(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Magnitude-aware linear attention (non-causal): with φ = ELU + 1, s = d^-½,
        z_i = s·φ(q_i)·k̄ᵀ and Y_i = (1 + 1/z_i)·φ(q_i)·[(s/N)·Σ_j φ(k_j)ᵀv_j] − z_i·v̄.
        kᵀv is formed first and kept in fp32 (under autocast too)."""
        n, d, dtype = q.shape[-2], q.shape[-1], v.dtype
        s = d**-0.5
        with torch.autocast("cuda" if q.is_cuda else "cpu", enabled=False):
            q, k, v = (F.elu(q.float()) + 1, F.elu(k.float()) + 1, v.float())
            kv = (k.transpose(-2, -1) @ v) * (s / n)  # (B, h, d, d)
            z = (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1)) * s  # (B, h, N, 1)
            y = (1 + 1 / z) * (q @ kv) - z * v.mean(dim=-2, keepdim=True)
        return y.to(dtype)


class Mlp(nn.Module):
    """1×1 → GELU → (+ 3×3 depthwise) → 1×1."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dw = dwconv(hidden, 3)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.fc1(x))
        x = x + _nhwc(self.dw(_nchw(x)))
        return self.fc2(x)


class Block(nn.Module):
    """x += CPE(x); x += γ₁·Mixer(Norm(x)); x += γ₂·MLP(Norm(x)). `kind` (optional) overrides the
    mixer's own kind for this call (`Attention.forward`)."""

    def __init__(self, dim: int, num_heads: int, kind: str, mlp_ratio: float, drop_path: float, ls_init: float):
        super().__init__()
        self.cpe = dwconv(dim, 3)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, kind)
        self.gamma1 = nn.Parameter(torch.full((dim,), ls_init))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma2 = nn.Parameter(torch.full((dim,), ls_init))
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor, kind: str | None = None) -> torch.Tensor:
        x = x + _nhwc(self.cpe(_nchw(x)))
        x = x + drop_path(self.gamma1 * self.attn(self.norm1(x), kind), self.drop_path, self.training)
        return x + drop_path(self.gamma2 * self.mlp(self.norm2(x)), self.drop_path, self.training)


class ConvNorm(nn.Module):
    """3×3 stride-2 convolution followed by a LayerNorm over channels (stem parts and downsampling)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(cout, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _nchw(self.norm(_nhwc(self.conv(x))))


class Stem(nn.Module):
    """Stride 4: two 3×3 stride-2 convolutions with a GELU between."""

    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        self.conv1 = ConvNorm(in_chans, dim // 2)
        self.conv2 = ConvNorm(dim // 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.gelu(self.conv1(x)))


class Stage(nn.Module):
    def __init__(self, cin: int, dim: int, num_heads: int, kinds: str, mlp_ratio: float, dpr: Sequence[float],
                 ls_init: float, downsample: bool):
        super().__init__()
        self.downsample = ConvNorm(cin, dim) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*(
            Block(dim, num_heads, "softmax" if c == SOFTMAX else "linear", mlp_ratio, p, ls_init)
            for c, p in zip(kinds, dpr, strict=True)
        ))
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _nhwc(self.downsample(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            for blk in self.blocks:
                x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
        else:
            x = self.blocks(x)
        return _nchw(x)


class ClassifierHead(nn.Module):
    """Global average pool → LayerNorm → dropout → linear. Without pooling (global_pool='') the
    norm and the linear apply at every position, giving (B, classes, H, W) as timm's ConvNeXt does."""

    def __init__(self, dim: int, num_classes: int, global_pool: str, drop_rate: float):
        super().__init__()
        self.global_pool = global_pool
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = self.drop(self.norm(x.mean((2, 3))))
            return x if pre_logits else self.fc(x)
        x = self.drop(self.norm(_nhwc(x)))
        return _nchw(x if pre_logits else self.fc(x))


def data_config(resolution: int = 224) -> dict:
    """timm's pretrained_cfg fields for this family at a resolution: what
    `timm.data.resolve_model_data_config` reads to build the evaluation transform."""
    side = -(-resolution // 32)  # the last stage's grid: stride 32
    return dict(num_classes=1000, input_size=(3, resolution, resolution), pool_size=(side, side), crop_pct=0.9,
                interpolation="bicubic", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                first_conv="stem.conv1.conv", classifier="head.fc", license="mit")


def _file_resolution(pattern) -> int | None:
    """The resolution a pattern file names, when `pattern` is one (text, names and `Pattern`s: None)."""
    if isinstance(pattern, str | os.PathLike):
        return pattern_file_defaults(pattern).get("resolution")
    return None


class SolaVision(nn.Module):
    """A hybrid linear/softmax attention backbone built from a variant and a pattern."""

    def __init__(
        self,
        variant: str | Variant = "tiny",
        pattern: str | Pattern | None = None,
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        layer_scale_init: float = 1e-5,
        width: float | None = None,
    ):
        super().__init__()
        v = get_variant(variant)  # a proxy Variant is used as given; width= scales the named variant
        v = v.scaled(width) if width is not None else v
        # timm reads the evaluation transform from here; a pattern file's resolution sets its size.
        self.pretrained_cfg = self.default_cfg = data_config(_file_resolution(pattern) or 224)
        pattern = resolve_pattern(pattern, v)
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool {global_pool!r}: expected 'avg' or ''")
        self.variant, self.pattern = v, pattern
        self.num_classes, self.global_pool, self.drop_rate = num_classes, global_pool, drop_rate
        self.num_features = self.head_hidden_size = v.dims[-1]
        self.stem = Stem(in_chans, v.dims[0])
        dpr = [drop_path_rate * i / max(v.num_blocks - 1, 1) for i in range(v.num_blocks)]
        stages, self.feature_info, cin, at = [], [], v.dims[0], 0
        for i, (dim, depth, heads, kinds) in enumerate(zip(v.dims, v.depths, v.heads, pattern.stages, strict=True)):
            stages.append(Stage(cin, dim, heads, kinds, v.mlp_ratio, dpr[at : at + depth], layer_scale_init,
                                downsample=i > 0))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"stages.{i}"))
            cin, at = dim, at + depth
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(self.num_features, num_classes, global_pool, drop_rate)
        self.apply(self._init_weights)

    def set_pattern(self, pattern: str | Pattern) -> SolaVision:
        """Switch every block's mixer to `pattern`'s choice, in place. Both mixers own the same
        parameters, so the weights stay as they are: one model serves every pattern (a proxy worker
        reuses its models instead of building one per trial)."""
        pattern = resolve_pattern(pattern, self.variant)
        blocks = [b for stage in self.stages for b in stage.blocks]
        for block, c in zip(blocks, "".join(pattern.stages), strict=True):
            block.attn.kind = "softmax" if c == SOFTMAX else "linear"
        self.pattern = pattern
        return self

    def set_mixing(self, choices: torch.Tensor) -> SolaVision:
        """Make the model a supernet path selector: `choices` is a (batch, blocks) bool tensor (softmax
        where True), one pattern per sample; each block reads its column (a view: a caller that
        `copy_`s new choices into the same tensor changes the patterns without touching the model,
        which is what a captured CUDA graph needs). `set_pattern` switches back to one pattern."""
        blocks = [b for stage in self.stages for b in stage.blocks]
        if choices.ndim != 2 or choices.shape[1] != len(blocks) or choices.dtype != torch.bool:
            raise ValueError(f"choices: expected a (batch, {len(blocks)}) bool tensor, got {tuple(choices.shape)} "
                             f"{choices.dtype}")
        for i, block in enumerate(blocks):
            block.attn.kind, block.attn.choice = "mixed", choices[:, i]
        self.mixing = choices
        return self

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    # --- timm's model API ----------------------------------------------------------------------
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)" if coarse else
                    [(r"^stages\.(\d+)\.downsample", (0,)), (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                     (r"^head\.norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for s in self.stages:
            s.grad_checkpointing = enable

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {n for n, p in self.named_parameters() if p.ndim <= 1}

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool not in (None, "avg", ""):
            raise ValueError(f"global_pool {global_pool!r}: expected 'avg' or ''")
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = self.head.global_pool = global_pool
        self.head.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The stage outputs at `indices` (an int n means the last n stages), timm-style. `norm` is
        accepted and changes nothing: the final norm sits in the head, after pooling (as in timm's
        ConvNeXt, whose `norm_pre` is then an identity), so no norm applies to a feature map."""
        assert output_fmt == "NCHW", "only NCHW intermediates are supported"
        take = _take_indices(len(self.stages), indices)
        intermediates = []
        x = self.stem(x)
        last = max(take)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in take:
                intermediates.append(x)
            if (stop_early or intermediates_only) and i == last:
                break
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        take = _take_indices(len(self.stages), indices)
        self.stages = self.stages[: max(take) + 1]
        if prune_head:
            self.reset_classifier(0, "")
            self.head.norm = nn.Identity()
        return take

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _take_indices(n: int, indices: int | Sequence[int] | None) -> list[int]:
    """The stages `indices` names (None: all; an int k: the last k; a list: those, negative from the
    end): timm's own `feature_take_indices` where timm is installed, the same rule written out where
    it is not and for a bad index, which is a ValueError naming it (timm's check is an assertion)."""
    if feature_take_indices is not None:
        with contextlib.suppress(AssertionError):
            return feature_take_indices(n, indices)[0]
    if indices is None:
        return list(range(n))
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise ValueError(f"indices {indices}: expected the last 1 to {n} stages")
        return list(range(n - indices, n))
    for i in indices:
        if not -n <= i < n:
            raise ValueError(f"feature index {i} is out of range ({n} stages)")
    return [i % n for i in indices]


def build_backbone(variant: str | Variant = "tiny", pattern: str | Pattern | None = None, pretrained: bool = False,
                   **kwargs) -> SolaVision:
    """The backbone of a variant with a pattern (text, baseline name, `Pattern` or pattern file).
    Keyword arguments: num_classes, in_chans, drop_path_rate, width, layer_scale_init, ...
    `pretrained` is accepted as timm's builders accept it, and only False works: a searched pattern
    is a new architecture, with no weights anywhere to load."""
    if pretrained:
        raise SolaError("pretrained=True: no pretrained weights exist for a searched pattern; the backbone is "
                        "built with fresh weights (pretrained=False) for you to train")
    return SolaVision(variant, pattern, **kwargs)


def _outside_timm_stacklevel() -> int:
    """The `stacklevel` that points a warning raised in a timm entry point at the user's own
    `timm.create_model(...)` line, past timm's factory frames."""
    timm_dir = os.path.dirname(sys.modules["timm"].__file__ or "") + os.sep
    frame, level = sys._getframe(2), 2  # 1: the entry point; 2: what called it
    while frame is not None and frame.f_code.co_filename.startswith(timm_dir):
        frame, level = frame.f_back, level + 1
    return level


def _register_with_timm() -> None:
    """Registers `sola_vision_<variant>` with timm, once: called when timm is loaded (here at import if
    it already is, else by the package's import hook the moment it is, `sola_search._register_backbone`)."""
    global _registered, feature_take_indices
    if _registered:
        return
    try:
        from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
        from timm.models._features import feature_take_indices
    except ImportError:
        return
    _registered = True

    # timm's register_model reads the module's `default_cfgs`.
    globals()["default_cfgs"] = generate_default_cfgs({f"sola_vision_{n}.untrained": data_config() for n in VARIANTS})

    def make(name: str):
        def fn(pretrained: bool = False, **kwargs):
            if kwargs.get("pattern") is None:  # timm warns rather than fails about what it chose for you
                warnings.warn(f"sola_vision_{name}: no pattern= given; built the late-stages baseline "
                              f"{resolve_pattern(None, name)} (stages 1-2 linear, 3-4 softmax). Pass pattern= a "
                              "pattern file (sola-search export), a text pattern or a baseline name",
                              UserWarning, stacklevel=_outside_timm_stacklevel())
            resolution = _file_resolution(kwargs.get("pattern"))
            if resolution and resolution != 224:  # the user's own overlay keys win
                sized = {k: v for k, v in data_config(resolution).items() if k in ("input_size", "pool_size")}
                kwargs["pretrained_cfg_overlay"] = {**sized, **(kwargs.get("pretrained_cfg_overlay") or {})}
            # build_model_with_cfg's own second parameter is called `variant` (the timm name): bind ours first.
            return build_model_with_cfg(
                partial(SolaVision, name), f"sola_vision_{name}", pretrained,
                feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True), **kwargs)

        fn.__name__ = f"sola_vision_{name}"
        fn.__qualname__ = fn.__name__
        fn.__module__ = __name__
        fn.__doc__ = f"SoLA-Vision {name}; `pattern=` text, baseline name or pattern file."
        return fn

    for name in VARIANTS:
        fn = make(name)
        globals()[fn.__name__] = fn
        register_model(fn)


if "timm" in sys.modules:
    _register_with_timm()

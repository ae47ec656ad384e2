"""The backbone family's variants and their proxy instances (same depths, narrower, smaller input)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sola_search.errors import SolaError


@dataclass(frozen=True)
class Variant:
    """Widths, depths and heads of a four-stage backbone; `width` < 1 makes a proxy instance."""

    name: str
    dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    heads: tuple[int, int, int, int]
    mlp_ratio: float = 4.0
    width: float = 1.0

    @property
    def num_blocks(self) -> int:
        return sum(self.depths)

    @property
    def stem_dim(self) -> int:
        return self.dims[0] // 2

    def scaled(self, width: float) -> Variant:
        """The proxy instance at a width multiplier: each stage keeps its heads and depth, dims
        are rounded to a multiple of 8 per head (at least 8 per head)."""
        if not 0 < width <= 1:
            raise SolaError(f"width multiplier {width!r}: expected a number in (0, 1]")
        if width == self.width:
            return self
        # Scale from the full-width dims: a built-in's, or a custom full-width variant's own.
        base = VARIANTS.get(self.name) or (self if self.width == 1 else None)
        if base is None:
            raise SolaError(f"variant {self.name!r} is already scaled to width {self.width} and is not a built-in "
                            "variant: scale the full-width variant instead")
        dims = tuple(max(1, round(d * width / (8 * h))) * 8 * h for d, h in zip(base.dims, base.heads, strict=True))
        return replace(base, dims=dims, width=width)

    def describe(self) -> str:
        d, depths, heads = ("-".join(map(str, t)) for t in (self.dims, self.depths, self.heads))
        return f"{self.name}: dims {d}, depths {depths}, heads {heads}"


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("micro", (16, 32, 64, 128), (2, 2, 4, 2), (1, 2, 4, 8)),
        Variant("tiny", (64, 128, 256, 512), (2, 2, 6, 2), (1, 2, 4, 8)),
        Variant("small", (64, 128, 320, 512), (3, 5, 9, 3), (1, 2, 5, 8)),
        Variant("base", (96, 192, 384, 512), (4, 6, 12, 4), (1, 2, 4, 8)),
    )
}


def get_variant(variant: str | Variant) -> Variant:
    """A variant by name (micro, tiny, small, base), or the one given."""
    if isinstance(variant, Variant):
        return variant
    try:
        return VARIANTS[variant]
    except KeyError:
        raise SolaError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}") from None

"""`Pattern`: which token mixer each block uses, in text form (`LL-LS-LLSLLS-SS`) or as `layer_types`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sola_search.errors import SolaError
from sola_search.space.variants import Variant, get_variant

LINEAR, SOFTMAX = "L", "S"
LINEAR_MARK, SOFTMAX_MARK = "·", "S"  # how tables and `show` draw a block
LAYER_TYPES = {LINEAR: "linear", SOFTMAX: "softmax"}
_LETTER = {v: k for k, v in LAYER_TYPES.items()}


@dataclass(frozen=True)
class Pattern:
    """One letter per block (L linear, S softmax), grouped by stage. Hashable: equal patterns de-duplicate."""

    stages: tuple[str, ...]

    def __post_init__(self) -> None:
        for i, s in enumerate(self.stages, 1):
            bad = set(s) - {LINEAR, SOFTMAX}
            if not s or bad:
                what = f"letters {''.join(sorted(bad))!r}" if bad else "no blocks"
                raise SolaError(
                    f"pattern stage {i} {s!r}: found {what}, expected one or more of L (linear), S (softmax)")

    # --- forms -------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, variant: str | Variant | None = None) -> Pattern:
        """Parse `LL-LS-LLSLLS-SS` (case-insensitive); with a variant, check the blocks per stage."""
        if not isinstance(text, str) or not text.strip():
            raise SolaError(
                "empty pattern: expected one letter per block, stages separated by '-', e.g. LL-LS-LLSLLS-SS")
        p = cls(tuple(s.strip().upper() for s in text.strip().split("-")))
        return p.check(variant) if variant is not None else p

    @classmethod
    def from_layer_types(cls, layer_types: Sequence[str], variant: str | Variant) -> Pattern:
        """The file form: a flat list of "linear"/"softmax", split into stages by the variant's depths."""
        v = get_variant(variant)
        if isinstance(layer_types, str) or not isinstance(layer_types, Sequence):
            raise SolaError(f"layer_types: expected a list of 'linear'/'softmax', found {type(layer_types).__name__}")
        letters = []
        for i, t in enumerate(layer_types):
            if not isinstance(t, str) or t not in _LETTER:
                raise SolaError(f"layer_types[{i}] = {t!r}: expected 'linear' or 'softmax'")
            letters.append(_LETTER[t])
        if len(letters) != v.num_blocks:
            raise SolaError(
                f"layer_types has {len(letters)} entries, expected {v.num_blocks} for variant {v.name} "
                f"(depths {'-'.join(map(str, v.depths))})"
            )
        stages, i = [], 0
        for d in v.depths:
            stages.append("".join(letters[i : i + d]))
            i += d
        return cls(tuple(stages))

    @classmethod
    def from_bits(cls, bits: Sequence[bool | int], variant: str | Variant) -> Pattern:
        """From one truth value per block (true = softmax), in network order."""
        return cls.from_layer_types([LAYER_TYPES[SOFTMAX if b else LINEAR] for b in bits], variant)

    def check(self, variant: str | Variant) -> Pattern:
        """Raise a `SolaError` naming the stage if this pattern does not fit the variant's depths."""
        v = get_variant(variant)
        depths = "-".join(map(str, v.depths))
        if len(self.stages) != len(v.depths):
            raise SolaError(
                f"pattern {self}: found {len(self.stages)} stages, expected {len(v.depths)} "
                f"for variant {v.name} (depths {depths})"
            )
        for i, (s, d) in enumerate(zip(self.stages, v.depths, strict=True), 1):
            if len(s) != d:
                raise SolaError(
                    f"pattern {self} stage {i} {s!r}: found {len(s)} blocks, expected {d} "
                    f"for variant {v.name} (depths {depths})"
                )
        return self

    @property
    def letters(self) -> str:
        return "".join(self.stages)

    @property
    def layer_types(self) -> list[str]:
        return [LAYER_TYPES[c] for c in self.letters]

    @property
    def bits(self) -> list[bool]:
        return [c == SOFTMAX for c in self.letters]

    @property
    def softmax_layers(self) -> int:
        return self.letters.count(SOFTMAX)

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.stages)

    def __str__(self) -> str:
        return "-".join(self.stages)

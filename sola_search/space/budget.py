"""`Budget`: what a search may spend — `8softmax`, `2.5gmacs`, `5gflops`, `20mparams`, comma-joined."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sola_search.errors import SolaError
from sola_search.space.cost import cost_table
from sola_search.space.pattern import Pattern
from sola_search.space.variants import Variant

_TERM = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(softmax|gmacs|gflops|mparams)$")
# Longer numbers are refused before conversion: float() would overflow to inf and int() stops at
# 4,300 digits, both with a traceback; no limit needs more than 20 characters.
_MAX_DIGITS = 20
_EXPECTED = "expected a number followed by softmax, gmacs, gflops or mparams, comma-joined (e.g. 8softmax,2.5gmacs)"


@dataclass(frozen=True)
class Budget:
    """Every limit that is set must hold. MACs are counted on the full model at the search resolution."""

    max_softmax: int | None = None
    max_macs: int | None = None
    max_params: int | None = None

    @classmethod
    def parse(cls, text: str) -> Budget:
        if not isinstance(text, str) or not text.strip():
            raise SolaError(f"empty budget: {_EXPECTED}")
        limits: dict[str, int] = {}
        for term in "".join(text.lower().split()).split(","):
            m = _TERM.match(term)
            if not m:
                raise SolaError(f"budget term {_shown(term)} not understood: {_EXPECTED}")
            number, unit = m.groups()
            if len(number) > _MAX_DIGITS:
                raise SolaError(f"budget term {_shown(term)} ({len(number):,} characters): too long a number "
                                f"(at most {_MAX_DIGITS} characters)")
            key = {"softmax": "max_softmax", "gmacs": "max_macs", "gflops": "max_macs", "mparams": "max_params"}[unit]
            if key in limits:
                raise SolaError(f"budget {_shown(text)} limits {key.removeprefix('max_')} twice: "
                                "expected each kind once")
            if unit == "softmax":
                if "." in number:
                    raise SolaError(f"budget term {term!r}: the softmax count must be a whole number")
                limits[key] = min(int(number), 10**6)  # more than any variant has blocks: no limit
            else:
                value = round(float(number) * {"gmacs": 1e9, "gflops": 0.5e9, "mparams": 1e6}[unit])  # FLOPs = 2 × MACs
                if value <= 0:
                    raise SolaError(f"budget term {term!r}: expected a positive limit")
                if value > 10**15:  # counts are int64 further on; no backbone comes near
                    raise SolaError(f"budget term {term!r}: too large a limit (at most 1e6 {unit})")
                limits[key] = value
        return cls(**limits)

    def __str__(self) -> str:
        parts = []
        if self.max_softmax is not None:
            parts.append(f"{self.max_softmax}softmax")
        if self.max_macs is not None:
            parts.append(f"{self.max_macs / 1e9:.15g}gmacs")
        if self.max_params is not None:
            parts.append(f"{self.max_params / 1e6:.15g}mparams")
        return ",".join(parts) or "unlimited"

    def admits(self, pattern: Pattern, variant: str | Variant, resolution: int = 224) -> bool:
        """Whether the full model of `variant` with `pattern` at `resolution` is within every limit."""
        pattern.check(variant)  # a pattern that does not fit the variant has no cost to compare
        table = cost_table(variant, resolution)
        if self.max_softmax is not None and pattern.softmax_layers > self.max_softmax:
            return False
        if self.max_params is not None and table.params > self.max_params:
            return False
        return self.max_macs is None or table.macs(pattern) <= self.max_macs


def _shown(text: str, limit: int = 40) -> str:
    """A term as a message shows it: a hostile 5,000-character one would fill the screen."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 12] + "…" + text[-11:])

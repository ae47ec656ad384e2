"""The top-1 of a `recall` model that retrieves nothing: it names the glyph most pairs on the canvas carry
(the best answer without matching the query to its key). A run that sits on this score has not learnt
retrieval (docs/performance.md, the seventeenth session's shape-key screen).

    .venv/bin/python bench/recall_guess.py [--pairs 2-24 2-6 2-2] [--canvases 50000] [--out bench/out/recall_guess.json]

Simulated as `recall` draws a canvas: P pairs, each value glyph uniform over the 10, the asked pair one of
the P at random (so the label is its glyph); P uniform over LO..HI. Prints a table and writes JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

GLYPHS = 10


def guess_top1(lo: int, hi: int, canvases: int, seed: int = 0) -> float:
    """Mean over canvases of P(label = the most frequent glyph), ties broken at random."""
    rng = np.random.default_rng(seed)
    hits = 0.0
    for p in rng.integers(lo, hi + 1, canvases):
        counts = np.bincount(rng.integers(0, GLYPHS, p), minlength=GLYPHS)
        hits += counts.max() / p  # the asked pair is one of the P: its glyph is a most frequent one this often
    return hits / canvases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="+", default=["2-24", "2-6", "2-2"], metavar="LO-HI")
    ap.add_argument("--canvases", type=int, default=50000)
    ap.add_argument("--out", default="bench/out/recall_guess.json")
    args = ap.parse_args()
    rows = []
    for spec in args.pairs:
        lo, _, hi = spec.partition("-")
        lo, hi = int(lo), int(hi or lo)
        rows.append(dict(pairs=f"{lo}-{hi}", top1=round(guess_top1(lo, hi, args.canvases), 4)))
        print(f"pairs {lo:>2}-{hi:<2}  top-1 of the most frequent glyph {rows[-1]['top1']:.4f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(canvases=args.canvases, rows=rows), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""`recall`: a generated associative-recall image task; on it the placement of softmax layers changes
how soon a proxy learns retrieval (measured: on the default 8×8 grid every placement of `small` solves it
given 4,800 steps; docs/performance.md).

A canvas of G×G cells (G = `grid`, 8 by default; a cell is resolution // G pixels). The top-left
cell is the query: a key colour inside a white frame. Elsewhere P key→value pairs, each a cell of
solid colour (48 colours of the 4-level RGB cube, all distinct in an image) with, in the cell to its right, one of 10
fixed glyphs (3×3 bit patterns drawn in white). The label is the glyph paired with the query's
colour. Answering means matching the query's colour against every key on the canvas and reading
its neighbour: content-based retrieval across the whole image, which global softmax attention does
exactly and linear attention through a fixed d×d state, worse as pairs outnumber the head
dimension (Zoology, Arora et al. 2023, for sequences); in this hierarchical backbone the downsampled
stages can do the matching too, given enough steps.

Difficulty is P. Training draws P uniformly from `pairs=LO-HI` for every sample, or, with
`curriculum=N`, from LO up to a ceiling that rises from LO to HI over the first N batches. The
validation and test sets are stratified: every P of LO..HI equally often, every label equally often,
so top-1 is the mean of the per-P accuracies, and each run also reports them (`val_by_group`).

Everything is generated on the training device: a fresh batch every step (no files, no epochs, no
augmentation: a flipped or shifted canvas would break the key→value layout), the validation set
once from `split_seed` (the same for every trial) and the test set from another stream.

Spec: `recall` or `recall:KEY=VALUE,...` with keys pairs (N or LO-HI, default 2-24), grid (4-16,
default 8), curriculum (batches, default 0), val and test (samples, 1000 to 100000, default 20000 each)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from sola_search.errors import SolaError, ascii_int
from sola_search.proxies.data import ProxyData, channel_stats

GLYPHS = 10  # classes
PALETTE = 48  # key colours
DEFAULTS = dict(pairs=(2, 24), grid=8, curriculum=0, val=20000, test=20000)
MIN_VAL = 1000  # below this the split's standard error passes 1.5 points
# An evaluation set is generated once and held on the training device, 3×R×R bytes a sample: at 64 px (the
# default preset's) 12 KiB, so 100,000 samples (5x the default) are 1.2 GB, at 128 px 4.9 GB. 10**7 (the bound
# that was) asked for 123 GB at 64 px. Top-1 on 100,000 samples has a standard error of 0.16 points at most.
MAX_VAL = 100_000
# Where a run learns recall at all, measured on an H200 (docs/performance.md, the `recall` sections; `small`
# at width 0.5, 64 px, batch 128): at lr 1e-3 runs leave the ~0.21 plateau between steps 900 and 1,500 (91
# of 96 learnt it in 2,400 steps); at lr 2e-3 whether a run learns is a coin flip per seed.
EARLIEST_LEARNT_STEP = 900
LEARNING_LR = 1e-3
# A 16x16 grid was learnt by no placement with 4-px cells (64 px, 4,800 steps) nor with 8-px cells (128 px
# at width 0.25, 2,400 steps; fifteenth session): its 256 cells, not the cell's size, are what is not learnt.
UNLEARNT_GRID = 16


@dataclass(frozen=True)
class RecallSpec:
    pairs: tuple[int, int]
    grid: int
    curriculum: int
    val: int
    test: int

    @property
    def slots(self) -> int:
        """Pair positions on the canvas: a key at an even column, its value right of it; the
        query takes the first one."""
        return self.grid * self.grid // 2 - 1

    def __str__(self) -> str:
        lo, hi = self.pairs
        return (f"recall:pairs={lo}-{hi},grid={self.grid},curriculum={self.curriculum},"
                f"val={self.val},test={self.test}")


def parse_recall(spec: str) -> RecallSpec:
    """`recall[:key=value,...]` → a checked `RecallSpec`; anything else is a one-line `SolaError`."""
    kind, _, arg = spec.partition(":")
    if kind != "recall":
        raise SolaError(f"data {spec!r}: not a recall spec")
    where = f"data {spec!r}"
    values: dict = dict(DEFAULTS)
    seen: set[str] = set()
    for term in filter(None, arg.split(",")):
        key, sep, value = term.partition("=")
        key = key.strip()
        if not sep or key not in DEFAULTS:
            raise SolaError(f"{where}: unknown term {term!r} (expected {', '.join(k + '=...' for k in DEFAULTS)})")
        if key in seen:  # silently keeping the last would hide a typo in the other
            raise SolaError(f"{where}: {key}= given twice, expected each term once")
        seen.add(key)
        try:
            if key == "pairs":
                lo, dash, hi = value.partition("-")
                if dash and not hi:
                    raise ValueError  # `2-` is a range cut short, not `2`
                values[key] = (ascii_int(lo), ascii_int(hi or lo))
            else:
                values[key] = ascii_int(value)
        except ValueError:
            expected = "N or LO-HI, whole numbers" if key == "pairs" else "a whole number"
            raise SolaError(f"{where}: {key}={value!r}, expected {expected}") from None
    s = RecallSpec(**values)
    if not 4 <= s.grid <= 16 or s.grid % 2:
        raise SolaError(f"{where}: grid={s.grid}, expected an even number of cells per side from 4 to 16")
    lo, hi = s.pairs
    top = min(s.slots, PALETTE)
    if not 1 <= lo <= hi <= top:
        raise SolaError(f"{where}: pairs={lo}-{hi}, expected 1 <= LO <= HI <= {top} (a {s.grid}x{s.grid} grid has "
                        f"{s.slots} pair positions, the palette {PALETTE} colours)")
    if s.curriculum < 0:
        raise SolaError(f"{where}: curriculum={s.curriculum}, expected batches >= 0")
    for key in ("val", "test"):
        n = getattr(s, key)
        if not MIN_VAL <= n <= MAX_VAL:
            raise SolaError(f"{where}: {key}={n}, expected {MIN_VAL} to {MAX_VAL} samples (each held on the "
                            f"training device: {MAX_VAL} at 64 px are 1.2 GB)")
    return s


def training_advice(cfg) -> list[str]:
    """One warning when `cfg` (a `ProxyConfig` on recall data) trains where no measured run learnt recall:
    every pattern would then score near chance and the search's front rank nothing, which a user should
    hear before the GPU-hours, not after."""
    try:
        spec = parse_recall(cfg.data)
    except SolaError:
        return []
    why, fix = [], []
    if cfg.steps < EARLIEST_LEARNT_STEP:
        why.append(f"{cfg.steps} steps, fewer than the {EARLIEST_LEARNT_STEP} by which the earliest measured run "
                   "learnt it")
        fix.append("--steps 2400")
    if cfg.lr > LEARNING_LR:
        why.append(f"lr {cfg.lr:g}, at which learning it at all was a coin flip per seed (at lr 1e-3, 91 of 96 "
                   "runs learnt it in 2,400 steps)")
        fix.append("--lr 1e-3")
    if spec.grid >= UNLEARNT_GRID:
        why.append(f"a {spec.grid}x{spec.grid} grid ({cfg.resolution // spec.grid}-px cells), which no placement "
                   "learnt with 4-px cells in 4,800 steps nor with 8-px cells in 2,400")
        fix.append("the default grid=8")
    if not why:
        return []
    return [f"recall is learnt in one sudden jump, which this training may never make: {'; '.join(why)} (measured "
            f"with small at batch 128, docs/performance.md), so every pattern may score near chance; try "
            f"{', '.join(fix)}, or `sola-search calibrate` first"]


def cell_size(spec: RecallSpec, resolution: int) -> int:
    cell = resolution // spec.grid
    if cell < 4:
        raise SolaError(f"data {spec}: a {spec.grid}x{spec.grid} grid needs at least {4 * spec.grid} px "
                        f"(4 px a cell), the proxy has {resolution}")
    return cell


def palette() -> torch.Tensor:
    """48 distinct colours (uint8 RGB) from the 4-level RGB cube ({0, 85, 170, 255}³): no greys, none
    dark enough to pass for the black background nor pale enough for a white glyph or frame."""
    levels = (0, 85, 170, 255)
    cube = [(r, g, b) for r in levels for g in levels for b in levels if not r == g == b and max(r, g, b) >= 170]
    cube.sort(key=lambda c: (min(c) >= 170, sum(c)))  # the palest last
    return torch.tensor(cube[:PALETTE], dtype=torch.uint8)


def glyph_bits() -> torch.Tensor:
    """10 fixed 3×3 bit patterns (bool), each with 4-6 bits set, any two at Hamming distance >= 3."""
    g = torch.Generator().manual_seed(1234)
    chosen: list[torch.Tensor] = []
    while len(chosen) < GLYPHS:
        cand = torch.rand(9, generator=g) < 0.5
        if 4 <= int(cand.sum()) <= 6 and all(int((cand ^ c).sum()) >= 3 for c in chosen):
            chosen.append(cand)
    return torch.stack(chosen).view(GLYPHS, 3, 3)


def _masks(cell: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(glyph masks (10, c, c), key mask (c, c), query frame mask (c, c)) for a cell of `cell` px:
    a blank margin (none below 6 px, one pixel below 12, else two) keeps neighbours apart."""
    m = 0 if cell < 6 else 1 if cell < 12 else 2
    inner = cell - 2 * m
    bit = inner // 3
    glyphs = torch.zeros((GLYPHS, cell, cell), dtype=torch.bool)
    scaled = glyph_bits().repeat_interleave(bit, 1).repeat_interleave(bit, 2)
    off = m + (inner - 3 * bit) // 2
    glyphs[:, off : off + 3 * bit, off : off + 3 * bit] = scaled
    key = torch.zeros((cell, cell), dtype=torch.bool)
    key[m : cell - m, m : cell - m] = True
    frame = torch.zeros((cell, cell), dtype=torch.bool)
    frame[:, :1] = frame[:, -1:] = frame[:1] = frame[-1:] = True
    return glyphs.to(dev), key.to(dev), frame.to(dev)


def generate(spec: RecallSpec, resolution: int, pairs: torch.Tensor, labels: torch.Tensor,
             generator: torch.Generator) -> torch.Tensor:
    """Canvases (uint8 N×3×res×res, on the labels' device) with `pairs[i]` pairs each and the
    answer `labels[i]`; everything else (positions, colours, other glyphs, which pair is asked)
    drawn from `generator`."""
    dev = labels.device
    n, s, g = labels.shape[0], spec.slots, spec.grid
    cell = cell_size(spec, resolution)
    rand = lambda *shape: torch.rand(shape, device=dev, generator=generator)  # noqa: E731
    # which slots hold a pair: the P lowest of random ranks; colours: distinct per image
    slot_rank = rand(n, s).argsort(1).argsort(1)  # a random permutation of 0..S-1 per image
    used = slot_rank < pairs[:, None]  # (n, S)
    colour = rand(n, PALETTE).argsort(1).gather(1, slot_rank.clamp_max(PALETTE - 1))  # distinct on used slots
    glyph = torch.randint(0, GLYPHS, (n, s), device=dev, generator=generator)
    asked = (rand(n) * pairs).long().clamp_max(pairs - 1)  # the asked pair's rank among the used slots
    target = (slot_rank == asked[:, None]).float().argmax(1)  # its slot
    glyph.scatter_(1, target[:, None], labels[:, None])
    query_colour = colour.gather(1, target[:, None])[:, 0]

    # cell contents, row-major over the G×G grid: slot j is row (j+1) // (G/2), key column 2·((j+1) % (G/2))
    kind = torch.zeros((n, g * g), dtype=torch.uint8, device=dev)  # 0 blank, 1 key, 2 value, 3 query
    col_of = torch.zeros((n, g * g), dtype=torch.long, device=dev)
    gl_of = torch.zeros((n, g * g), dtype=torch.long, device=dev)
    slot_cell = torch.arange(1, s + 1, device=dev) * 2  # cell index of each slot's key
    key_cells = slot_cell.expand(n, s)
    kind.scatter_(1, key_cells, used.to(torch.uint8))
    kind.scatter_(1, key_cells + 1, used.to(torch.uint8) * 2)
    col_of.scatter_(1, key_cells, colour)
    gl_of.scatter_(1, key_cells + 1, glyph)
    kind[:, 0] = 3
    col_of[:, 0] = query_colour

    glyphs, key, frame = _masks(cell, dev)
    rgb = palette().to(dev)[col_of]  # (n, G², 3)
    k = kind[:, :, None, None, None]
    colour_px = rgb[:, :, :, None, None].expand(n, g * g, 3, cell, cell)
    white = torch.full((), 255, dtype=torch.uint8, device=dev)
    black = torch.zeros((), dtype=torch.uint8, device=dev)
    out = torch.where((k == 1) & key, colour_px, black)
    out = torch.where((k == 2) & glyphs[gl_of][:, :, None], white, out)
    out = torch.where((k == 3) & frame, white, out)
    out = torch.where((k == 3) & key & ~frame, colour_px, out)
    canvas = out.view(n, g, g, 3, cell, cell).permute(0, 3, 1, 4, 2, 5).reshape(n, 3, g * cell, g * cell)
    if g * cell != resolution:  # a resolution that is not a multiple of the grid: centre the canvas
        lo = (resolution - g * cell) // 2
        padded = torch.zeros((n, 3, resolution, resolution), dtype=torch.uint8, device=dev)
        padded[:, :, lo : lo + g * cell, lo : lo + g * cell] = canvas
        canvas = padded
    return canvas.contiguous()


def stratified(spec: RecallSpec, count: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(pairs, labels) of an evaluation set: each P of LO..HI and each label equally often
    (up to the remainder), in an order that mixes both."""
    lo, hi = spec.pairs
    i = torch.arange(count, device=dev)
    labels = i % GLYPHS
    pairs = lo + (i // GLYPHS) % (hi - lo + 1)
    return pairs, labels


@dataclass
class RecallData(ProxyData):
    """The `recall` task: training batches generated per step on the device; validation and test
    sets generated once. `train_x` is empty (there is no training set to hold); `val_groups`
    holds each validation sample's P."""

    recall: RecallSpec | None = None

    def batches(self, batch_size: int, generator: torch.Generator, augment: bool = True,
                limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless fresh batches (`augment` and `limit` do not apply to generated data)."""
        spec = self.recall
        lo, hi = spec.pairs
        drawn = 0
        while True:
            top = hi if not spec.curriculum else lo + round((hi - lo) * min(1.0, drawn / spec.curriculum))
            labels = torch.randint(0, GLYPHS, (batch_size,), device=self.device, generator=generator)
            pairs = torch.randint(lo, top + 1, (batch_size,), device=self.device, generator=generator)
            drawn += 1
            yield generate(spec, self.resolution, pairs, labels, generator), labels


def recall_data(spec: str, resolution: int, dev: torch.device, seed: int, test: bool) -> RecallData:
    """The task named by `spec` at `resolution` on `dev`; the validation set drawn with `seed`, the
    test set (when asked) with a stream no validation set uses."""
    s = parse_recall(spec)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    val_p, val_y = stratified(s, s.val, dev)
    val_x = _generate_chunked(s, resolution, val_p, val_y, gen)
    mean, std = channel_stats(val_x)
    data = RecallData(spec=spec, resolution=resolution, device=dev, train_x=val_x[:0], train_y=val_y[:0],
                      val_x=val_x, val_y=val_y, num_classes=GLYPHS, mean=mean, std=std,
                      classes=[f"glyph {i}" for i in range(GLYPHS)], val_groups=val_p, group_name="pairs",
                      recall=s)
    if test:
        gen.manual_seed(seed + 2**32)  # a stream disjoint from every split_seed's
        test_p, test_y = stratified(s, s.test, dev)
        data.test_x, data.test_y = _generate_chunked(s, resolution, test_p, test_y, gen), test_y
        data.test_groups = test_p
    return data


def _generate_chunked(spec: RecallSpec, resolution: int, pairs: torch.Tensor, labels: torch.Tensor,
                      gen: torch.Generator, chunk: int = 4096) -> torch.Tensor:
    parts = [generate(spec, resolution, pairs[i : i + chunk], labels[i : i + chunk], gen)
             for i in range(0, labels.shape[0], chunk)]
    return torch.cat(parts)

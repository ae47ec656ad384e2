"""Proxy tasks: how a training sample is built from the dataset's images.

`classify` (the default) is the dataset itself: one image, its class. On single-object data such as
Fashion-MNIST every token mixer does about equally well, so the placement of softmax layers barely
moves accuracy and a short proxy cannot rank patterns (docs/performance.md, fidelity). The other
tasks compose a 3×3 mosaic of the dataset's images — all from the same split, composed on the
device at every step — whose label needs information routed across the whole image:

  pointer  the centre tile holds a cue, a bright square at one of 8 positions; the label is the class
           of the tile the cue points at. Content-dependent retrieval over the whole image, which
           global softmax attention does sharply and linear attention only blurrily.
  sum      the label is the sum of the classes of the two tiles of the middle row's ends,
           modulo the class count: both objects must be recognised and combined.
  match    the centre tile is a query; exactly one of the 8 tiles around it shows an image of the
           query's class, and the label is that tile's position (8 classes). Associative recall
           by content, the retrieval that linear attention's fixed-size state does worst.

A mosaic task's validation (and test) canvases are composed once, deterministically, from the
validation (test) images, so every trial scores on the same samples."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from sola_search.errors import SolaError
from sola_search.proxies.data import ProxyData, augment_batch, channel_stats

TASKS = ("classify", "pointer", "sum", "match")
GRID = 3  # tiles per side of a mosaic
CENTRE = GRID * GRID // 2
NEIGHBOURS = [i for i in range(GRID * GRID) if i != CENTRE]  # the 8 tiles a cue can point at


def tile_resolution(task: str, resolution: int) -> int:
    """The size the dataset's images are loaded at for `task` at `resolution`."""
    check_task(task)
    return resolution if task == "classify" else resolution // GRID


def check_task(task: str) -> None:
    if task not in TASKS:
        raise SolaError(f"unknown proxy task {task!r}: expected one of {', '.join(TASKS)}")


@dataclass
class MosaicData(ProxyData):
    """A mosaic task over `tiles` (the dataset at tile resolution): training canvases composed per
    batch on the device; validation/test canvases composed once. `train_x` holds the tiles."""

    task: str = "pointer"
    tile_classes: int = 0  # the dataset's class count (num_classes is the task's)

    def batches(self, batch_size: int, generator: torch.Generator, augment: bool = True,
                limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.train_x.shape[0] if limit is None else min(limit, self.train_x.shape[0])
        if n < GRID * GRID:
            raise SolaError(f"task {self.task}: {n} training images are too few for a {GRID}x{GRID} mosaic")
        index = class_index(self.train_y[:n], self.tile_classes) if self.task == "match" else None
        while True:
            x, y = compose(self.task, self.train_x[:n], self.train_y[:n], batch_size, self.tile_classes,
                           self.resolution, generator, index)
            # a mirrored mosaic swaps left and right: a position label (match) would then be wrong
            yield (augment_batch(x, generator, flip=self.task != "match") if augment else x), y


def compose(task: str, tiles: torch.Tensor, labels: torch.Tensor, count: int, num_classes: int,
            resolution: int, generator: torch.Generator,
            index: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` mosaics (uint8 N×C×res×res) of random tiles and their labels, on the tiles' device;
    `num_classes` is the dataset's class count; `index` (match only) is `class_index(labels)`, made
    once by a caller that composes many batches."""
    dev = tiles.device
    t, c = tiles.shape[-1], tiles.shape[1]
    idx = torch.randint(0, tiles.shape[0], (count, GRID * GRID), device=dev, generator=generator)
    cells = tiles[idx]  # (N, 9, C, t, t)
    if task == "pointer":
        which = torch.randint(0, len(NEIGHBOURS), (count,), device=dev, generator=generator)
        target = torch.as_tensor(NEIGHBOURS, device=dev)[which]
        y = labels[idx.gather(1, target[:, None])[:, 0]]
        cells[:, CENTRE] = _cues(which, c, t, dev)
    elif task == "sum":
        y = (labels[idx[:, GRID]] + labels[idx[:, 2 * GRID - 1]]) % num_classes
    elif task == "match":
        y = torch.randint(0, len(NEIGHBOURS), (count,), device=dev, generator=generator)
        query = labels[idx[:, CENTRE]]
        # every other neighbour shows a different class from the query's; the target, the same class
        shift = torch.randint(1, num_classes, (count, GRID * GRID), device=dev, generator=generator)
        wanted = (query[:, None] + shift) % num_classes
        target = torch.as_tensor(NEIGHBOURS, device=dev)[y]
        wanted.scatter_(1, target[:, None], query[:, None])
        pick = _of_class(index or class_index(labels, num_classes), wanted, generator)
        keep_centre = torch.arange(GRID * GRID, device=dev)[None] == CENTRE
        cells = torch.where(keep_centre[:, :, None, None, None], cells, tiles[pick])
    else:
        raise SolaError(f"task {task!r} is not a mosaic task")
    canvas = cells.view(count, GRID, GRID, c, t, t).permute(0, 3, 1, 4, 2, 5).reshape(count, c, GRID * t, GRID * t)
    if GRID * t != resolution:  # centre the mosaic when the resolution is not a multiple of GRID
        lo = (resolution - GRID * t) // 2
        out = torch.zeros((count, c, resolution, resolution), dtype=canvas.dtype, device=dev)
        out[:, :, lo : lo + GRID * t, lo : lo + GRID * t] = canvas
        canvas = out
    return canvas.contiguous(), y


def class_index(labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image indices sorted by class, each class's count and first position: what `_of_class` draws
    from (the check that every class has images costs one host sync, here and not per batch)."""
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=num_classes)
    if bool((counts == 0).any()):
        raise SolaError("task match: a class has no images in this split")
    return order, counts, torch.cumsum(counts, 0) - counts


def _of_class(index: tuple[torch.Tensor, ...], wanted: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random image index of each `wanted` class (any shape), drawn on the device."""
    order, counts, starts = index
    r = torch.rand(wanted.shape, device=order.device, generator=generator)
    return order[starts[wanted] + (r * counts[wanted]).long().clamp_max(counts[wanted] - 1)]


def _cues(which: torch.Tensor, channels: int, t: int, dev: torch.device) -> torch.Tensor:
    """Blank tiles with a bright square in the sub-cell (of a 3×3 split of the tile) that points the
    same way as neighbour `which` lies from the centre."""
    out = torch.zeros((which.shape[0], channels, t, t), dtype=torch.uint8, device=dev)
    sub = t // GRID
    pos = torch.as_tensor(NEIGHBOURS, device=dev)[which]
    r0, c0 = (pos // GRID) * sub, (pos % GRID) * sub
    ar = torch.arange(t, device=dev)
    rows = (ar[None] >= r0[:, None]) & (ar[None] < r0[:, None] + sub)
    cols = (ar[None] >= c0[:, None]) & (ar[None] < c0[:, None] + sub)
    mask = rows[:, :, None] & cols[:, None, :]
    out[mask[:, None].expand_as(out)] = 255
    return out


def mosaic_data(base: ProxyData, task: str, resolution: int, seed: int) -> MosaicData:
    """`base` (loaded at tile resolution) as a mosaic task at `resolution`; the validation and test
    canvases (as many as the split has images) are composed with `seed`."""
    gen = torch.Generator(device=base.device)
    gen.manual_seed(seed)
    if base.val_x.shape[0] < GRID * GRID:
        raise SolaError(f"task {task}: {base.val_x.shape[0]} validation images are too few for a mosaic")
    val_x, val_y = compose(task, base.val_x, base.val_y, base.val_x.shape[0], base.num_classes, resolution, gen)
    positions = task == "match"  # labels are the 8 positions around the centre, not the dataset's classes
    data = MosaicData(spec=base.spec, resolution=resolution, device=base.device, train_x=base.train_x,
                      train_y=base.train_y, val_x=val_x, val_y=val_y,
                      num_classes=len(NEIGHBOURS) if positions else base.num_classes, mean=base.mean, std=base.std,
                      classes=[f"tile {i}" for i in NEIGHBOURS] if positions else base.classes, task=task,
                      tile_classes=base.num_classes)
    if base.test_x is not None and base.test_x.shape[0] >= GRID * GRID:
        data.test_x, data.test_y = compose(task, base.test_x, base.test_y, base.test_x.shape[0],
                                           base.num_classes, resolution, gen)
    data.mean, data.std = channel_stats(val_x)  # of composed canvases: blank margins and cues included
    return data

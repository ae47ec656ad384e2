"""Proxy datasets: read once, resized once, held on the training device as uint8, augmented there.

A data spec names the source: `fashion-mnist` (Debian's `dataset-fashion-mnist` idx files, or
`fashion-mnist:DIR`), `npz:PATH` (arrays `x` uint8 N×H×W or N×H×W×C and `y` class indices 0..K-1; optional
`x_test`/`y_test`) or `imagefolder:PATH` (one folder per class, as torchvision's ImageFolder; a
`train/` + `test/` (or `val/`) layout supplies the test split) or `recall[:KEY=VALUE,...]` (a
generated associative-recall task on which softmax placement changes how soon a proxy learns:
`proxies/recall.py`). Each is one entry of `DATA_SOURCES` (at the end): how a spec of it loads,
is checked before a search and is counted. Loaded data is cached per process, so a long-lived
worker (a Ray actor) keeps it between trials."""

from __future__ import annotations

import gzip
import math
import os
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from sola_search.errors import SolaError, one_line

if TYPE_CHECKING:
    from sola_search.proxies.config import ProxyConfig

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
_DATA_HINT = "or pass --data npz:PATH (arrays x, y) or --data imagefolder:PATH (a folder per class)"


@dataclass
class ProxyData:
    """Train / validation (/ test) images as uint8 N×C×H×W tensors on `device`, labels int64."""

    spec: str
    resolution: int
    device: torch.device
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]  # per channel, in [0, 1], from the training split
    std: tuple[float, ...]
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    classes: list[str] | None = None
    # A difficulty per validation (test) sample, e.g. recall's pair count: a run then also reports
    # its top-1 per group (`ProxyResult.val_by_group`), named `group_name`.
    val_groups: torch.Tensor | None = None
    test_groups: torch.Tensor | None = None
    group_name: str = ""
    _stats: dict = field(default_factory=dict, repr=False, compare=False)  # device → (mean, 1/std) tensors

    @property
    def channels(self) -> int:
        return self.train_x.shape[1]

    def normalize(self, x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
        """uint8 → float32, standardised per channel, on the batch's device (no host copy per step)."""
        key = str(x.device)
        if key not in self._stats:
            mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1) * 255
            self._stats[key] = mean, 1 / (torch.tensor(self.std, device=x.device).view(1, -1, 1, 1) * 255)
        mean, inv_std = self._stats[key]
        if not channels_last:
            return (x.float() - mean) * inv_std
        # Written straight into channels-last strides, whatever the input's: with one channel a batch is
        # channels-last either way to torch, yet compiled code guards on the strides, and an evaluation
        # buffer that kept NCHW's compiled the stem a second time (docs/performance.md, issue 16).
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device, memory_format=torch.channels_last)
        return torch.mul(x.float() - mean, inv_std, out=out)

    def batches(self, batch_size: int, generator: torch.Generator, augment: bool = True,
                limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless (uint8 images, labels) training batches of a fixed size: a fresh permutation per
        epoch (the tail that does not fill a batch is dropped), augmented on the device. No host
        work per step beyond slicing."""
        n = self.train_x.shape[0] if limit is None else min(limit, self.train_x.shape[0])
        if batch_size > n:
            raise SolaError(f"batch size {batch_size} is larger than the {n} training images: "
                            f"use --batch-size N with N <= {n}")
        while True:
            perm = torch.randperm(n, device=self.device, generator=generator)
            for i in range(0, n - batch_size + 1, batch_size):
                idx = perm[i : i + batch_size]
                x, y = self.train_x[idx], self.train_y[idx]
                yield (augment_batch(x, generator) if augment else x), y


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int | None = None) -> torch.Tensor:
    """Random crop with zero padding (resolution/8 by default) and random horizontal flip of a uint8
    N×C×H×W batch, as a few gather kernels on the batch's device."""
    n, c, h, w = x.shape
    pad = max(1, h // 8) if pad is None else pad
    dev = x.device
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n, 1), device=dev, generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (n, 1), device=dev, generator=generator)
    flip = torch.rand((n, 1), device=dev, generator=generator) < 0.5
    cols = torch.arange(w, device=dev).view(1, w)
    cols = torch.where(flip, w - 1 - cols, cols) + ox  # (n, w): flipped and shifted columns
    rows = torch.arange(h, device=dev).view(1, h) + oy  # (n, h)
    b = torch.arange(n, device=dev).view(n, 1, 1)
    out = xp.permute(0, 2, 3, 1)[b, rows.view(n, h, 1), cols.view(n, 1, w)]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2)


# --- loading ------------------------------------------------------------------------------------
_CACHE: dict[tuple, ProxyData] = {}


def clear_cache() -> None:
    _CACHE.clear()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` is the current CUDA device when there is one, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SolaError(f"device {device!r}: CUDA is not available on this machine (use --device cpu)")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def load_data(spec: str = "fashion-mnist", resolution: int = 32, device: str | torch.device = "auto",
              val_fraction: float = 0.1, seed: int = 0, test: bool = False) -> ProxyData:
    """The dataset named by `spec`, resized to `resolution`, on `device`, with a validation split of
    `val_fraction` drawn with `seed` (the same split for every trial). Cached per process."""
    dev = resolve_device(device)
    key = (spec, resolution, str(dev), float(val_fraction), seed, test)
    if key not in _CACHE:
        source, arg = _source(spec)
        _CACHE[key] = source.load(spec, arg, resolution, dev, val_fraction, seed, test)
    return _CACHE[key]


def load_proxy_data(cfg: ProxyConfig, device: str | torch.device | None = None) -> ProxyData:
    """`load_data` with everything a proxy config says about its data (on `device`, or the config's)."""
    return load_data(cfg.data, cfg.resolution, cfg.device if device is None else device, cfg.val_fraction,
                     cfg.split_seed, cfg.test)


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation, in [0, 1], of uint8 N×C×H×W images."""
    xf = x.float()
    mean = tuple((xf.mean(dim=(0, 2, 3)) / 255).tolist())
    std = tuple((xf.std(dim=(0, 2, 3)).clamp_min(1e-3) / 255).tolist())
    return mean, std


def _split(spec: str, arrays: tuple, resolution: int, dev: torch.device, val_fraction: float, seed: int,
           test: bool) -> ProxyData:
    """Labelled images (x, y, x_test, y_test, class names; the test arrays None when the source has
    none) as a `ProxyData`: a validation split drawn with `seed` (and a test split, when asked and
    the source has none), resized and on the device."""
    x, y, xt, yt, classes = arrays
    if len(x) < 2:
        raise SolaError(f"data {spec!r}: found {len(x)} images, expected at least 2")
    num_classes = int(max(y.max(), -1 if yt is None or not len(yt) else yt.max())) + 1
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    n_val = val_count(len(x), val_fraction)
    need_test = test and xt is None
    n_test = n_val if need_test else 0
    if need_test and len(x) - n_val - n_test < 1:
        raise SolaError(f"data {spec!r}: {len(x)} images are too few for train, validation and test splits")
    val_i, test_i, train_i = perm[:n_val], perm[n_val : n_val + n_test], perm[n_val + n_test :]
    if need_test:  # no separate test set: carve one, disjoint from validation
        xt, yt = x[test_i], y[test_i]
    train_x = _to_device(x[np.sort(train_i)], resolution, dev)
    mean, std = channel_stats(train_x)
    data = ProxyData(
        spec=spec, resolution=resolution, device=dev,
        train_x=train_x, train_y=torch.as_tensor(y[np.sort(train_i)], dtype=torch.int64, device=dev),
        val_x=_to_device(x[val_i], resolution, dev), val_y=torch.as_tensor(y[val_i], dtype=torch.int64, device=dev),
        num_classes=num_classes, mean=mean, std=std, classes=classes,
    )
    if test:
        data.test_x = _to_device(xt, resolution, dev)
        data.test_y = torch.as_tensor(yt, dtype=torch.int64, device=dev)
    return data


def val_count(images: int, val_fraction: float) -> int:
    """How many of `images` the validation split takes: at least one, and one fewer than all."""
    return min(max(1, round(images * val_fraction)), images - 1)


def _to_device(x: np.ndarray, resolution: int, dev: torch.device, chunk: int = 4096) -> torch.Tensor:
    """N×H×W(×C) uint8 → N×C×res×res uint8 on the device, resized there in chunks (bilinear, antialiased)."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    if t.shape[-2:] == (resolution, resolution):
        return t.contiguous().to(dev)
    out = torch.empty((t.shape[0], t.shape[1], resolution, resolution), dtype=torch.uint8, device=dev)
    for i in range(0, t.shape[0], chunk):
        part = t[i : i + chunk].to(dev).float()
        part = F.interpolate(part, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        out[i : i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _check_xy(x: np.ndarray, y: np.ndarray, where: str,
              classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels as a classifier needs them, refused here (before any worker starts) rather
    than failing every trial later: at least one pixel a side, and labels that are the class indices
    0..K-1, each present, K >= 2 (a label 2**40 would build a head of 2**40 classes, a gap a head of
    classes never seen). A test split (`classes`: the training split's K) needs labels among those."""
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3, 4)):
        raise SolaError(f"{where}: x has dtype {x.dtype} and shape {x.shape}, "
                        "expected uint8 N×H×W or N×H×W×C (C 1, 3, 4)")
    if min(x.shape[1:3]) < 1:
        raise SolaError(f"{where}: x holds images of {x.shape[1]}×{x.shape[2]} pixels, expected at least 1×1")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise SolaError(f"{where}: y has dtype {y.dtype} and shape {y.shape}, expected {len(x)} integers")
    least = 2 if classes is None else 1
    if len(x) < least:
        raise SolaError(f"{where}: found {len(x)} images, expected at least {least}")
    if y.min() < 0:
        raise SolaError(f"{where}: y has negative labels, expected class indices 0..K-1")
    labels = np.unique(y)  # sorted, compared in y's own dtype: uint64 labels >= 2**63 stay what they are
    if classes is not None:
        if labels[-1] >= classes:
            raise SolaError(f"{where}: y_test has labels {_label_text(labels[labels >= classes])} that the "
                            f"training labels 0..{classes - 1} do not have")
    elif len(labels) < 2:
        raise SolaError(f"{where}: every label is {int(labels[0])}: a classifier needs at least 2 classes")
    elif labels[0] != 0 or labels[-1] != len(labels) - 1:
        raise SolaError(f"{where}: y holds {len(labels)} labels ({_label_text(labels)}), expected the class indices "
                        f"0..{len(labels) - 1} with none missing: number the classes from 0, e.g. with "
                        "np.unique(y, return_inverse=True), and y_test (if any) by the same mapping")
    return x, y.astype(np.int64)


def _label_text(labels: np.ndarray, most: int = 6) -> str:
    """Sorted labels as short text: all of a few, else the first and last ones."""
    values = [str(int(v)) for v in labels]
    if len(values) <= most:
        return ", ".join(values)
    return ", ".join(values[: most - 2]) + ", …, " + ", ".join(values[-2:])


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    if os.path.isfile(path) and not zipfile.is_zipfile(path):  # np.load would talk of pickles
        raise SolaError(f"data npz:{path}: not an .npz archive (numpy.savez) with arrays x and y")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    # A damaged archive: a bad CRC (BadZipFile), a cut array (EOFError), a header that claims a
    # shape no memory holds (MemoryError) are bad input like any other.
    except (OSError, ValueError, EOFError, MemoryError, zipfile.BadZipFile) as e:
        raise SolaError(f"data npz:{path}: {one_line(e)}") from None
    raw = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))  # numpy hands those as bytes
    if raw:
        raise SolaError(f"data npz:{path}: member{'s' if len(raw) > 1 else ''} {', '.join(raw)} "
                        f"{'are' if len(raw) > 1 else 'is'} not a .npy array (numpy.savez writes arrays x and y)")
    if "x" not in arrays or "y" not in arrays:
        raise SolaError(f"data npz:{path}: found arrays {sorted(arrays)}, expected x (uint8 images) and y (labels)")
    x, y = _check_xy(arrays["x"], arrays["y"], f"data npz:{path}")
    half = [(a, b) for a, b in (("x_test", "y_test"), ("y_test", "x_test")) if a in arrays and b not in arrays]
    if half:  # a test split cut in half is a mistake, not an absence: carving another would hide it
        has, lacks = half[0]
        raise SolaError(f"data npz:{path}: has {has} but no {lacks}; expected both (the test split) or neither")
    if "x_test" in arrays:
        xt, yt = _check_xy(arrays["x_test"], arrays["y_test"], f"data npz:{path} (test)", int(y.max()) + 1)
        if _channels(xt) != _channels(x):
            raise SolaError(f"data npz:{path}: x_test has {_channels(xt)} channels and x {_channels(x)}, "
                            "expected the same")
        return x, y, xt, yt
    return x, y, None, None


def _channels(x: np.ndarray) -> int:
    return 1 if x.ndim == 3 else x.shape[-1]


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">i", raw[:4])
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):  # 0x08: unsigned byte
        raise SolaError(f"{path}: not an idx file of unsigned bytes (magic {magic:#x})")
    shape = struct.unpack(f">{ndim}i", raw[4 : 4 + 4 * ndim])
    held = len(raw) - 4 - 4 * ndim
    if min(shape) < 0 or held != math.prod(shape):  # a cut download; numpy would take one negative as "the rest"
        raise ValueError(f"its header says {'×'.join(map(str, shape))} bytes of data, it holds {held}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()  # writable for torch


def _idx_file(root: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def _fashion_mnist_files(root: str, test: bool) -> dict[str, Path]:
    r = Path(root)
    files = {s: _idx_file(r, s) for s in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")}
    if test:
        files |= {s: _idx_file(r, s) for s in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    missing = [s for s, p in files.items() if p is None]
    if missing:
        raise SolaError(f"Fashion-MNIST not found in {root} (no {missing[0]}[.gz]): install the Debian package "
                        f"dataset-fashion-mnist (apt-get install dataset-fashion-mnist), {_DATA_HINT}")
    return files


def check_data(spec: str) -> int | None:
    """Fail fast — before a search starts its workers — if `spec` names no dataset a trial could
    train on, so that bad data is one line and not a failed trial each. Returns the number of
    labelled training images (before the validation split; None for generated data).

    npz: the arrays are read and checked whole (labels as class indices, image sizes). An image
    folder: every image is opened and checked, but not decoded in full, so that a big folder costs
    a fraction of the read every worker makes anyway — a PNG by its chunks' checksums (truncation,
    flipped bits; nothing inflated), a JPEG decoded at 1/8 scale (truncation), other formats
    decoded. Fashion-MNIST: the training files are read and checked as npz arrays are."""
    source, arg = _source(spec)
    return source.check(spec, arg)


# Fewer validation images than this make top-1 too coarse to rank patterns: a warning says so.
FEW_VAL_IMAGES = 200


def check_fit(cfg: ProxyConfig, images: int | None = None) -> list[str]:
    """Refuse a proxy config that its data cannot feed — a batch larger than the training split
    fails every trial — and return a warning (one line each) for what it measures poorly: a
    validation split of a few images, whose top-1 is too coarse to tell patterns apart, and a run
    that ends inside its learning-rate warm-up. `images`: the labelled training images before the
    split, as `check_data` returns them (counted here, cheaply, when not given)."""
    images = image_count(cfg.data) if images is None else images
    notes = []
    if images is not None and images >= 2:
        n_val = val_count(images, cfg.val_fraction)
        n_train = images - n_val if cfg.max_train is None else min(images - n_val, cfg.max_train)
        if cfg.batch_size > n_train:
            raise SolaError(f"batch size {cfg.batch_size} is larger than the {n_train} training images of "
                            f"{cfg.data} ({images} less {n_val} for validation): "
                            f"use --batch-size N with N <= {n_train}")
        if n_val < FEW_VAL_IMAGES:
            notes.append(f"the validation split has {n_val} image{'s' if n_val > 1 else ''} ({cfg.val_fraction:g} of "
                         f"{images}): its top-1 moves in steps of {100 / n_val:.1f} points, with a standard error up "
                         f"to {50 / n_val**0.5:.1f} points; patterns closer than that are not told apart "
                         f"(use more data: {FEW_VAL_IMAGES}+ validation images)")
    if cfg.steps <= cfg.warmup_steps:
        notes.append(f"{cfg.steps} training steps end within the {cfg.warmup_steps}-step learning-rate warm-up: "
                     f"the rate never reaches its peak nor decays (use more than {cfg.warmup_steps} steps)")
    return notes


def training_advice(cfg: ProxyConfig) -> list[str]:
    """Warnings (one line each) about a training its data is known to learn nothing from, by what was
    measured on that data: a search whose every trial sits at chance ranks nothing, and says so only at
    the end. `cfg`: the training as it will run (a supernet's: its own steps). Empty for a spec that
    does not parse: `check_data` says what is wrong."""
    try:
        source, _ = _source(cfg.data)
    except SolaError:
        return []
    return source.advise(cfg)


def image_count(spec: str) -> int | None:
    """The labelled training images `spec` names, counted without reading them (None when it
    cannot tell: `check_data` and the loader say what is wrong)."""
    try:
        source, arg = _source(spec)
        return source.count(spec, arg)
    except Exception:  # noqa: BLE001 — any file at all may be named (a .npy, a scalar y): a count is only a hint
        return None


def _idx_count(path: Path) -> int:
    """The item count in an idx file's header (no data read)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(8)
        return struct.unpack(">i", head[4:8])[0]
    except (OSError, EOFError, struct.error) as e:
        raise SolaError(f"Fashion-MNIST: unreadable idx file {path} ({e})") from None


def _unreadable(path: Path) -> str:
    """Why an image file cannot be read ('' when it can), as cheaply as `check_data` says."""
    from PIL import Image

    try:
        with Image.open(path) as im, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if im.width < 1 or im.height < 1:
                return f"{im.width}×{im.height} pixels"
            if im.format == "PNG":
                im.verify()
            else:
                im.draft(None, (1, 1))  # JPEG: decode at the smallest scale; others: no-op
                im.load()
    except Exception as e:  # noqa: BLE001 — PIL raises OSError, SyntaxError, ValueError, … for bad files
        return one_line(e)
    return ""


def _check_classes(where: str, folder: Path, empty: list[str]) -> None:
    """A class folder without images would be a class index no image has: a gap in the labels."""
    if empty:
        raise SolaError(f"{where}: class folder{'s' if len(empty) > 1 else ''} {', '.join(empty)} in {folder} "
                        f"hold{'' if len(empty) > 1 else 's'} no images, expected at least one in each class folder "
                        f"(suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")


def _read_fashion_mnist(root: str, test: bool):
    files = _fashion_mnist_files(root, test)

    def read(stem: str) -> np.ndarray:
        try:
            return _read_idx(files[stem])
        except (OSError, EOFError, ValueError, struct.error) as e:
            raise SolaError(f"Fashion-MNIST in {root}: unreadable idx file {files[stem].name} ({e})") from None

    x, y = read("train-images-idx3-ubyte"), read("train-labels-idx1-ubyte")
    xt = read("t10k-images-idx3-ubyte") if test else None
    yt = read("t10k-labels-idx1-ubyte") if test else None
    x, y = _check_xy(x, y, f"Fashion-MNIST in {root}")
    if test:
        xt, yt = _check_xy(xt, yt, f"Fashion-MNIST in {root} (test)", int(y.max()) + 1)
    return x, y, xt, yt


def _class_folders(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _image_files(folder: Path) -> Iterator[Path]:
    """The image files under a class folder, as found (lazily: a check can stop early)."""
    return (f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())


def _read_folder(root: Path, classes: list[str], resolution: int, where: str) -> tuple[list[np.ndarray], list[int]]:
    from PIL import Image  # PIL comes with matplotlib

    images, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        for f in sorted(_image_files(folder)):
            try:
                with Image.open(f) as im, warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # e.g. PIL on palette transparency: converted anyway
                    im = im.convert("RGB").resize((resolution, resolution), Image.Resampling.BILINEAR)
                    images.append(np.asarray(im, dtype=np.uint8))
            except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:  # PIL's many kinds
                raise SolaError(f"{where}: cannot read image {f}: {one_line(e)}") from None
            labels.append(label)
    return images, labels


def _folder_layout(root: str) -> tuple[Path, Path | None, list[str]]:
    """(train folder, test folder or None, class names) of an image folder: class folders at the
    top, or under train/ beside test/ (or val/)."""
    r = Path(root)
    where = f"data imagefolder:{root}"
    if not r.is_dir():
        raise SolaError(f"{where}: not a directory (expected a folder with one sub-folder per class)")
    sub = {p.name for p in _class_folders(r)}
    test_dir = next((r / n for n in ("test", "val") if n in sub), None)
    train_dir = r / "train" if "train" in sub and test_dir is not None else r
    classes = [p.name for p in _class_folders(train_dir)]
    if len(classes) < 2:
        raise SolaError(f"{where}: found {len(classes)} class folders in {train_dir}, expected at least 2")
    return train_dir, test_dir, classes


def _read_imagefolder(root: str, resolution: int, test: bool):
    r = Path(root)
    where = f"data imagefolder:{root}"
    train_dir, test_dir, classes = _folder_layout(root)
    images, labels = _read_folder(train_dir, classes, resolution, where)
    if len(images) < 2:
        raise SolaError(f"{where}: found {len(images)} images, expected at least 2 "
                        f"(suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    present = set(labels)
    _check_classes(where, train_dir, [name for i, name in enumerate(classes) if i not in present])
    x, y = np.stack(images), np.array(labels, np.int64)
    xt = yt = None
    if test and train_dir != r:  # class folders under train/, beside test/ (or val/)
        ti, tl = _read_folder(test_dir, classes, resolution, where)
        if ti:
            xt, yt = np.stack(ti), np.array(tl, np.int64)
    # Grey images stored as RGB keep one channel.
    if (x[..., 0] == x[..., 1]).all() and (x[..., 0] == x[..., 2]).all() and (
            xt is None or ((xt[..., 0] == xt[..., 1]).all() and (xt[..., 0] == xt[..., 2]).all())):
        x = x[..., 0]
        xt = None if xt is None else xt[..., 0]
    return x, y, xt, yt, classes


def data_dir_exists(spec: str) -> bool:
    """Whether a fashion-mnist spec's directory holds the training files (for tests and benches)."""
    kind, _, arg = spec.partition(":")
    root = Path(arg or FASHION_MNIST_DIR)
    return kind == "fashion-mnist" and _idx_file(root, "train-images-idx3-ubyte") is not None and os.path.isdir(root)


# --- data sources: one entry each -----------------------------------------------------------------
@dataclass(frozen=True)
class DataSource:
    """One kind of data spec (`KIND` or `KIND:ARG`) and the three things done with a spec of it.
    Each callable takes the whole spec and its ARG ('' when none) first."""

    forms: str  # how a spec of it is written, as the error for a bad spec lists it
    needs_arg: bool
    load: Callable[..., ProxyData]  # (spec, arg, resolution, device, val_fraction, seed, test)
    check: Callable[[str, str], int | None]  # a one-line SolaError if no trial could train on it, else
    #   the labelled training images before the split (None: generated data); see `check_data`
    count: Callable[[str, str], int | None]  # the same count cheaply, without reading the images; may raise
    advise: Callable[[ProxyConfig], list[str]] = lambda cfg: []  # see `training_advice`
    path_arg: bool = False  # ARG is a file or folder: a run stores it absolute (`absolute_data`)
    default_path: str = ""  # the file or folder a spec without ARG reads (path_arg sources)


def _from_arrays(read: Callable[[str, int, bool], tuple]) -> Callable[..., ProxyData]:
    """A loader from a reader of labelled arrays, `read(arg, resolution, test)` → (x, y, x_test,
    y_test, class names): `_split` does the rest."""
    def load(spec, arg, resolution, dev, val_fraction, seed, test):
        return _split(spec, read(arg, resolution, test), resolution, dev, val_fraction, seed, test)
    return load


def _fashion_mnist_arrays(arg: str, resolution: int, test: bool) -> tuple:
    return *_read_fashion_mnist(arg or FASHION_MNIST_DIR, test), FASHION_MNIST_CLASSES


def _check_fashion_mnist(spec: str, arg: str) -> int:
    """The training files read whole and checked as npz arrays are: a folder given with
    `fashion-mnist:DIR` may hold a cut download, another file under the name or other labels."""
    return len(_read_fashion_mnist(arg or FASHION_MNIST_DIR, test=False)[1])


def _fashion_mnist_count(spec: str, arg: str) -> int:
    files = _fashion_mnist_files(arg or FASHION_MNIST_DIR, test=False)
    return _idx_count(files["train-labels-idx1-ubyte"])


def _npz_arrays(arg: str, resolution: int, test: bool) -> tuple:
    return *_read_npz(arg), None


def _npz_count(spec: str, arg: str) -> int:
    with np.load(arg, allow_pickle=False) as f:
        return len(f["y"])  # only y is read


def _check_imagefolder(spec: str, arg: str) -> int:

    """Every image opened and checked, not decoded in full (see `check_data`)."""
    where = f"data imagefolder:{arg}"
    train_dir, _, classes = _folder_layout(arg)
    files = {name: sorted(_image_files(train_dir / name)) for name in classes}
    found = sum(map(len, files.values()))
    if found < 2:
        raise SolaError(f"{where}: found {found} images in {train_dir}, expected at least 2 "
                        f"(suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    _check_classes(where, train_dir, [name for name in classes if not files[name]])
    bad = [f"{f} ({reason})" for fs in files.values() for f in fs if (reason := _unreadable(f))]
    if bad:
        raise SolaError(f"{where}: {len(bad)} of {found} images cannot be read: {'; '.join(bad[:3])}"
                        f"{'; …' if len(bad) > 3 else ''} (repair or remove them)")
    return found


def _imagefolder_count(spec: str, arg: str) -> int:
    train_dir, _, classes = _folder_layout(arg)
    return sum(1 for name in classes for _ in _image_files(train_dir / name))


def _load_recall(spec, arg, resolution, dev, val_fraction, seed, test):
    from sola_search.proxies.recall import recall_data  # recall builds on this module

    return recall_data(spec, resolution, dev, seed, test)  # no split: generated, validation set included


def _advise_recall(cfg: ProxyConfig) -> list[str]:
    from sola_search.proxies.recall import training_advice

    return training_advice(cfg)


def _check_recall(spec: str, arg: str) -> None:
    from sola_search.proxies.recall import parse_recall

    parse_recall(spec)
    return None  # generated: no images to count


DATA_SOURCES: dict[str, DataSource] = {
    "fashion-mnist": DataSource("fashion-mnist, fashion-mnist:DIR", False, _from_arrays(_fashion_mnist_arrays),
                                _check_fashion_mnist, _fashion_mnist_count, path_arg=True,
                                default_path=FASHION_MNIST_DIR),
    "npz": DataSource("npz:PATH", True, _from_arrays(_npz_arrays), lambda spec, arg: len(_read_npz(arg)[1]),
                      _npz_count, path_arg=True),
    "imagefolder": DataSource("imagefolder:PATH", True, _from_arrays(_read_imagefolder), _check_imagefolder,
                              _imagefolder_count, path_arg=True),
    "recall": DataSource("recall[:pairs=LO-HI,...]", False, _load_recall, _check_recall, lambda spec, arg: None,
                         _advise_recall),
}
_FORMS = [s.forms for s in DATA_SOURCES.values()]
SOURCES = ", ".join(_FORMS[:-1]) + " or " + _FORMS[-1]  # every spec form, for messages and help


def absolute_data(spec: str) -> str:
    """`spec` with its file or folder made absolute (from the current directory), for the sources that
    read one; others as written. A run stores its data so: resumed from another directory, a relative
    `npz:d.npz` would read another file, and the study would mix two datasets."""
    kind, _, arg = spec.partition(":")
    source = DATA_SOURCES.get(kind)
    return f"{kind}:{os.path.abspath(arg)}" if source is not None and source.path_arg and arg else spec


def same_data(a: str, b: str) -> bool:
    """Whether two specs name the same data: recall specs by their parameters (so `recall` and
    `recall:pairs = 2-24` are one task, as a resumed run must see), files and folders by where they
    resolve (`fashion-mnist` is `fashion-mnist:/usr/share/datasets/fashion-mnist`)."""
    if a == b:
        return True
    (kind_a, _, arg_a), (kind_b, _, arg_b) = a.partition(":"), b.partition(":")
    source = DATA_SOURCES.get(kind_a) if kind_a == kind_b else None
    if source is not None and source.path_arg:
        path_a, path_b = arg_a or source.default_path, arg_b or source.default_path
        return bool(path_a and path_b) and os.path.realpath(path_a) == os.path.realpath(path_b)
    if kind_a == kind_b == "recall":
        from sola_search.proxies.recall import parse_recall  # recall builds on this module

        try:
            return str(parse_recall(a)) == str(parse_recall(b))
        except SolaError:
            return False
    return False


def _source(spec: str) -> tuple[DataSource, str]:
    """The source `spec` names and its ARG; a spec of no source is one line that lists them."""
    kind, _, arg = spec.partition(":")
    source = DATA_SOURCES.get(kind)
    if source is None or (source.needs_arg and not arg):
        raise SolaError(f"data {spec!r}: expected {SOURCES}")
    return source, arg

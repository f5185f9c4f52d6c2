"""Decode each split once into a cached uint8 tensor file, so later runs start at once."""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from kdtemp.config import ConfigError
from kdtemp.files import IntegrityError, atomic_write_text, load_verified, quarantine, remove_stale_temporaries, save_verified, warn
from kdtemp.paths import default_cache_dir
from .formats import READERS, RawSplit, get_reader

CACHE_VERSION = 1


@dataclass
class ImageSplit:
    """A split in memory: ``images`` uint8 ``[N, 3, H, W]``, ``labels`` int64 ``[N]``, class names."""

    images: Tensor
    labels: Tensor
    classes: list[str]

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device: torch.device | str) -> "ImageSplit":
        return ImageSplit(self.images.to(device), self.labels.to(device), self.classes)


def select_subset(
    labels: np.ndarray,
    classes: list[str],
    per_class: int | None,
    class_subset: Sequence[str] | None,
    seed: int = 0,
    split: str = "train",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Indices (in the dataset's own order) of ``per_class`` samples of each kept class, and
    their remapped labels.

    ``class_subset`` keeps those classes (by name, in that order; labels become 0..K-1).
    The samples of a class are drawn with a fixed seed, so subsets are stable across runs.
    Errors name the field: an unknown class name, or a class with fewer than ``per_class``
    images in ``split``.
    """
    if class_subset:
        unknown = [c for c in class_subset if c not in classes]
        if unknown:
            shown = ", ".join(repr(c) for c in classes[:8]) + (", ..." if len(classes) > 8 else "")
            raise ConfigError(f"data.classes: {unknown[0]!r} is not a class of this dataset; its classes are {shown}")
        kept = [classes.index(c) for c in class_subset]
    else:
        kept = list(range(len(classes)))
    if per_class is None and not class_subset:
        return np.arange(len(labels)), np.asarray(labels, dtype=np.int64), list(classes)
    rng = np.random.default_rng(seed)
    chosen = []
    for old_label in kept:
        members = np.flatnonzero(labels == old_label)
        if per_class is not None:
            if len(members) < per_class:
                raise ConfigError(
                    f"data.{split}_per_class: {per_class} requested, but class {classes[old_label]!r} has only "
                    f"{len(members)} {split} images; allowed: at most {_smallest(labels, kept, classes)}"
                )
            members = rng.permutation(members)[:per_class]
        chosen.append(members)
    order = np.sort(np.concatenate(chosen))
    remap = np.full(len(classes), -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    return order, remap[labels[order]], [classes[i] for i in kept]


def _smallest(labels: np.ndarray, kept: list[int], classes: list[str]) -> str:
    counts = {i: int(np.count_nonzero(labels == i)) for i in kept}
    smallest = min(counts, key=counts.get)
    return f"{counts[smallest]} (class {classes[smallest]!r} is the smallest)"


def _to_uint8_chw(image, size: int | None) -> np.ndarray:
    """Decode one image (array, PIL image, path or loader) to uint8 ``[3, size, size]``:
    resize the shorter side to ``size`` and centre-crop (no resize when ``size`` is None)."""
    from PIL import Image

    if callable(image) and not isinstance(image, (str, Path)):
        image = image()
    if isinstance(image, (str, Path)):
        with Image.open(image) as handle:
            image = handle.convert("RGB")
    elif isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    if size is not None and image.size != (size, size):
        width, height = image.size
        scale = size / min(width, height)
        image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BILINEAR)
        left, top = (image.size[0] - size) // 2, (image.size[1] - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def decode(raw: RawSplit, order: np.ndarray, size: int | None, progress: bool = False) -> Tensor:
    """uint8 ``[N, 3, H, W]`` for the items ``order`` of ``raw`` (resized to ``size`` if given)."""
    if isinstance(raw.images, np.ndarray) and (size is None or raw.images.shape[1:3] == (size, size)):
        return torch.from_numpy(np.ascontiguousarray(raw.images[order].transpose(0, 3, 1, 2)))
    items = range(len(order))
    from kdtemp.progress import is_terminal

    if progress and is_terminal():  # a log file gets no per-image lines
        from tqdm import tqdm

        items = tqdm(items, desc="decoding", unit="img", leave=False)
    decoded = [_to_uint8_chw(raw.images[order[i]], size) for i in items]
    shapes = {image.shape for image in decoded}
    if len(shapes) > 1:
        raise ConfigError(f"data.image_size: this dataset's images differ in size ({sorted(shapes)[:3]}...); "
                          f"set data.image_size to store them at one size")
    return torch.from_numpy(np.stack(decoded))


def cache_key(spec: dict) -> str:
    """Short hash of everything that determines a cached split."""
    text = json.dumps({**spec, "version": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class SplitIndex:
    """What preflight needs to know of a split without decoding it: the kept class names,
    images per kept class, and the stored image size (``None`` when not known)."""

    classes: list[str]
    counts: list[int]
    image_size: tuple[int, int] | None

    def __len__(self) -> int:
        return sum(self.counts)


def _split_spec(dataset: str, split: str, root: str | None, image_size: int | None, per_class: int | None,
                classes: Sequence[str] | None, options: dict | None = None) -> dict:
    resolved_root = str(Path(root).expanduser().resolve()) if root else None
    spec = dict(dataset=dataset, split=split, root=resolved_root, image_size=image_size,
                per_class=per_class, classes=list(classes) if classes else None)
    if options:  # reader options (a folder pool's split, its file's contents) are part of what a cached split is
        spec["options"] = dict(sorted(options.items()))
        if options.get("split_file"):
            spec["split_file_sha256"] = hashlib.sha256(Path(options["split_file"]).expanduser().read_bytes()).hexdigest()
    return spec


def _read(reader, dataset: str, root: str | None, split: str, download: bool, options: dict | None) -> RawSplit:
    """Call a reader; a plug-in's result is checked to be a split kdtemp can use."""
    raw = reader(root, split, download, **(options or {}))
    if dataset in READERS:
        return raw
    if not isinstance(raw, RawSplit):
        images, labels, classes = (getattr(raw, k, None) if not isinstance(raw, dict) else raw.get(k)
                                   for k in ("images", "labels", "classes"))
        if images is None or labels is None or classes is None:
            raise ConfigError(f"data.dataset: the plug-in {dataset!r} returned a {type(raw).__name__}; it must return a "
                              "kdtemp.tasks.image.data.RawSplit (images, labels, classes)")
        raw = RawSplit(images, np.asarray(labels), list(classes))
    labels = np.asarray(raw.labels)
    if len(labels) != len(raw.images) or (len(labels) and (labels.min() < 0 or labels.max() >= len(raw.classes))):
        raise ConfigError(f"data.dataset: the plug-in {dataset!r} returned {len(raw.images)} images, {len(labels)} labels "
                          f"and {len(raw.classes)} classes; every label must index the class list")
    return RawSplit(raw.images, labels.astype(np.int64), [str(c) for c in raw.classes])


def cache_path(spec: dict, cache_dir: str | Path | None) -> Path:
    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    return directory / f"{spec['dataset']}-{spec['split']}-{cache_key(spec)}.pt"


def index_split(
    dataset: str,
    split: str,
    root: str | None = None,
    image_size: int | None = None,
    per_class: int | None = None,
    classes: Sequence[str] | None = None,
    download: bool = False,
    cache_dir: str | Path | None = None,
    options: dict | None = None,
) -> SplitIndex:
    """The :class:`SplitIndex` of a split: from the cache's index file when the split is cached,
    else from the dataset's listing (no image is decoded; a few headers are read for the size).
    Raises ``ConfigError`` for everything :func:`load_split` would fail on later."""
    reader = get_reader(dataset)
    spec = _split_spec(dataset, split, root, image_size, per_class, classes, options)
    sidecar = cache_path(spec, cache_dir).with_suffix(".json")
    if sidecar.is_file():
        try:
            stored = json.loads(sidecar.read_text())
            size = tuple(stored["image_size"]) if stored.get("image_size") else None
            return SplitIndex(list(stored["classes"]), [int(c) for c in stored["counts"]], size)
        except (ValueError, KeyError, TypeError):
            pass  # an unreadable index is rebuilt from the listing
    raw = _read(reader, dataset, root, split, download, options)
    order, labels, names = select_subset(np.asarray(raw.labels), raw.classes, per_class, classes, split=split)
    counts = np.bincount(labels, minlength=len(names)).tolist()
    return SplitIndex(names, counts, image_size_of(raw, order, image_size))


def image_size_of(raw: RawSplit, order: np.ndarray, size: int | None, samples: int = 16) -> tuple[int, int] | None:
    """The size images will be stored at: ``(size, size)`` when given, the array's size, else the
    common size of a few images spread over the split (read from their headers). Images of
    different sizes without ``size`` are a ``ConfigError`` naming ``data.image_size``."""
    if size is not None:
        return (size, size)
    if isinstance(raw.images, np.ndarray):
        return tuple(raw.images.shape[1:3])
    if len(order) == 0:
        return None
    picks = np.unique(np.linspace(0, len(order) - 1, min(samples, len(order))).astype(int))
    sizes = {_header_size(raw.images[order[i]]) for i in picks}
    sizes.discard(None)
    if len(sizes) > 1:
        shown = sorted(f"{w}x{h}" for w, h in sizes)[:3]
        raise ConfigError(f"data.image_size: this dataset's images differ in size ({', '.join(shown)}, ...); set "
                          "data.image_size to store them at one size")
    if not sizes:
        return None
    width, height = sizes.pop()
    return (height, width)


def _header_size(item) -> tuple[int, int] | None:
    """(width, height) of an image from its header (a path), or of a decoded item."""
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(item, (str, Path)):
            with Image.open(item) as handle:
                return handle.size
        image = item() if callable(item) else item
        return image.size if hasattr(image, "size") and not isinstance(image, np.ndarray) else image.shape[1::-1]
    except (OSError, UnidentifiedImageError) as error:
        raise ConfigError(f"data.root: {item} is not an image kdtemp can read ({error})") from None


def load_split(
    dataset: str,
    split: str,
    root: str | None = None,
    image_size: int | None = None,
    per_class: int | None = None,
    classes: Sequence[str] | None = None,
    download: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    options: dict | None = None,
) -> ImageSplit:
    """Load ``split`` of ``dataset`` as an :class:`ImageSplit`, from the cache when present.

    The first load decodes the images (resized to ``image_size`` when given) and writes
    ``<cache_dir>/<dataset>-<split>-<hash>.pt`` atomically, with a small ``.json`` index beside
    it (classes, counts, size) that preflight reads; later loads read that file.
    """
    reader = get_reader(dataset)
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test'; got {split!r}")
    spec = _split_spec(dataset, split, root, image_size, per_class, classes, options)
    path = cache_path(spec, cache_dir)
    remove_stale_temporaries(path.parent)
    if path.is_file():
        try:
            stored = load_verified(path)
            split_data = ImageSplit(stored["images"], stored["labels"], list(stored["classes"]))
            if split_data.images.dtype != torch.uint8 or len(split_data.images) != len(split_data.labels):
                raise IntegrityError(f"{path} does not hold a cached split")
            return split_data
        except (IntegrityError, pickle.UnpicklingError, KeyError, TypeError) as error:
            moved = quarantine(path, str(error))
            warn(f"the dataset cache {path.name} was damaged ({error}); moved to {moved.name} and rebuilt")
    raw = _read(reader, dataset, root, split, download, options)
    order, labels, names = select_subset(np.asarray(raw.labels), raw.classes, per_class, classes, split=split)
    images = decode(raw, order, image_size, progress)
    result = ImageSplit(images, torch.from_numpy(labels), names)
    save_verified({"images": result.images, "labels": result.labels, "classes": names, "spec": spec}, path)
    index = {"classes": names, "counts": np.bincount(labels, minlength=len(names)).tolist(),
             "image_size": list(images.shape[2:4])}
    atomic_write_text(path.with_suffix(".json"), json.dumps(index))
    return result

"""Decode each split once into a cached uint8 tensor file, so later runs start at once."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..config import ConfigError
from .formats import READERS, RawSplit

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


def default_cache_dir() -> Path:
    """``$KDTEMP_CACHE``, else ``$XDG_CACHE_HOME/kdtemp``, else ``~/.cache/kdtemp``."""
    if os.environ.get("KDTEMP_CACHE"):
        return Path(os.environ["KDTEMP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kdtemp"


def select_subset(
    labels: np.ndarray,
    classes: list[str],
    per_class: int | None,
    class_subset: Sequence[str] | None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Indices (in the dataset's own order) of ``per_class`` samples of each kept class, and
    their remapped labels.

    ``class_subset`` keeps those classes (by name, in that order; labels become 0..K-1).
    The samples of a class are drawn with a fixed seed, so subsets are stable across runs.
    """
    if class_subset:
        unknown = [c for c in class_subset if c not in classes]
        if unknown:
            raise ConfigError(f"data.classes: {unknown[0]!r} is not a class of this dataset; e.g. {classes[:5]}")
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
                    f"data: class {classes[old_label]!r} has {len(members)} images; {per_class} per class requested"
                )
            members = rng.permutation(members)[:per_class]
        chosen.append(members)
    order = np.sort(np.concatenate(chosen))
    remap = np.full(len(classes), -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    return order, remap[labels[order]], [classes[i] for i in kept]


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
    if progress:
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
) -> ImageSplit:
    """Load ``split`` of ``dataset`` as an :class:`ImageSplit`, from the cache when present.

    The first load decodes the images (resized to ``image_size`` when given) and writes
    ``<cache_dir>/<dataset>-<split>-<hash>.pt`` atomically; later loads read that file.
    """
    if dataset not in READERS:
        raise ConfigError(f"data.dataset: unknown dataset {dataset!r}; allowed: {', '.join(READERS)}")
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test'; got {split!r}")
    resolved_root = str(Path(root).expanduser().resolve()) if root else None
    spec = dict(dataset=dataset, split=split, root=resolved_root, image_size=image_size,
                per_class=per_class, classes=list(classes) if classes else None)
    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    path = directory / f"{dataset}-{split}-{cache_key(spec)}.pt"
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        return ImageSplit(stored["images"], stored["labels"], list(stored["classes"]))
    raw = READERS[dataset](root, split, download)
    order, labels, names = select_subset(np.asarray(raw.labels), raw.classes, per_class, classes)
    images = decode(raw, order, image_size, progress)
    result = ImageSplit(images, torch.from_numpy(labels), names)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"images": result.images, "labels": result.labels, "classes": names, "spec": spec}, temporary)
    os.replace(temporary, path)
    return result

"""Datasets by name in their standard formats, cached as uint8 tensors, and the augmentation stream."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, require
from .augment import AugmentConfig, Batch, TrainStream, eval_images, mix_batch, normalize, stream_seed
from .cache import ImageSplit, SplitIndex, default_cache_dir, index_split, load_split, select_subset
from .formats import READERS, RawSplit

NEEDS_NO_ROOT = {"digits"}
DOWNLOADABLE = {"cifar10", "cifar100", "mnist", "pets", "cars", "tiny_imagenet"}


@dataclass
class DataConfig:
    """Which data a run uses and how it is stored.

    ``image_size``: the size images are stored at in the cache (shorter side resized, centre
    crop); ``None`` keeps the native size of fixed-size datasets. ``resolution``: the model's
    input size. ``train_per_class`` / ``test_per_class`` / ``classes``: the subset builder
    (N train and M test images per class, an optional class list by name).
    """

    dataset: str = "digits"
    root: str | None = None
    download: bool = False
    image_size: int | None = None
    resolution: int = 32
    train_per_class: int | None = None
    test_per_class: int | None = None
    classes: list[str] | None = None
    cache_dir: str | None = None

    def validate(self, path: str = "data") -> None:
        require(self.dataset in READERS, f"{path}.dataset",
                f"unknown dataset {self.dataset!r}; allowed: {', '.join(READERS)}")
        require(not self.download or self.dataset in DOWNLOADABLE, f"{path}.download",
                f"dataset {self.dataset!r} cannot be downloaded; allowed for {', '.join(sorted(DOWNLOADABLE))}")
        if self.dataset not in NEEDS_NO_ROOT:
            require(bool(self.root), f"{path}.root", f"dataset {self.dataset!r} needs a root folder")
            if not self.download:
                hint = f" (set {path}.download: true to fetch the dataset)" if self.dataset in DOWNLOADABLE else ""
                require(Path(self.root).expanduser().exists(), f"{path}.root", f"{self.root!r} does not exist{hint}")
        require(self.resolution >= 8, f"{path}.resolution", f"must be >= 8; got {self.resolution}")
        require(self.image_size is None or self.image_size >= 8, f"{path}.image_size",
                f"must be >= 8; got {self.image_size}")
        for name in ("train_per_class", "test_per_class"):
            value = getattr(self, name)
            require(value is None or value >= 1, f"{path}.{name}", f"must be >= 1; got {value}")
        if self.classes is not None:
            require(len(self.classes) >= 2, f"{path}.classes",
                    f"needs at least 2 class names (or null for every class); got {self.classes}")
            repeated = sorted({c for c in self.classes if self.classes.count(c) > 1})
            if repeated:
                raise ConfigError(f"{path}.classes: names {repeated[0]!r} more than once; name each class once")

    def index(self, split: str, download: bool | None = None) -> SplitIndex:
        """Class names, per-class counts and image size of the split, without decoding it
        (``download=False`` never fetches the dataset)."""
        return index_split(
            self.dataset, split, root=self.root, image_size=self.image_size,
            per_class=self.train_per_class if split == "train" else self.test_per_class,
            classes=self.classes, download=self.download if download is None else download, cache_dir=self.cache_dir,
        )

    def load(self, split: str, progress: bool = False) -> ImageSplit:
        """The split as uint8 tensors (decoded once, then read from the cache)."""
        return load_split(
            self.dataset, split, root=self.root, image_size=self.image_size,
            per_class=self.train_per_class if split == "train" else self.test_per_class,
            classes=self.classes, download=self.download, cache_dir=self.cache_dir, progress=progress,
        )


__all__ = [
    "AugmentConfig", "Batch", "DataConfig", "ImageSplit", "READERS", "RawSplit", "SplitIndex", "TrainStream",
    "default_cache_dir", "eval_images", "load_split", "mix_batch", "normalize", "select_subset", "stream_seed",
]

"""Datasets by name in their standard formats, cached as uint8 tensors, and the augmentation stream."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdtemp.config import ConfigError, require
from ...validation import check_validation
from .augment import AugmentConfig, Batch, TrainStream, eval_images, mix_batch, normalize, stream_seed
from .cache import ImageSplit, SplitIndex, default_cache_dir, index_split, load_split, select_subset
from .formats import READERS, RawSplit, get_reader

NEEDS_NO_ROOT = {"digits"}
DOWNLOADABLE = {"cifar10", "cifar100", "mnist", "pets", "cars", "tiny_imagenet"}
KNOWN_SIZES: dict[str, tuple[int, int, int]] = {
    "cifar10": (50_000, 10_000, 10), "cifar100": (50_000, 10_000, 100), "mnist": (60_000, 10_000, 10),
    "pets": (3_680, 3_669, 37), "cars": (8_144, 8_041, 196), "tiny_imagenet": (100_000, 10_000, 200),
}
"""(train images, test images, classes) of the datasets kdtemp can download, in their standard splits:
what a plan counts on before the data is on disk."""


@dataclass
class DataConfig:
    """Which data a run uses and how it is stored.

    ``image_size``: the size images are stored at in the cache (shorter side resized, centre
    crop); ``None`` keeps the native size of fixed-size datasets. ``resolution``: the model's
    input size. ``train_per_class`` / ``test_per_class`` / ``classes``: the subset builder
    (N train and M test images per class, an optional class list by name).
    ``test_fraction`` / ``split_file`` / ``split_seed``: a ``folder`` dataset that is one pool of
    class folders (not split into ``train/`` and ``test/``) is split per class by a seeded
    fraction, or by a file listing each image's split (see ``formats.read_folder``). ``validation``: a
    fraction or count of the training split held out as a validation split (:mod:`kdtemp.tasks.validation`).
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
    test_fraction: float | None = None
    split_file: str | None = None
    split_seed: int = 0
    validation: int | float | None = None

    def validate(self, path: str = "data") -> None:
        from kdtemp.plugins import is_plugin

        plugin = is_plugin(self.dataset)
        if plugin:
            get_reader(self.dataset, f"{path}.dataset")  # imports it now: a broken plug-in stops here
        else:
            require(self.dataset in READERS, f"{path}.dataset",
                    f"unknown dataset {self.dataset!r}; allowed: {', '.join(READERS)} or a plug-in package.module:read")
        require(not self.download or plugin or self.dataset in DOWNLOADABLE, f"{path}.download",
                f"dataset {self.dataset!r} cannot be downloaded; allowed for {', '.join(sorted(DOWNLOADABLE))}")
        if self.dataset not in NEEDS_NO_ROOT and not plugin:
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
        if self.test_fraction is not None or self.split_file is not None:
            require(self.dataset == "folder", f"{path}.test_fraction" if self.test_fraction is not None else
                    f"{path}.split_file", f"splits a folder pool; dataset {self.dataset!r} has its own split")
            require(self.test_fraction is None or self.split_file is None, f"{path}.split_file",
                    "give test_fraction or split_file, not both")
        if self.test_fraction is not None:
            require(0 < self.test_fraction < 1, f"{path}.test_fraction", f"must be in (0, 1); got {self.test_fraction}")
        if self.split_file is not None:
            require(Path(self.split_file).expanduser().is_file(), f"{path}.split_file",
                    f"{self.split_file!r} does not exist")
        require(0 <= self.split_seed <= 2**32 - 1, f"{path}.split_seed", f"must be in [0, 2**32 - 1]; got {self.split_seed}")
        check_validation(self.validation, f"{path}.validation")
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
            options=self.reader_options(),
        )

    def expected_sizes(self) -> tuple[int, int] | None:
        """(train, test) images of a dataset of known size after the subset builder (classes spread
        evenly, as they are to within a few images), or ``None`` for any other dataset."""
        if self.dataset not in KNOWN_SIZES or self.reader_options():
            return None
        train, test, classes = KNOWN_SIZES[self.dataset]
        kept = len(self.classes) if self.classes else classes

        def size(total: int, per_class: int | None) -> int:
            if per_class and per_class < total // classes:
                return kept * per_class
            return round(total * kept / classes)

        return size(train, self.train_per_class), size(test, self.test_per_class)

    def reader_options(self) -> dict:
        """Options only the ``folder`` reader takes (how a single pool is split); empty otherwise."""
        if self.test_fraction is None and self.split_file is None:
            return {}
        return {"test_fraction": self.test_fraction, "split_file": self.split_file, "split_seed": self.split_seed}

    def split_file_digest(self) -> str | None:
        """SHA-256 of the split file's contents: an edited split file is other data (a new cache
        entry and new run ids), never a stale split."""
        if not self.split_file or not Path(self.split_file).expanduser().is_file():
            return None
        import hashlib

        return hashlib.sha256(Path(self.split_file).expanduser().read_bytes()).hexdigest()

    def load(self, split: str, progress: bool = False) -> ImageSplit:
        """The split as uint8 tensors (decoded once, then read from the cache)."""
        return load_split(
            self.dataset, split, root=self.root, image_size=self.image_size,
            per_class=self.train_per_class if split == "train" else self.test_per_class,
            classes=self.classes, download=self.download, cache_dir=self.cache_dir, progress=progress,
            options=self.reader_options(),
        )

    def unused_fields(self) -> set[str]:
        """Fields that cannot change the data a run sees: where the cache lives, whether the data
        may be downloaded, and the pool-split fields of a dataset that is not split from a pool."""
        unused = {"cache_dir", "download"} | ({"validation"} if self.validation is None else set())
        if not self.reader_options():
            unused |= {"test_fraction", "split_file", "split_seed"}
        return unused


__all__ = [
    "AugmentConfig", "Batch", "DataConfig", "ImageSplit", "KNOWN_SIZES", "READERS", "RawSplit", "SplitIndex", "TrainStream",
    "default_cache_dir", "eval_images", "load_split", "mix_batch", "normalize", "select_subset", "stream_seed",
]

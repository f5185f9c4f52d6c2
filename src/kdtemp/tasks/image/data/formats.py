"""Dataset readers by name, each for its standard on-disk format.

A reader returns a :class:`RawSplit`: either a uint8 array ``[N, H, W, 3]`` (fixed-size datasets)
or a sequence of images to decode (PIL images or paths), plus labels and class names. Readers
that can download do so only when asked (``download=True``); otherwise a missing dataset is a
clear error naming ``data.root``.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kdtemp.config import ConfigError

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


@dataclass
class RawSplit:
    """One split before caching: images (array or decodable items), labels and class names."""

    images: np.ndarray | Sequence
    labels: np.ndarray
    classes: list[str]


def _missing(name: str, root: str | None, detail: str) -> ConfigError:
    fix = "point data.root at the dataset" + (" or set data.download: true" if name != "folder" else "")
    return ConfigError(f"data.root: {name} not found at {root!r} ({detail}); {fix}")


def _require_root(name: str, root: str | None) -> Path:
    if not root:
        raise ConfigError(f"data.root: dataset {name!r} needs a root folder; got none")
    return Path(root).expanduser()


def read_digits(root: str | None, split: str, download: bool) -> RawSplit:
    """scikit-learn's built-in 8x8 digits (1,797 images, shipped with the package): a fixed,
    stratified 75/25 train/test split. Grey levels 0..16 are scaled to 0..255 and replicated to RGB."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    index = np.arange(len(images))
    train, test = train_test_split(index, test_size=0.25, random_state=0, stratify=digits.target)
    chosen = train if split == "train" else test
    rgb = np.repeat(images[chosen][..., None], 3, axis=-1)
    return RawSplit(rgb, digits.target[chosen].astype(np.int64), [str(d) for d in range(10)])


CIFAR_LAYOUTS = {
    # name: (folder, train files, test files, label key, meta file, class-name key, torchvision class)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                b"labels", "batches.meta", b"label_names", "CIFAR10"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", "meta", b"fine_label_names", "CIFAR100"),
}


class _CifarUnpickler(pickle.Unpickler):
    """Reads CIFAR's python pickle batches and nothing else: the only globals it resolves are
    the ones numpy needs to rebuild an array, so a planted payload cannot run."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR batch never does")
        return super().find_class(module, name)


def read_cifar_pickle(path: Path) -> dict:
    """One CIFAR batch or meta file, read safely (see :class:`_CifarUnpickler`)."""
    try:
        with open(path, "rb") as handle:
            content = _CifarUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise ConfigError(f"data.root: {path} is not a CIFAR python batch file ({error})") from None
    if not isinstance(content, dict):
        raise ConfigError(f"data.root: {path} is not a CIFAR python batch file (it holds a {type(content).__name__})")
    data = content.get(b"data")
    if data is not None and (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
                             or data.shape[1] != 3072):
        raise ConfigError(f"data.root: {path} is not a CIFAR python batch file (its data is not uint8 rows of 3072 bytes)")
    return content


def download_or_fail(action: Callable[[], object], what: str, field: str = "data.download"):
    """Run a download and return what it returns; a network failure (offline, dead URL) becomes one line."""
    try:
        return action()
    except ConfigError:
        raise
    except Exception as error:  # urllib, http and torchvision raise many kinds; all mean the same here
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{field}: could not download {what} ({type(error).__name__}: {reason}); download it "
                          "where there is internet and point data.root at it") from None


def _read_cifar(name: str, root: str | None, split: str, download: bool) -> RawSplit:
    """CIFAR in the official python pickle format: ``data`` rows of 3072 bytes (R, G, B planes)."""
    folder, train_files, test_files, label_key, meta_file, names_key, tv_class = CIFAR_LAYOUTS[name]
    base = _require_root(name, root)
    directory = base / folder if (base / folder).is_dir() or not (base / meta_file).is_file() else base
    if not (directory / meta_file).is_file() and download:
        import torchvision

        download_or_fail(lambda: getattr(torchvision.datasets, tv_class)(str(base), train=split == "train", download=True),
                         name)
        directory = base / folder
    files = [directory / f for f in (train_files if split == "train" else test_files)]
    missing = [f.name for f in files + [directory / meta_file] if not f.is_file()]
    if missing:
        raise _missing(name, root, f"missing {', '.join(missing)} in {directory}")
    images, labels = [], []
    for path in files:
        batch = read_cifar_pickle(path)
        if b"data" not in batch or label_key not in batch:
            raise ConfigError(f"data.root: {path} is not a CIFAR python batch file (no {b'data'!r} / {label_key!r})")
        images.append(batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.extend(int(v) for v in batch[label_key])
    meta = read_cifar_pickle(directory / meta_file)
    if names_key not in meta:
        raise ConfigError(f"data.root: {directory / meta_file} has no {names_key!r}")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta[names_key]]
    return RawSplit(np.concatenate(images), np.asarray(labels, dtype=np.int64), classes)


def read_cifar10(root, split, download):
    """CIFAR-10 in the official python pickle format (``cifar-10-batches-py/``)."""
    return _read_cifar("cifar10", root, split, download)


def read_cifar100(root, split, download):
    """CIFAR-100 in the official python pickle format (``cifar-100-python/``), fine labels."""
    return _read_cifar("cifar100", root, split, download)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format), gzip-compressed or not: big-endian dims after a magic number."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ConfigError(f"data.root: {path} is not an unsigned-byte IDX file")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def read_mnist(root: str | None, split: str, download: bool) -> RawSplit:
    """MNIST in the original IDX format (``*-idx3-ubyte[.gz]``), found in ``root``,
    ``root/mnist`` or ``root/MNIST/raw`` (where torchvision downloads it)."""
    base = _require_root("mnist", root)
    stem = "train" if split == "train" else "t10k"

    def find(kind: str) -> Path | None:
        for folder in (base, base / "mnist", base / "MNIST" / "raw"):
            for suffix in ("", ".gz"):
                candidate = folder / f"{stem}-{kind}{suffix}"
                if candidate.is_file():
                    return candidate
        return None

    images, labels = find("images-idx3-ubyte"), find("labels-idx1-ubyte")
    if (images is None or labels is None) and download:
        import torchvision

        download_or_fail(lambda: torchvision.datasets.MNIST(str(base), train=split == "train", download=True), "mnist")
        images, labels = find("images-idx3-ubyte"), find("labels-idx1-ubyte")
    if images is None or labels is None:
        raise _missing("mnist", root, f"no {stem}-images-idx3-ubyte / {stem}-labels-idx1-ubyte")
    pixels = _read_idx(images)
    return RawSplit(np.repeat(pixels[..., None], 3, axis=-1), _read_idx(labels).astype(np.int64), [str(d) for d in range(10)])


def _torchvision_items(dataset) -> tuple[list, np.ndarray]:
    """Decodable items from a torchvision dataset: each a callable returning (PIL image, label)."""
    labels = np.asarray([_label_of(dataset, i) for i in range(len(dataset))], dtype=np.int64)
    return [_Lazy(dataset, i) for i in range(len(dataset))], labels


def _label_of(dataset, index: int) -> int:
    for attribute in ("_labels", "targets"):
        values = getattr(dataset, attribute, None)
        if values is not None:
            return int(values[index])
    samples = getattr(dataset, "_samples", None)
    if samples is not None:
        return int(samples[index][1])
    return int(dataset[index][1])


@dataclass
class _Lazy:
    dataset: object
    index: int

    def __call__(self):
        return self.dataset[self.index][0]


def read_pets(root: str | None, split: str, download: bool) -> RawSplit:
    """Oxford-IIIT Pets in torchvision's layout (``oxford-iiit-pet/``); train = trainval."""
    import torchvision

    base = _require_root("pets", root)
    def build():
        return torchvision.datasets.OxfordIIITPet(str(base), split="trainval" if split == "train" else "test",
                                                  download=download)

    try:
        dataset = download_or_fail(build, "pets") if download else build()
    except RuntimeError as error:
        raise _missing("pets", root, str(error)) from None
    items, labels = _torchvision_items(dataset)
    return RawSplit(items, labels, list(dataset.classes))


def read_cars(root: str | None, split: str, download: bool) -> RawSplit:
    """Stanford Cars in torchvision's layout (``stanford_cars/`` with the devkit .mat files)."""
    import torchvision

    base = _require_root("cars", root)
    def build():
        return torchvision.datasets.StanfordCars(str(base), split="train" if split == "train" else "test",
                                                 download=download)

    try:
        dataset = download_or_fail(build, "cars") if download else build()
    except (RuntimeError, FileNotFoundError) as error:
        raise _missing("cars", root, str(error)) from None
    items, labels = _torchvision_items(dataset)
    return RawSplit(items, labels, list(dataset.classes))


def read_tiny_imagenet(root: str | None, split: str, download: bool) -> RawSplit:
    """Tiny ImageNet-200 in its standard layout: ``train/<wnid>/images/*.JPEG`` and
    ``val/images`` with ``val/val_annotations.txt``; the val split serves as test."""
    base = _require_root("tiny_imagenet", root)
    if not (base / "train").is_dir() and (base / "tiny-imagenet-200").is_dir():
        base = base / "tiny-imagenet-200"
    if not (base / "train").is_dir() and download:
        from torchvision.datasets.utils import download_and_extract_archive

        download_or_fail(lambda: download_and_extract_archive(TINY_IMAGENET_URL, str(base.parent)),
                         f"tiny_imagenet from {TINY_IMAGENET_URL}")
    if not (base / "train").is_dir() and not (base / "val").is_dir():
        raise _missing("tiny_imagenet", root, "no train/ or val/ folder")
    wnids_file = base / "wnids.txt"
    wnids = wnids_file.read_text().split() if wnids_file.is_file() else sorted(p.name for p in (base / "train").iterdir())
    wnids = sorted(wnids)
    index = {w: i for i, w in enumerate(wnids)}
    if split == "train":
        paths = sorted((base / "train").glob("*/images/*.JPEG"))
        labels = [index[p.parent.parent.name] for p in paths]
    else:
        annotations = base / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise _missing("tiny_imagenet", root, "no val/val_annotations.txt")
        rows = [line.split("\t") for line in annotations.read_text().splitlines() if line.strip()]
        rows.sort()
        paths = [base / "val" / "images" / r[0] for r in rows]
        labels = [index[r[1]] for r in rows]
    names = _tiny_imagenet_names(base, wnids)
    return RawSplit(paths, np.asarray(labels, dtype=np.int64), names)


def _tiny_imagenet_names(base: Path, wnids: list[str]) -> list[str]:
    words = base / "words.txt"
    if not words.is_file():
        return wnids
    lookup = dict(line.split("\t", 1) for line in words.read_text().splitlines() if "\t" in line)
    return [lookup.get(w, w).split(",")[0].strip() for w in wnids]


def read_folder(root: str | None, split: str, download: bool, test_fraction: float | None = None,
                split_file: str | None = None, split_seed: int = 0) -> RawSplit:
    """Any class-folder tree (ImageFolder). Three layouts:

    * ``root/<split>/<class>/<image>`` (``test`` falls back to ``val``): already split. The
      CIFAR-10 JPEG copy is one such tree;
    * one pool ``root/<class>/<image>`` with ``test_fraction``: each class is split on its own,
      its images sorted by path and shuffled with ``split_seed``, the first
      ``round(test_fraction * n)`` (at least 1, at most n - 1) going to test;
    * one pool with a split file: ``split_file`` lists ``<path> <train|test|1|0>`` per line
      (``1`` means train, paths relative to ``root``); a CUB-200-2011 folder (``images/``,
      ``images.txt``, ``train_test_split.txt``) is read as such without naming one.
    Class names are the class folders' names, sorted, identical in both splits.
    """
    from torchvision.datasets import ImageFolder

    base = _require_root("folder", root)
    pooled = test_fraction is not None or split_file is not None or _is_cub(base)
    if pooled:
        return _read_pool(base, split, test_fraction, split_file, split_seed)
    folder = base / split
    if split == "test" and not folder.is_dir() and (base / "val").is_dir():
        folder = base / "val"
    if not folder.is_dir():
        raise _missing("folder", root, f"no {split}/ folder of class folders{_folder_hint(base, split)}")
    try:
        dataset = ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else "no images"
        raise _missing("folder", root, f"{folder} has no class folders with images: {detail}") from None
    return RawSplit([p for p, _ in dataset.samples], np.asarray(dataset.targets, dtype=np.int64), list(dataset.classes))


def _is_cub(base: Path) -> bool:
    return (base / "images.txt").is_file() and (base / "train_test_split.txt").is_file() and (base / "images").is_dir()


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _read_pool(base: Path, split: str, test_fraction: float | None, split_file: str | None, seed: int) -> RawSplit:
    """A single pool of class folders, split by a seeded per-class fraction or by a split file."""
    if split_file is not None or test_fraction is None:
        entries = _split_entries(base, split_file)
        wanted = [(path, name) for path, name, is_train in entries if is_train == (split == "train")]
        classes = sorted({name for _, name, _ in entries})
    else:
        pool = base / "images" if (base / "images").is_dir() and not any(
            p.suffix.lower() in IMAGE_SUFFIXES for p in base.glob("*/*")) else base
        classes = sorted(p.name for p in pool.iterdir() if p.is_dir() and not p.name.startswith("."))
        wanted = []
        rng = np.random.default_rng(seed)
        for name in classes:
            files = sorted(p for p in (pool / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if len(files) < 2:
                raise ConfigError(f"data.test_fraction: class {name!r} has {len(files)} image(s) in {pool}; a "
                                  "per-class split needs at least 2")
            test_count = min(max(round(test_fraction * len(files)), 1), len(files) - 1)
            order = rng.permutation(len(files))
            chosen = order[:test_count] if split == "test" else order[test_count:]
            wanted += [(files[i], name) for i in sorted(chosen)]
    if not classes:
        raise _missing("folder", str(base), "no class folders in the pool")
    index = {name: i for i, name in enumerate(classes)}
    return RawSplit([p for p, _ in wanted], np.asarray([index[n] for _, n in wanted], dtype=np.int64), classes)


def _split_entries(base: Path, split_file: str | None) -> list[tuple[Path, str, bool]]:
    """``(image path, class name, is_train)`` from a split file, or from CUB's two files."""
    if split_file is None:  # CUB-200-2011
        paths = dict(line.split(maxsplit=1) for line in (base / "images.txt").read_text().splitlines() if line.strip())
        flags = dict(line.split()[:2] for line in (base / "train_test_split.txt").read_text().splitlines() if line.strip())
        rows = [(base / "images" / paths[i].strip(), flags.get(i)) for i in paths]
        where = base / "train_test_split.txt"
    else:
        where = Path(split_file).expanduser()
        rows = []
        for number, line in enumerate(where.read_text().splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise ConfigError(f"data.split_file: line {number} of {where} must be '<path> <train|test|1|0>'")
            rows.append((base / parts[0].strip(), parts[1]))
    entries = []
    for path, flag in rows:
        if flag not in ("train", "test", "1", "0"):
            raise ConfigError(f"data.split_file: {where} marks {path.name} with {flag!r}; allowed: train, test, 1, 0")
        if not path.is_file():
            raise ConfigError(f"data.split_file: {where} lists {path}, which does not exist")
        entries.append((path, path.parent.name, flag in ("train", "1")))
    if not entries:
        raise ConfigError(f"data.split_file: {where} lists no images")
    return entries


def _folder_hint(base: Path, split: str) -> str:
    """Where the split folder is when ``data.root`` is one level too high or too low, or how to
    split a single pool of class folders."""
    if not base.is_dir():
        return ""
    if any(p.is_dir() and any(c.suffix.lower() in IMAGE_SUFFIXES for c in p.iterdir()) for p in base.iterdir()):
        return ("; it looks like one pool of class folders: set data.test_fraction (e.g. 0.2) or data.split_file "
                "to split it")
    below = sorted(p for p in base.iterdir() if (p / split).is_dir())
    if below:
        return f"; did you mean data.root: {str(below[0])!r}?"
    if base.name in ("train", "test", "val") and (base.parent / split).is_dir():
        return f"; did you mean data.root: {str(base.parent)!r}?"
    return ""


def get_reader(dataset: str, field: str = "data.dataset") -> Callable[..., RawSplit]:
    """The reader of a dataset name, or of a plug-in ``package.module:read`` (see kdtemp.plugins)."""
    from kdtemp.plugins import is_plugin, load

    if is_plugin(dataset):
        return load(dataset, field, "dataset")
    if dataset not in READERS:
        raise ConfigError(f"{field}: unknown dataset {dataset!r}; allowed: {', '.join(READERS)} or a plug-in "
                          "package.module:read")
    return READERS[dataset]


READERS: dict[str, Callable[[str | None, str, bool], RawSplit]] = {
    "digits": read_digits,
    "cifar10": read_cifar10,
    "cifar100": read_cifar100,
    "mnist": read_mnist,
    "pets": read_pets,
    "cars": read_cars,
    "tiny_imagenet": read_tiny_imagenet,
    "folder": read_folder,
}

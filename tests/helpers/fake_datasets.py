"""Tiny datasets written in each real format, with the real class counts, for planning the examples."""

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def _image(path: Path, size: int = 12, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value % 256, np.uint8)).save(path)


def pets(root: Path) -> Path:
    """Oxford-IIIT Pets in torchvision's layout: 37 breeds, 7 trainval and 1 test image each (a batch of 256 fits)."""
    base = root / "oxford-iiit-pet"
    lines = {"trainval": [], "test": []}
    for class_id in range(1, 38):
        breed = f"breed{class_id:02d}"
        for split, ids in (("trainval", range(1, 8)), ("test", (8,))):
            for k in ids:
                _image(base / "images" / f"{breed}_{k}.jpg", value=class_id)
                lines[split].append(f"{breed}_{k} {class_id} 1 1")
    (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    for split, rows in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return root


def cars(root: Path) -> Path:
    """Stanford Cars in torchvision's layout: 196 classes, 1 train and 1 test image each."""
    from scipy.io import savemat

    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array([f"car {i}" for i in range(196)], dtype=object)})

    def annotations(folder: str) -> dict:
        records = np.zeros(196, dtype=[("fname", "O"), ("class", "O")])
        for i in range(196):
            name = f"{i:05d}.jpg"
            records[i] = (name, np.uint8(i + 1) if i < 255 else i + 1)
            _image(base / folder / name, value=i)
        return {"annotations": records}

    savemat(base / "devkit" / "cars_train_annos.mat", annotations("cars_train"))
    savemat(base / "cars_test_annos_withlabels.mat", annotations("cars_test"))
    return root


def cifar100(root: Path) -> Path:
    """CIFAR-100 in the python pickle format: 100 classes, 1 train and 1 test image each."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rows = np.zeros((100, 3072), np.uint8)
    for name in ("train", "test"):
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": rows, b"fine_labels": list(range(100))}, handle)
    with open(folder / "meta", "wb") as handle:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, handle)
    return root


def tiny_imagenet(root: Path) -> Path:
    """Tiny ImageNet-200's layout: 200 classes, 1 train and 1 val image each."""
    base = root / "tiny-imagenet-200"
    wnids = [f"n{i:08d}" for i in range(200)]
    base.mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("\n".join(wnids))
    rows = []
    for i, wnid in enumerate(wnids):
        _image(base / "train" / wnid / "images" / f"{wnid}_0.JPEG", value=i)
        _image(base / "val" / "images" / f"val_{i}.JPEG", value=i)
        rows.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t8\t8")
    (base / "val" / "val_annotations.txt").write_text("\n".join(rows))
    return base


def bird_folder(root: Path, classes: int = 52, train: int = 30, test: int = 20) -> Path:
    """A folder of class folders already split into train/ and test/."""
    for c in range(classes):
        for split, count in (("train", train), ("test", test)):
            for k in range(count):
                _image(root / split / f"bird{c:02d}" / f"{k}.png", size=8, value=c)
    return root

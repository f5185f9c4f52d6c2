"""Builders shared by many tests: tiny study files, a tiny folder dataset, planted payloads."""

import copy
import os
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

BASE = {
    "data": {"dataset": "digits", "resolution": 8, "train_per_class": 16, "test_per_class": 10},
    "augment": {"randaugment_ops": 0, "horizontal_flip": False, "mix": True},
    "teacher": {"name": "resnet20", "init": "random"},
    "batch_size": 32,
    "student": {"model": {"name": "resnet20"}, "objective": "kd", "epochs": 1},
}


def study(**changes) -> dict:
    """A one-epoch digits study with two temperatures and one seed, with ``changes`` on top."""
    data = {"name": "trust", "base": copy.deepcopy(BASE), "grid": {"student.temperature": [1, 4]}, "seeds": [0],
            "executor": {"kind": "inline", "threads": 1}}
    data.update(changes)
    return data


def write_yaml(path: Path, data) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def image_folder(root: Path, classes=("ant", "bee", "cat"), train=6, test=3, size=8) -> Path:
    """``root/{train,test}/<class>/<n>.png``: a tiny ImageFolder dataset."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                pixels[..., index % 3] = 255
                Image.fromarray(pixels).save(folder / f"{n}.png")
    return root


class Payload:
    """Pickled, it runs ``os.system`` to create ``marker`` when unpickled by an unrestricted loader."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant(path: Path, state: dict, marker: Path) -> Path:
    """Save ``state`` with a payload beside it (as a stolen or tampered checkpoint would be)."""
    torch.save({"state_dict": state, "extra": Payload(marker)}, path)
    return path


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()

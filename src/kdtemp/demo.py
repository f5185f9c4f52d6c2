"""The embedded default job behind ``make run``: digits, a small teacher, a temperature study.

The configs are plain data, written next to the results so the demo can be re-run or edited
with ``kdtemp teacher`` / ``kdtemp study``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .temperature import STUDY_TEMPERATURES  # noqa: F401  (the grid of the demo's `temperatures` preset)

_SHARED = {
    "data": {"dataset": "digits", "resolution": 16},
    "augment": {"random_resized_crop": False, "randaugment_ops": 0, "horizontal_flip": False, "mix": True},
    "batch_size": 64,
    "device": "auto",
}


def teacher_config(output: Path, epochs: int = 12) -> dict:
    """A resnet32 teacher trained from scratch on digits (CE, label smoothing 0.1, AdamW, cosine)."""
    return {
        **_SHARED,
        "model": {"name": "resnet32", "init": "random"},
        "optimizer": {"name": "adamw", "lr": 5e-3, "weight_decay": 0.05},
        "epochs": epochs,
        "label_smoothing": 0.1,
        "output": str(output / "teacher"),
    }


def study_file(output: Path, teacher_path: Path, epochs: int = 6, seeds: tuple[int, ...] = (0, 1)) -> dict:
    """A temperature study of resnet20 students (KD only, the study protocol), one cohort per seed.

    It is written to ``output/study.yaml`` with paths relative to that folder (where relative
    paths in a study file resolve), so the demo folder can be moved and run from anywhere."""
    teacher_path = Path(os.path.relpath(Path(teacher_path).resolve(), Path(output).resolve()))
    return {
        "name": "digits-temperature",
        "base": {
            **{k: v for k, v in _SHARED.items() if k != "device"},
            "teacher": {"name": "resnet32", "init": "checkpoint", "weights": str(teacher_path)},
            "student": {
                "model": {"name": "resnet20", "init": "random"},
                "objective": "kd",
                "optimizer": {"name": "adamw", "lr": 5e-3, "weight_decay": 0.05},
                "epochs": epochs,
            },
        },
        "presets": ["temperatures"],
        "seeds": list(seeds),
        "executor": {"kind": "inline"},
        "output": "study",
    }

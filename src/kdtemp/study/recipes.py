"""Named training recipes: fragments a study's runs (or a stage's preparations) start from.

``base: {recipe: classic_cifar, ...}`` fills every field that a run does not set, after its axes
are applied (mappings are merged; the run's own values, from the base or an axis, win). An axis
value that replaces a whole mapping (``student.optimizer: {name: sgd}``) therefore still gets the
recipe's schedule, and a prepared model named in an axis still gets the recipe's normalisation.
Recipes are plain data, like presets.

``classic_cifar`` is the CIFAR KD recipe of CRD and the code bases that follow it (RepDistiller,
mdistiller), used by the DTS experiments: SGD, learning rate 0.05 (0.01 for ShuffleNet and
MobileNet students in those code bases: set it), momentum 0.9, weight decay 5e-4, 240 epochs with
the rate times 0.1 at epochs 150, 180 and 210, batch 64, random crop of the 4-pixel-padded image
plus a horizontal flip, no RandAugment and no mixing, inputs normalised with CIFAR-100's mean and
std, and each objective's **official** loss weighting (``student.loss_preset: official``: KD with
CE 0.1 and KD 0.9, DKD with CE 1, KD 1 and a 20-epoch warm-up, ...), as those code bases train; the
study protocol's teacher matching only (CE 0, KD 1) is ``student.loss_preset: protocol``. kdtemp
differs in one documented way: weight decay applies to weight matrices and kernels only, not to
biases and normalisation parameters.

``annealing_kd_cifar`` is the CIFAR setting of Annealing KD's authors (huawei-noah/Efficient-NLP,
``Annealing_KD/computer_vision_tasks``) for a run of ``objective: akd``: SGD, learning rate 0.1,
momentum 0.9, weight decay 1e-4, batch 128, 300 epochs (phase 1 two thirds of them: their 200 and
100), each phase's rate times 0.1 at 50 % and 75 % of it (milestones 150 and 225 of the run, scaled
to each phase), random crop of the 4-pixel-padded image plus a flip; teachers for 200 epochs with the
rate times 0.1 at 100 and 150. Their script uses a constant rate of 0.01 for plain CNN students
(VGG, MobileNet); set ``student.optimizer`` for those. kdtemp's weight decay skips biases and
normalisation parameters here too.
"""

from __future__ import annotations

import copy
from typing import Any

from ..config import ConfigError

CIFAR100_MEAN = [0.5071, 0.4865, 0.4409]
CIFAR100_STD = [0.2673, 0.2564, 0.2762]

_CLASSIC_AUGMENT = {"random_resized_crop": False, "randaugment_ops": 0, "pad_crop": 4, "horizontal_flip": True,
                    "mix": False}
_CLASSIC_OPTIMIZER = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "step",
                      "milestones": [150, 180, 210], "gamma": 0.1, "clip_norm": None}
_CIFAR_NORMALIZATION = {"mean": CIFAR100_MEAN, "std": CIFAR100_STD}
_AKD_OPTIMIZER = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "schedule": "step",
                  "milestones": [150, 225], "gamma": 0.1, "clip_norm": None}

RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "classic_cifar": {
        # a distillation run (a study's base)
        "run": {"augment": _CLASSIC_AUGMENT, "batch_size": 64,
                "student": {"optimizer": _CLASSIC_OPTIMIZER, "epochs": 240, "model": _CIFAR_NORMALIZATION,
                            "loss_preset": "official"}},
        # a teacher or student preparation (a stage's base): cross-entropy, no label smoothing
        "preparation": {"augment": _CLASSIC_AUGMENT, "batch_size": 64, "optimizer": _CLASSIC_OPTIMIZER,
                        "epochs": 240, "label_smoothing": 0.0, "model": _CIFAR_NORMALIZATION},
    },
    "annealing_kd_cifar": {
        "run": {"augment": _CLASSIC_AUGMENT, "batch_size": 128,
                "student": {"optimizer": _AKD_OPTIMIZER, "epochs": 300, "model": _CIFAR_NORMALIZATION,
                            "loss_preset": "official"}},
        "preparation": {"augment": _CLASSIC_AUGMENT, "batch_size": 128,
                        "optimizer": {**_AKD_OPTIMIZER, "milestones": [100, 150]}, "epochs": 200,
                        "label_smoothing": 0.0, "model": _CIFAR_NORMALIZATION},
    },
}


def merged(recipe: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """``recipe`` overlaid with ``own`` (nested mappings merged; ``own`` wins)."""
    result = copy.deepcopy(recipe)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def recipe_of(base: dict[str, Any], kind: str, where: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(base without its recipe key, the recipe's fragment or None)``; ``kind`` is ``run`` or
    ``preparation``."""
    if not isinstance(base, dict) or "recipe" not in base:
        return base, None
    name = base["recipe"]
    if name not in RECIPES:
        raise ConfigError(f"{where}.recipe: unknown recipe {name!r}; allowed: {', '.join(RECIPES)}")
    return {k: v for k, v in base.items() if k != "recipe"}, RECIPES[name][kind]

"""Distillation objectives: pure functions on logits, plus a registry by name.

See ``docs/objectives.md`` for each formula, its conventions and its presets.
"""

from .dist import dist_loss
from .dkd import dkd_loss, dkd_parts
from .entropy_adaptive import entropy, entropy_weights
from .kd import kd_loss
from .mlkd import batch_level_loss, class_level_loss, mlkd_loss
from .registry import (
    OBJECTIVES,
    PROTOCOL,
    Objective,
    ObjectiveSpec,
    Preset,
    create_objective,
    get_spec,
    preset,
)
from .rld import rld_loss
from .standardize import standardize_logits

__all__ = [
    "OBJECTIVES",
    "PROTOCOL",
    "Objective",
    "ObjectiveSpec",
    "Preset",
    "batch_level_loss",
    "class_level_loss",
    "create_objective",
    "dist_loss",
    "dkd_loss",
    "dkd_parts",
    "entropy",
    "entropy_weights",
    "get_spec",
    "kd_loss",
    "mlkd_loss",
    "preset",
    "rld_loss",
    "standardize_logits",
]

"""Distillation objectives: pure functions on logits, plus a registry by name.

See ``docs/objectives.md`` for each formula, its conventions and its presets.
"""

from .ats import ats_loss, ats_teacher_log_probs
from .dist import dist_loss
from .dkd import dkd_loss, dkd_parts
from .dtkd import dtkd_loss, dtkd_parts, dtkd_temperatures
from .energy import ENERGY_TEMPERATURE, energy_kd_loss, energy_scores, energy_temperatures, energy_thresholds
from .entropy_adaptive import entropy, entropy_weights
from .kd import kd_loss
from .mlkd import batch_level_loss, class_level_loss, mlkd_loss
from .normkd import normkd_dkd_loss, normkd_loss, normkd_temperatures
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
from .ttm import ttm_loss, wttm_weights

__all__ = [
    "ENERGY_TEMPERATURE",
    "OBJECTIVES",
    "PROTOCOL",
    "Objective",
    "ObjectiveSpec",
    "Preset",
    "ats_loss",
    "ats_teacher_log_probs",
    "batch_level_loss",
    "class_level_loss",
    "create_objective",
    "dist_loss",
    "dkd_loss",
    "dkd_parts",
    "dtkd_loss",
    "dtkd_parts",
    "dtkd_temperatures",
    "energy_kd_loss",
    "energy_scores",
    "energy_temperatures",
    "energy_thresholds",
    "entropy",
    "entropy_weights",
    "get_spec",
    "kd_loss",
    "mlkd_loss",
    "normkd_dkd_loss",
    "normkd_loss",
    "normkd_temperatures",
    "preset",
    "rld_loss",
    "standardize_logits",
    "ttm_loss",
    "wttm_weights",
]

"""Distillation objectives: pure functions on logits, each registered by name where it is defined.

See ``docs/objectives.md`` for each formula, its conventions and its presets. Every module of this
package is imported here, so a new module that calls :func:`~kdtemp.objectives.registry.register`
is registered without being listed anywhere.
"""

import importlib as _importlib
import pkgutil as _pkgutil

BUILTIN_MODULES = ("kd", "dkd", "entropy_adaptive", "ctkd", "standardize", "mlkd", "rld", "dist", "ttm", "normkd",
                   "ats", "dtkd", "energy", "teacher_signals", "akd")
"""The built-in objective modules, imported first and in this order, which is the order of
``OBJECTIVES`` (kd, dkd, ea_kd, ea_dkd, ctkd, ls_kd, ...); every other module follows, by name."""

_NOT_OBJECTIVES = {"registry"}


def _import_all() -> None:
    found = sorted(m.name for m in _pkgutil.iter_modules(__path__)
                   if not m.name.startswith("_") and m.name not in _NOT_OBJECTIVES)
    for name in (*BUILTIN_MODULES, *(m for m in found if m not in BUILTIN_MODULES)):
        _importlib.import_module(f"{__name__}.{name}")


_import_all()

from .akd import akd_loss  # noqa: E402
from .ats import ats_loss, ats_teacher_log_probs  # noqa: E402
from .dist import dist_loss  # noqa: E402
from .dkd import dkd_loss, dkd_parts  # noqa: E402
from .dtkd import dtkd_loss, dtkd_parts, dtkd_temperatures  # noqa: E402
from .energy import (ENERGY_TEMPERATURE, energy_kd_loss, energy_scores, energy_temperatures,  # noqa: E402
                     energy_thresholds)
from .entropy_adaptive import entropy, entropy_weights  # noqa: E402
from ._common import upcast  # noqa: E402
from .kd import kd_loss  # noqa: E402
from .mlkd import batch_level_loss, class_level_loss, mlkd_loss  # noqa: E402
from .normkd import normkd_dkd_loss, normkd_loss, normkd_temperatures  # noqa: E402
from .registry import (  # noqa: E402
    OBJECTIVES,
    PROTOCOL,
    Objective,
    ObjectiveSpec,
    Preset,
    create_objective,
    get_spec,
    preset,
)
from .rld import rld_loss  # noqa: E402
from .standardize import standardize_logits  # noqa: E402
from .token import (DIVERGENCES, TokenObjective, chunked_rows, objective_rows, token_divergence,  # noqa: E402
                    token_kd_loss)
from .ttm import ttm_loss, wttm_weights  # noqa: E402

__all__ = [
    "TokenObjective",
    "upcast",
    "akd_loss",
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
    "DIVERGENCES",
    "chunked_rows",
    "objective_rows",
    "token_divergence",
    "token_kd_loss",
    "ttm_loss",
    "wttm_weights",
]

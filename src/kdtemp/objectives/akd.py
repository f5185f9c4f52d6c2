"""Annealing KD (Jafari et al., EACL 2021; the DTS paper's "AKD" baseline): phase 1's loss and the
two-phase study objective ``akd``.

From the authors' code (huawei-noah/Efficient-NLP, Annealing_KD): phase 1 has no label term, no
softmax and no ``T^2``; the student's logits regress the teacher's, scaled by ``level / max_level``,
where the integer level rises over phase 1 (:func:`kdtemp.temperature.akd_level`). Phase 2 trains on
the hard labels alone from the best phase-1 checkpoint, with a fresh optimizer and schedule.

As a study objective, ``akd`` is one run of ``epochs`` epochs: ``phase1_epochs`` of phase 1 (by
default two thirds of the run, ``floor(2 * epochs / 3)``: the authors' 200 of 300), then the rest
of phase 2, with one curve and one final accuracy. Its temperature policy
``akd`` gives each phase-1 epoch's level as the paper's annealing temperature
``tau = max_level + 1 - level`` (``max_level`` down to 1; the teacher is scaled by
``Phi(tau) = 1 - (tau - 1) / max_level``), which this objective turns back into the level.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from ._common import check_logits
from .registry import ParameterRule, Preset, register


def akd_loss(student: Tensor, teacher: Tensor, level: int, max_level: int = 10) -> Tensor:
    """``mean over all B*C elements of (s - (level / max_level) * t)^2`` (PyTorch's
    ``mse_loss(reduction="mean")``), in float32 (float64 inputs stay float64); only the teacher is scaled.

    Args:
        student: student logits ``[B, C]``.
        teacher: teacher logits ``[B, C]``, detached.
        level: the annealing level ``k`` in ``[1, max_level]``.
        max_level: ``tau_max`` (10 in the authors' CIFAR script).
    """
    check_logits(student, teacher)
    if not 1 <= level <= max_level:
        raise ValueError(f"level must be in [1, max_level = {max_level}]; got {level}")
    return _mse_to_scaled(student, teacher, level / max_level)


def _mse_to_scaled(student: Tensor, teacher: Tensor, scale: float) -> Tensor:
    dtype = torch.promote_types(student.dtype, torch.float32)
    return torch.nn.functional.mse_loss(student.to(dtype), scale * teacher.to(dtype), reduction="mean")


def _phase_one(params: Mapping[str, Any], epochs: int) -> int:
    """Phase 1's epochs: ``phase1_epochs``, or two thirds of the run's ``epochs`` when it is null."""
    given = params["phase1_epochs"]
    return int(given) if given is not None else 2 * epochs // 3


def _check_run(params: Mapping[str, Any], epochs: int) -> None:
    phase1, max_level = _phase_one(params, epochs), params["max_level"]
    if params["phase1_epochs"] is None and phase1 < max_level:
        raise ValueError(f"phase1_epochs: is null, so two thirds of the run's {epochs} epochs ({phase1}), which is "
                         f"less than max_level ({max_level}): each level would last no epoch; give a longer run or "
                         "set phase1_epochs and max_level")
    if phase1 < max_level:
        raise ValueError(f"phase1_epochs: must be >= max_level ({max_level}), or a level would last no epoch "
                         f"(each of the {max_level} levels lasts floor(phase1_epochs / max_level) epochs); got {phase1}")
    if phase1 >= epochs:
        raise ValueError(f"phase1_epochs: must be less than the run's epochs ({epochs}), which also hold phase 2 "
                         f"(hard labels from the best phase-1 epoch); got {phase1}")


@register("akd", summary="Annealing KD: logits regress the annealed teacher's (MSE), then hard labels",
          official=Preset(0.0, 1.0, 0, None), display_name="AKD", uses_label=False, temperature_policy="akd",
          parameters={"phase1_epochs": ParameterRule("integer", low=1, optional=True),
                      "max_level": ParameterRule("integer", low=1)},
          phase_one=_phase_one, check_run=_check_run,
          notes="two phases in one run: phase1_epochs of MSE to the teacher scaled by level / max_level, then "
                "cross-entropy from the best phase-1 epoch with a fresh optimizer and schedule")
def akd_objective(student: Tensor, teacher: Tensor, target: Tensor, temperature: float,
                  phase1_epochs: int | None = None, max_level: int = 10) -> Tensor:
    """Phase 1 of ``akd`` at the ``akd`` policy's annealing temperature ``tau``: the MSE of
    :func:`akd_loss` with the teacher scaled by the paper's ``Phi(tau) = 1 - (tau - 1) / max_level``,
    which is ``level / max_level`` for the policy's integer ``tau = max_level + 1 - level`` (the
    same value as ``akd_loss(student, teacher, level, max_level)``; other ``tau`` extend ``Phi``
    linearly). ``phase1_epochs`` is read by the engine, not here. Defaults from the authors' CIFAR
    script (``tau_max = 10``; phase 1 two thirds of the run, their 200 of 300 epochs). A teacher logit of ``-inf`` (a masked class)
    makes this regression infinite, as in the authors' code."""
    check_logits(student, teacher)
    return _mse_to_scaled(student, teacher, (max_level + 1 - temperature) / max_level)  # = level / max_level

"""Annealing KD (Jafari et al., EACL 2021; the DTS paper's "AKD" baseline), phase 1's loss.

From the authors' code (huawei-noah/Efficient-NLP, Annealing_KD): no label term, no softmax and
no ``T^2``; the student's logits regress the teacher's, scaled by ``level / max_level``, where the
integer level rises over phase 1 (:func:`kdtemp.temperature.akd_level`). Phase 2 trains on the hard
labels alone from the best phase-1 checkpoint. The two-phase run is not yet a study objective:
this module gives the loss, and the staircase lives with the temperature policies.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import check_logits


def akd_loss(student: Tensor, teacher: Tensor, level: int, max_level: int = 10) -> Tensor:
    """``mean over all B*C elements of (s - (level / max_level) * t)^2`` (PyTorch's
    ``mse_loss(reduction="mean")``), in float32; only the teacher is scaled.

    Args:
        student: student logits ``[B, C]``.
        teacher: teacher logits ``[B, C]``, detached.
        level: the annealing level ``k`` in ``[1, max_level]``.
        max_level: ``tau_max`` (10 in the authors' CIFAR script).
    """
    check_logits(student, teacher)
    if not 1 <= level <= max_level:
        raise ValueError(f"level must be in [1, max_level = {max_level}]; got {level}")
    scale = level / max_level
    return torch.nn.functional.mse_loss(student.float(), scale * teacher.float(), reduction="mean")

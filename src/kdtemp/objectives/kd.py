"""Shared fixed-temperature KD (Hinton et al., 2015): the study's recommended objective."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ._common import Temperature, check_logits, check_temperature, kl_from_log_probs, reduce, scaled_log_softmax
from .registry import Preset, register


def kd_loss(
    student: Tensor,
    teacher: Tensor,
    temperature: Temperature,
    reduction: str = "batchmean",
    student_temperature: Temperature | None = None,
) -> Tensor:
    """``T^2 * KL(p(t, T) || p(s, T))`` with the batchmean reduction.

    Args:
        student: student logits ``[B, C]`` (any float dtype; upcast to float32).
        teacher: teacher logits ``[B, C]``; pass them detached (no gradient is wanted).
        temperature: ``T`` (float or tensor; a tensor lets a learnable T receive gradient,
            through both softmaxes and the ``T^2`` factor; a ``[B, 1]`` tensor gives each sample
            its own temperature, ``mean_i T_i^2 KL_i``, as instance-wise DTS does).
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"`` (per-sample ``[B]``).
        student_temperature: if given, the student's softmax uses this temperature while the
            teacher's uses ``temperature``; the factor is then ``T_teacher * T_student``
            (it reduces to ``T^2`` when both are equal).

    Uses no label: the mixed (MixUp/CutMix) label does not enter.
    """
    check_logits(student, teacher)
    check_temperature(temperature)
    t_student = temperature if student_temperature is None else student_temperature
    check_temperature(t_student, "student_temperature")
    per_sample = kl_from_log_probs(scaled_log_softmax(teacher, temperature), scaled_log_softmax(student, t_student))
    factor = temperature * t_student
    if isinstance(factor, Tensor) and factor.dim() > 0:  # per-sample temperatures [B, 1]: T_i^2 per row
        factor = factor.reshape(-1)
    return reduce(per_sample * factor, reduction)


@register("kd", summary="shared fixed-temperature KD, T^2 KL(p_t || p_s)", official=Preset(0.1, 0.9, 0, 4.0),
          display_name="KD", uses_label=False,
          notes="Official preset is the common CIFAR recipe (CE 0.1, KD 0.9, T 4).")
def kd_objective(s: Tensor, t: Tensor, y: Tensor, T: Any) -> Tensor:
    """The registered ``kd``: :func:`kd_loss` at the run's temperature (also CTKD's loss)."""
    return kd_loss(s, t, T)

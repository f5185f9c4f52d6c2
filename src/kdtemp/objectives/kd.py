"""Shared fixed-temperature KD (Hinton et al., 2015): the study's recommended objective."""

from __future__ import annotations

from torch import Tensor

from ._common import Temperature, check_logits, check_temperature, kl_from_log_probs, reduce, scaled_log_softmax


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
            through both softmaxes and the ``T^2`` factor).
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
    return reduce(per_sample * (temperature * t_student), reduction)

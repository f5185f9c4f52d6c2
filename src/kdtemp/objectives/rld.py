"""Refined Logit Distillation (Sun et al., 2025)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ._common import (
    Temperature,
    binary_log_probs,
    check_logits,
    check_target,
    check_temperature,
    kl_from_log_probs,
    masked_log_softmax,
    upcast,
)
from .registry import TEMPERATURE_RANGE, ParameterRule, Preset, register


def rld_loss(
    student: Tensor,
    teacher: Tensor,
    target: Tensor,
    temperature: Temperature = 4.0,
    alpha: float = 1.0,
    beta: float = 8.0,
    alpha_temperature: Temperature | None = None,
) -> Tensor:
    """``alpha * SCD + beta * MCD``, batchmean.

    SCD (sample confidence): ``Ta^2 * KL([p_m(t), 1 - p_m(t)] || [p_y(s), 1 - p_y(s)])`` at
    ``Ta = alpha_temperature or temperature``, where ``m = argmax t`` (the teacher's own top
    class, not the label ``y``).
    MCD (masked correlation): every class ``c`` with ``t_c >= t_y`` is masked (``y`` included);
    ``T^2 * KL`` between the softmaxes over the remaining classes. A row whose every class is
    masked contributes 0. ``target`` is a class index per sample; with MixUp/CutMix pass the
    **dominant** label. Official preset (authors): CE weight 1.0, warm-up 20 epochs.
    """
    check_logits(student, teacher)
    check_target(target, student)
    check_temperature(temperature)
    t_alpha = temperature if alpha_temperature is None else alpha_temperature
    check_temperature(t_alpha, "alpha_temperature")

    teacher32 = upcast(teacher)
    top = teacher32.argmax(dim=1)
    scd = kl_from_log_probs(
        binary_log_probs(teacher32 / t_alpha, top), binary_log_probs(upcast(student) / t_alpha, target)
    )

    teacher_at_label = teacher32.gather(1, target.view(-1, 1).long())
    keep = teacher32 < teacher_at_label
    weight = keep.to(teacher32.dtype)
    mcd = kl_from_log_probs(
        masked_log_softmax(teacher32 / temperature, keep),
        masked_log_softmax(upcast(student) / temperature, keep),
        weight,
    )
    return (alpha * t_alpha * t_alpha * scd + beta * temperature * temperature * mcd).mean()


@register("rld", summary="refined logit distillation: sample confidence + masked correlation",
          official=Preset(1.0, 1.0, 20, 4.0), display_name="RLD",
          uses_label=True,
          parameters={"alpha": ParameterRule("number", 0.0), "beta": ParameterRule("number", 0.0),
                      "alpha_temperature": ParameterRule("number", *TEMPERATURE_RANGE, optional=True)})
def rld_objective(
    s: Tensor,
    t: Tensor,
    y: Tensor,
    T: Any,
    alpha: float = 1.0,
    beta: float = 8.0,
    alpha_temperature: float | None = None,
) -> Tensor:
    return rld_loss(s, t, y, T, alpha=alpha, beta=beta, alpha_temperature=alpha_temperature)

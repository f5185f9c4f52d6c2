"""Decoupled Knowledge Distillation (Zhao et al., 2022)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._common import (
    Temperature,
    binary_log_probs,
    check_logits,
    check_target,
    check_temperature,
    kl_from_log_probs,
    masked_log_softmax,
    reduce,
    upcast,
)
from .registry import ParameterRule, Preset, register


def dkd_parts(student: Tensor, teacher: Tensor, target: Tensor, temperature: Temperature) -> tuple[Tensor, Tensor]:
    """Per-sample ``(TCKD, NCKD)``, each ``[B]`` and each already multiplied by ``T^2``.

    TCKD is the KL between the binary distributions ``[p_y, 1 - p_y]``; NCKD the KL between
    the distributions over the non-target classes (softmax of ``z_c / T`` for ``c != y``).
    """
    check_logits(student, teacher)
    check_target(target, student)
    check_temperature(temperature)
    s = upcast(student) / temperature
    t = upcast(teacher) / temperature
    tckd = kl_from_log_probs(binary_log_probs(t, target), binary_log_probs(s, target))
    keep = ~torch.nn.functional.one_hot(target.long(), s.shape[1]).bool()
    weight = keep.to(s.dtype)
    nckd = kl_from_log_probs(masked_log_softmax(t, keep), masked_log_softmax(s, keep), weight)
    factor = temperature * temperature
    return tckd * factor, nckd * factor


def dkd_loss(
    student: Tensor,
    teacher: Tensor,
    target: Tensor,
    temperature: Temperature = 4.0,
    alpha: float = 1.0,
    beta: float = 8.0,
    reduction: str = "batchmean",
) -> Tensor:
    """``alpha * T^2 * KL(b(t) || b(s)) + beta * T^2 * KL(q(t) || q(s))``, batchmean.

    ``b(z) = [p_y, 1 - p_y]`` and ``q(z)`` is the softmax over the non-target classes, both at
    temperature ``T``, computed in log space. ``target`` is a class index per sample; with
    MixUp/CutMix pass the **dominant** label (the one with the larger mixing weight).
    Official preset (authors): CE weight 1.0, warm-up 20 epochs, T = 4, alpha = 1, beta = 8.
    """
    tckd, nckd = dkd_parts(student, teacher, target, temperature)
    return reduce(alpha * tckd + beta * nckd, reduction)


@register("dkd", summary="Decoupled KD: alpha TCKD + beta NCKD", official=Preset(1.0, 1.0, 20, 4.0), display_name="DKD",
          uses_label=True, parameters={"alpha": ParameterRule("number", 0.0), "beta": ParameterRule("number", 0.0)})
def dkd_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, alpha: float = 1.0, beta: float = 8.0) -> Tensor:
    return dkd_loss(s, t, y, T, alpha=alpha, beta=beta)

"""Entropy-based Adaptive KD, EA-KD (Su et al., 2025): per-sample weights."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ._common import Temperature, check_logits, check_temperature, scaled_log_softmax, shannon_entropy
from .dkd import dkd_parts
from .kd import kd_loss
from .registry import TEMPERATURE_RANGE, ParameterRule, Preset, register


def entropy(logits: Tensor, temperature: Temperature = 1.0) -> Tensor:
    """Per-sample entropy (nats) of ``softmax(z / T)``, shape ``[B]`` (masked classes count 0)."""
    return shannon_entropy(log_probs=scaled_log_softmax(logits, temperature))


def entropy_weights(
    student: Tensor,
    teacher: Tensor,
    temperature: Temperature = 3.0,
    entropy_bound: float | None = None,
) -> Tensor:
    """EA-KD per-sample weights ``w_i = (H_t,i + H_t,i * H_s,i / H_ub) / 2``, detached, ``[B]``.

    ``H`` is the entropy of ``softmax(z / temperature)``: EA-KD's own temperature, separate
    from the KD temperature. ``H_ub = entropy_bound or log(C)``. The authors' CIFAR code passes
    ``entropy_bound=100.0``; the default here is the paper's ``log(C)``.

    EA-KD is ``mean_i(w_i * kd_loss(s, t, T, reduction="none")_i)``; EA-DKD reweights
    ``alpha * TCKD_i + beta * NCKD_i`` (see ``kdtemp.objectives.dkd_parts``) the same way.
    """
    check_logits(student, teacher)
    check_temperature(temperature)
    bound = math.log(student.shape[1]) if entropy_bound is None else float(entropy_bound)
    if not bound > 0:
        raise ValueError(f"entropy_bound must be > 0; got {entropy_bound}")
    with torch.no_grad():
        h_teacher = entropy(teacher, temperature)
        h_student = entropy(student, temperature)
        return (h_teacher + h_teacher * h_student / bound) / 2


def _ea_temperature_rule() -> ParameterRule:
    return ParameterRule("number", *TEMPERATURE_RANGE)


def _entropy_bound_rule() -> ParameterRule:
    return ParameterRule("number", 0.0, low_open=True, optional=True)


@register("ea_kd", summary="entropy-adaptive KD: per-sample entropy weights on KD", official=Preset(0.1, 0.9, 0, 4.0),
          display_name="EA-KD", uses_label=False,
          parameters={"ea_temperature": _ea_temperature_rule(), "entropy_bound": _entropy_bound_rule()},
          notes="Weights computed at ea_temperature; host preset is KD's.")
def ea_kd_objective(
    s: Tensor, t: Tensor, y: Tensor, T: Any, ea_temperature: float = 3.0, entropy_bound: float | None = None
) -> Tensor:
    weights = entropy_weights(s, t, ea_temperature, entropy_bound)
    return (weights * kd_loss(s, t, T, reduction="none")).mean()


@register("ea_dkd", summary="entropy-adaptive DKD: per-sample entropy weights on DKD",
          official=Preset(1.0, 1.0, 20, 4.0), display_name="EA-DKD",
          uses_label=True,
          parameters={"alpha": ParameterRule("number", 0.0), "beta": ParameterRule("number", 0.0),
                      "ea_temperature": _ea_temperature_rule(), "entropy_bound": _entropy_bound_rule()},
          notes="Host preset is DKD's.")
def ea_dkd_objective(
    s: Tensor,
    t: Tensor,
    y: Tensor,
    T: Any,
    alpha: float = 1.0,
    beta: float = 8.0,
    ea_temperature: float = 3.0,
    entropy_bound: float | None = None,
) -> Tensor:
    weights = entropy_weights(s, t, ea_temperature, entropy_bound)
    tckd, nckd = dkd_parts(s, t, y, T)
    return (weights * (alpha * tckd + beta * nckd)).mean()

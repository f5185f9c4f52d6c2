"""NormKD: per-sample temperatures from each model's logit spread (Chi et al., 2023)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._common import Temperature, centred_rows, check_logits, check_target, check_temperature, kl_from_log_probs, upcast
from .dkd import dkd_parts
from .registry import ParameterRule, Preset, register

STD_FLOOR = 1e-7
"""Smallest logit std NormKD divides by: a row whose std is below it (a constant row, e.g. a
zero-initialised head) uses ``temperature * STD_FLOOR`` instead of a zero temperature."""


def normkd_temperatures(logits: Tensor, temperature: Temperature) -> Tensor:
    """``temperature * std(z_i)`` per row, shape ``[B]``, with the **unbiased** (N-1) std.

    Not detached: called on student logits, gradient flows through the student's std.
    Masked (``-inf``) classes are left out of the std; the std is floored at
    :data:`STD_FLOOR` (exact for every row whose std is at least ``1e-7``).
    """
    return _normalised(logits, temperature)[1]


def _normalised(logits: Tensor, temperature: Temperature) -> tuple[Tensor, Tensor]:
    """``(z_i - mean z_i) / T_i`` (masked classes stay ``-inf``) and ``T_i = temperature * std(z_i)``.

    Centring does not change the softmax (it is shift invariant); it keeps a large constant
    row exactly at 0 instead of dividing a large value by a small std.
    """
    z = upcast(logits)
    centred, std, finite = centred_rows(z)
    per_row = temperature * std.clamp_min(STD_FLOOR)
    return torch.where(finite, centred / per_row, z), per_row.squeeze(-1)


def normkd_loss(student: Tensor, teacher: Tensor, temperature: Temperature = 2.0) -> Tensor:
    """``mean_i T_t,i^2 * KL(softmax(t_i / T_t,i) || softmax(s_i / T_s,i))``.

    ``T_t,i = temperature * std(t_i)`` and ``T_s,i = temperature * std(s_i)`` with the
    unbiased std over classes (:func:`normkd_temperatures`); the student's std is **not**
    detached. Only the teacher's ``T_t,i^2`` multiplies the KL (the authors' code). Per sample
    this is logit standardization's KL at base temperature ``temperature`` times
    ``std(t_i)^2 * temperature^2``. Uses no label.
    Official preset (authors' CIFAR default): CE 0.1, KD 0.9, ``temperature`` 2
    (their ImageNet configs: ``temperature`` 1, CE 0.5, KD 0.5).
    """
    check_logits(student, teacher)
    check_temperature(temperature)
    t_scaled, t_temperature = _normalised(teacher, temperature)
    s_scaled, _ = _normalised(student, temperature)
    per_sample = kl_from_log_probs(torch.log_softmax(t_scaled, dim=-1), torch.log_softmax(s_scaled, dim=-1))
    return (per_sample * t_temperature.square()).mean()


def normkd_dkd_loss(
    student: Tensor,
    teacher: Tensor,
    target: Tensor,
    temperature: Temperature = 2.0,
    alpha: float = 1.0,
    beta: float = 8.0,
) -> Tensor:
    """NormKD + DKD: ``mean_i T_t,i^2 * (alpha * TCKD_i + beta * NCKD_i)``.

    DKD's binary (TCKD) and non-target (NCKD) KLs at temperature 1 on the normalised logits
    ``t_i / T_t,i`` and ``s_i / T_s,i`` (see :func:`normkd_loss`), each weighted per sample by
    the teacher's ``T_t,i^2``; computed in log space (the authors' code takes ``log`` of
    summed probabilities and masks the target class with ``-1000``; kdtemp masks exactly).
    ``target``: class index per sample, the **dominant** label under MixUp/CutMix.
    Official preset: CE 1, warm-up 20, ``temperature`` 2, ``alpha + beta = 9`` (defaults
    1 and 8; the authors' per-pair configs choose the split).
    """
    check_logits(student, teacher)
    check_target(target, student)
    check_temperature(temperature)
    t_scaled, t_temperature = _normalised(teacher, temperature)
    s_scaled, _ = _normalised(student, temperature)
    tckd, nckd = dkd_parts(s_scaled, t_scaled, target, 1.0)
    return (t_temperature.square() * (alpha * tckd + beta * nckd)).mean()


@register("normkd", summary="NormKD: per-sample temperatures T * std(logits), T_t^2 KL",
          official=Preset(0.1, 0.9, 0, 2.0), display_name="NormKD",
          uses_label=False,
          notes="T multiplies each model's unbiased logit std; the student's std is not detached.")
def normkd_objective(s: Tensor, t: Tensor, y: Tensor, T: Any) -> Tensor:
    return normkd_loss(s, t, T)


@register("normkd_dkd", summary="NormKD + DKD: T_t^2 (alpha TCKD + beta NCKD) on normalised logits",
          official=Preset(1.0, 1.0, 20, 2.0), display_name="NormKD+DKD", uses_label=True,
          parameters={"alpha": ParameterRule("number", 0.0), "beta": ParameterRule("number", 0.0)},
          notes="alpha + beta = 9 in the authors' configs (1, 8 by default; per pair otherwise).")
def normkd_dkd_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, alpha: float = 1.0, beta: float = 8.0) -> Tensor:
    return normkd_dkd_loss(s, t, y, T, alpha=alpha, beta=beta)

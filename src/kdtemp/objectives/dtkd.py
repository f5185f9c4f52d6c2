"""Dynamic Temperature Knowledge Distillation (Wei & Bai, 2024)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._common import Temperature, check_logits, check_temperature, kl_from_log_probs, upcast
from .kd import kd_loss
from .registry import ParameterRule, Preset, register


def dtkd_temperatures(
    student: Tensor, teacher: Tensor, temperature: Temperature = 4.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample ``(T_t, T_s, guarded)``, each ``[B]``.

    With ``x_i = max_c t_ic`` and ``y_i = max_c s_ic`` (**not** detached: gradient flows into
    the student's top logit through ``T_s`` and ``T_t``):
    ``T_t,i = 2 x_i / (x_i + y_i) * temperature`` and ``T_s,i = 2 y_i / (x_i + y_i) * temperature``
    (they sum to ``2 * temperature``).

    ``guarded`` marks the samples with ``x_i <= 0`` or ``y_i <= 0``, where the formula gives a
    negative or unbounded temperature (the authors' code has no guard): such a sample uses
    ``T_t,i = T_s,i = temperature``, i.e. plain KD, and carries no gradient through ``y_i``.
    Near the guard (a maximum just above 0) the temperatures are legitimately extreme.
    """
    s = upcast(student)
    t = upcast(teacher)
    x = t.max(dim=-1).values
    y = s.max(dim=-1).values
    guarded = (x <= 0) | (y <= 0)
    safe_x = torch.where(guarded, torch.ones_like(x), x)
    safe_y = torch.where(guarded, torch.ones_like(y), y)
    total = safe_x + safe_y
    teacher_share = torch.where(guarded, torch.ones_like(x), 2 * safe_x / total)
    student_share = torch.where(guarded, torch.ones_like(y), 2 * safe_y / total)
    return teacher_share * temperature, student_share * temperature, guarded


def dtkd_parts(student: Tensor, teacher: Tensor, temperature: Temperature = 4.0) -> tuple[Tensor, Tensor]:
    """Per-sample ``(L_i, guarded)``: the DTKD loss ``[B]`` and the guard mask ``[B]`` (bool).

    ``L_i = T_t,i * T_s,i * KL(softmax(t_i / T_t,i) || softmax(s_i / T_s,i))`` with the
    temperatures of :func:`dtkd_temperatures`. ``guarded.sum()`` is the number of samples
    whose non-positive maximum made them fall back to ``temperature`` for both models: this
    is the function to call when that count is to be logged.
    """
    check_logits(student, teacher)
    check_temperature(temperature)
    t_temperature, s_temperature, guarded = dtkd_temperatures(student, teacher, temperature)
    log_p = torch.log_softmax(_divide(upcast(teacher), t_temperature), dim=-1)
    log_q = torch.log_softmax(_divide(upcast(student), s_temperature), dim=-1)
    return kl_from_log_probs(log_p, log_q) * t_temperature * s_temperature, guarded


def _divide(z: Tensor, per_row: Tensor) -> Tensor:
    """``z / T_i`` row by row, a masked (``-inf``) logit staying ``-inf``.

    ``T_i`` carries the student's gradient, so ``-inf / T_i`` would send ``0 * inf = NaN``
    back to it; the masked entries are divided as zeros and put back afterwards.
    """
    finite = torch.isfinite(z)
    scaled = torch.where(finite, z, torch.zeros_like(z)) / per_row.unsqueeze(-1)
    return torch.where(finite, scaled, z)


def dtkd_loss(student: Tensor, teacher: Tensor, temperature: Temperature = 4.0) -> Tensor:
    """``mean_i T_t,i * T_s,i * KL(softmax(t_i / T_t,i) || softmax(s_i / T_s,i))``, batchmean.

    ``temperature`` is the reference temperature; the per-sample temperatures and the guard
    for non-positive maxima are :func:`dtkd_temperatures`'s (:func:`dtkd_parts` also returns
    which samples were guarded). Uses no label.

    The authors' total (official preset) is
    ``warmup(epoch, 20) * (3 * L + 1 * kd_loss(T)) + 1 * CE`` at ``T = 4``; the registered
    ``dtkd`` objective is ``3 * L + kd_loss(T)`` (``alpha``, ``beta``) with preset CE 1, KD 1,
    warm-up 20. The authors' README carries an erratum on the paper's derivation (its
    formulas 4 and 5); this is the code that produced their results.
    """
    return dtkd_parts(student, teacher, temperature)[0].mean()


def _dtkd_monitor(s: Tensor, t: Tensor, y: Tensor, T: Any, **params: Any) -> dict[str, Tensor]:
    with torch.no_grad():
        return {"dtkd_guarded_samples": dtkd_temperatures(s, t, T)[2].sum()}


@register("dtkd", summary="dynamic temperature KD: alpha DTKD(T) + beta KD(T)", official=Preset(1.0, 1.0, 20, 4.0),
          display_name="DTKD", uses_label=False, monitor=_dtkd_monitor,
          parameters={"alpha": ParameterRule("number", 0.0), "beta": ParameterRule("number", 0.0)},
          notes="T is the reference temperature; the authors' total is "
                "warmup(e, 20) (3 DTKD + 1 KD) + 1 CE. Samples with a non-positive maximum logit "
                "use T for both models (dtkd_parts counts them).")
def dtkd_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, alpha: float = 3.0, beta: float = 1.0) -> Tensor:
    # The authors' KD term: warmup * (alpha * DTKD + beta * KD(T)) + CE, with alpha 3 and beta 1.
    return alpha * dtkd_loss(s, t, T) + beta * kd_loss(s, t, T)

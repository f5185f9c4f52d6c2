"""Asymmetric Temperature Scaling (Li et al., NeurIPS 2022)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._common import Temperature, check_logits, check_target, check_temperature, kl_from_log_probs, upcast
from .registry import ParameterRule, Preset, register


def ats_teacher_log_probs(teacher: Tensor, target: Tensor, temperature: Temperature, target_ratio: float) -> Tensor:
    """``log q_i`` with ``q_ic = softmax_c(t_ic / tau_ic)``, ``[B, C]``.

    ``tau_ic = target_ratio * temperature`` on the ground-truth class ``c = y_i`` and
    ``temperature`` on every other class.
    """
    t = upcast(teacher)
    on_target = torch.nn.functional.one_hot(target.long(), t.shape[1]).bool()
    ratio = torch.where(on_target, torch.full_like(t, 1.0 / target_ratio), torch.ones_like(t))
    return torch.log_softmax(t / temperature * ratio, dim=-1)


def ats_loss(
    student: Tensor,
    teacher: Tensor,
    target: Tensor,
    temperature: Temperature = 2.0,
    target_ratio: float = 2.0,
) -> Tensor:
    """``mean_i KL(q_i || p(s_i, 1))``: the teacher's temperature is per class.

    ``q_i`` is the teacher softened at ``target_ratio * temperature`` on the ground-truth
    class ``y_i`` and at ``temperature`` on every other class (:func:`ats_teacher_log_probs`);
    the student stays at ``T = 1``; there is **no** ``T^2`` factor. ``target`` is a class index
    per sample: with MixUp/CutMix pass the **dominant** label.

    kdtemp returns the KL form. The authors' code returns the soft cross-entropy
    ``-sum_c q_ic log p(s_i, 1)_c``, which is larger by the teacher's entropy ``H(q_i)`` (a
    constant for the student) and has the same gradient. With ``target_ratio = 1`` ATS is TTM
    (:func:`~kdtemp.objectives.ttm_loss`). Official preset: ``temperature`` 2, ratio 2 (so 4 on
    the target class), CE 0.5, KD 0.5.
    """
    check_logits(student, teacher)
    check_target(target, student)
    check_temperature(temperature)
    check_temperature(target_ratio, "target_ratio")
    log_q = ats_teacher_log_probs(teacher, target, temperature, target_ratio)
    return kl_from_log_probs(log_q, torch.log_softmax(upcast(student), dim=-1)).mean()


@register("ats", summary="asymmetric temperature scaling: teacher at target_ratio * T on y, T elsewhere",
          official=Preset(0.5, 0.5, 0, 2.0), display_name="ATS", uses_label=True,
          parameters={"target_ratio": ParameterRule("number", 0.0, low_open=True)},
          notes="Student at T = 1, no T^2; KL form (the authors' code returns soft CE: same gradient).")
def ats_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, target_ratio: float = 2.0) -> Tensor:
    return ats_loss(s, t, y, T, target_ratio=target_ratio)

"""Transformed Teacher Matching and its weighted form (Zheng & Yang, ICLR 2024)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._common import Temperature, check_logits, check_temperature, kl_from_log_probs, reduce, scaled_log_softmax, upcast
from .registry import Preset, register


def wttm_weights(teacher: Tensor, temperature: Temperature) -> Tensor:
    """WTTM's per-sample weights ``U_i = sum_c p(t_i, 1)_c^(1/T)``, shape ``[B]``, detached.

    Computed in log space as ``exp(logsumexp(log_softmax(t_i) / T))``: no probability is
    rounded to 0 before the power. For ``T >= 1``, ``U_i`` lies in ``[1, C^(1 - 1/T)]`` (1 for a
    one-hot teacher, ``C^(1 - 1/T)`` for a uniform one), so its scale grows with the class
    count; for ``T < 1`` the bounds swap. A masked (``-inf``) teacher class adds nothing.
    """
    log_p = torch.log_softmax(upcast(teacher.detach()), dim=-1)
    scale = temperature.detach() if isinstance(temperature, Tensor) else temperature
    return torch.logsumexp(log_p / scale, dim=-1).exp()


def ttm_loss(
    student: Tensor,
    teacher: Tensor,
    temperature: Temperature,
    weighted: bool = False,
    reduction: str = "batchmean",
) -> Tensor:
    """``KL(p(t, T) || p(s, 1))``: the temperature softens the **teacher only**, batchmean.

    The paper writes the teacher's power transform ``p_t^gamma / sum_c p_t,c^gamma`` with
    ``gamma = 1/T``; it is the same distribution as ``softmax(t / T)``. The student stays at
    ``T = 1`` and there is **no** ``T^2`` factor (the authors scale the loss with a large KD
    weight instead: their CIFAR example uses ``gamma = 0.1``, i.e. ``T = 10``, CE 1, KD 45).

    Args:
        student: student logits ``[B, C]`` (any float dtype; upcast to float32).
        teacher: teacher logits ``[B, C]``; pass them detached.
        temperature: the teacher's temperature ``T`` (``1 / gamma``).
        weighted: WTTM: multiply each sample's KL by :func:`wttm_weights` ``U_i``
            (teacher only, no gradient).
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"`` (per-sample ``[B]``).

    Uses no label. With ``T = 1`` TTM is KD at ``T = 1``.
    """
    check_logits(student, teacher)
    check_temperature(temperature)
    per_sample = kl_from_log_probs(scaled_log_softmax(teacher, temperature), scaled_log_softmax(student, 1.0))
    if weighted:
        per_sample = per_sample * wttm_weights(teacher, temperature)
    return reduce(per_sample, reduction)


@register("ttm", summary="transformed teacher matching: KL(p(t,T) || p(s,1)), no T^2",
          official=Preset(1.0, 45.0, 0, 10.0), display_name="TTM",
          uses_label=False,
          notes="T softens the teacher only (gamma = 1/T). Preset: the authors' CIFAR example "
                "(gamma 0.1, CE 1, KD 45).")
def ttm_objective(s: Tensor, t: Tensor, y: Tensor, T: Any) -> Tensor:
    return ttm_loss(s, t, T)


@register("wttm", summary="weighted TTM: TTM times U_i = sum_c p(t_i,1)_c^(1/T)", official=Preset(1.0, 45.0, 0, 10.0),
          display_name="WTTM", uses_label=False,
          notes="U_i lies in [1, C^(1-1/T)], so the loss scale grows with C. Preset: TTM's.")
def wttm_objective(s: Tensor, t: Tensor, y: Tensor, T: Any) -> Tensor:
    return ttm_loss(s, t, T, weighted=True)

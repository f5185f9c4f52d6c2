"""Entropy-based Adaptive KD, EA-KD (Su et al., 2025): per-sample weights."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._common import Temperature, check_logits, check_temperature, entropy_from_log_probs, scaled_log_softmax


def entropy(logits: Tensor, temperature: Temperature = 1.0) -> Tensor:
    """Per-sample entropy (nats) of ``softmax(z / T)``, shape ``[B]`` (masked classes count 0)."""
    return entropy_from_log_probs(scaled_log_softmax(logits, temperature))


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

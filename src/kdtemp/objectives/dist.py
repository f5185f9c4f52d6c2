"""DIST: knowledge distillation from a stronger teacher (Huang et al., 2022)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ._common import Temperature, check_logits, check_temperature, safe_sqrt, scaled_log_softmax
from .registry import ParameterRule, Preset, register


def pearson_correlation(a: Tensor, b: Tensor, dim: int, eps: float = 1e-8) -> Tensor:
    """``<a - mean a, b - mean b> / (||a - mean a|| * ||b - mean b|| + eps)`` along ``dim``."""
    a = a - a.mean(dim=dim, keepdim=True)
    b = b - b.mean(dim=dim, keepdim=True)
    return (a * b).sum(dim=dim) / (safe_sqrt(a.square().sum(dim=dim)) * safe_sqrt(b.square().sum(dim=dim)) + eps)


def dist_loss(
    student: Tensor,
    teacher: Tensor,
    temperature: Temperature = 1.0,
    beta: float = 1.0,
    gamma: float = 1.0,
) -> Tensor:
    """``T^2 * (beta * inter + gamma * intra)`` on ``P = softmax(z / T)``.

    inter ``= 1 - mean_i rho(P_s[i, :], P_t[i, :])`` (per sample, across classes);
    intra ``= 1 - mean_c rho(P_s[:, c], P_t[:, c])`` (per class, across the batch);
    ``rho`` is the Pearson correlation with ``1e-8`` added to its denominator.
    Uses no label. Official CIFAR preset (authors): T = 4, KD weight 2, CE weight 1.
    """
    check_logits(student, teacher)
    check_temperature(temperature)
    p_s = scaled_log_softmax(student, temperature).exp()
    p_t = scaled_log_softmax(teacher, temperature).exp()
    inter = 1.0 - pearson_correlation(p_s, p_t, dim=1).mean()
    intra = 1.0 - pearson_correlation(p_s, p_t, dim=0).mean()
    return temperature * temperature * (beta * inter + gamma * intra)


@register("dist", summary="DIST: inter- and intra-class Pearson correlation", official=Preset(1.0, 2.0, 0, 4.0),
          display_name="DIST", uses_label=False,
          parameters={"beta": ParameterRule("number", 0.0), "gamma": ParameterRule("number", 0.0)},
          no_token_form="its inter-class term correlates each class over the rows of a batch")
def dist_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, beta: float = 1.0, gamma: float = 1.0) -> Tensor:
    return dist_loss(s, t, T, beta=beta, gamma=gamma)

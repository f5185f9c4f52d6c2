"""DIST: knowledge distillation from a stronger teacher (Huang et al., 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import Temperature, check_logits, check_temperature, scaled_log_softmax


def _safe_norm(x: Tensor, dim: int) -> Tensor:
    """L2 norm along ``dim`` whose gradient at the zero vector is zero rather than NaN."""
    squared = x.square().sum(dim=dim)
    positive = squared > 0
    return torch.where(positive, torch.where(positive, squared, torch.ones_like(squared)).sqrt(), 0.0)


def pearson_correlation(a: Tensor, b: Tensor, dim: int, eps: float = 1e-8) -> Tensor:
    """``<a - mean a, b - mean b> / (||a - mean a|| * ||b - mean b|| + eps)`` along ``dim``."""
    a = a - a.mean(dim=dim, keepdim=True)
    b = b - b.mean(dim=dim, keepdim=True)
    return (a * b).sum(dim=dim) / (_safe_norm(a, dim) * _safe_norm(b, dim) + eps)


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

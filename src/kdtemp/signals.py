"""Teacher-signal ablations (the study's Fig. 5): targets that keep or remove class relations.

Each function returns a target distribution ``q`` ``[B, C]``; the student matches it with
``T^2 * KL(q || p(s, T))`` (see :func:`distill_to_targets`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .objectives._common import scaled_log_softmax, shannon_entropy, upcast


def smoothing_entropy(alpha: Tensor, num_classes: int) -> Tensor:
    """Entropy of ``(1 - a) * onehot + a / C`` (nats), elementwise in ``alpha``; increasing on [0, 1].

    The closed form of :func:`~kdtemp.objectives._common.shannon_entropy` for this distribution
    (one top value and ``C - 1`` equal ones), elementwise in ``alpha`` with no ``[..., C]`` tensor:
    the bisection of :func:`smoothing_for_entropy` calls it 60 times."""
    top = 1.0 - alpha + alpha / num_classes
    rest = alpha / num_classes
    return -(torch.special.xlogy(top, top) + (num_classes - 1) * torch.special.xlogy(rest, rest))


def smoothing_for_entropy(target_entropy: Tensor, num_classes: int, iterations: int = 60) -> Tensor:
    """The coefficient ``a`` in [0, 1] whose smoothed one-hot has entropy ``target_entropy``.

    Vectorised bisection in float64 (the entropy is monotonic in ``a``); 60 halvings reach
    float64 resolution. Targets are clipped to ``[0, log C]``.
    """
    goal = target_entropy.to(torch.float64).clamp(0.0, math.log(num_classes))
    low, high = torch.zeros_like(goal), torch.ones_like(goal)
    for _ in range(iterations):
        middle = (low + high) / 2
        below = smoothing_entropy(middle, num_classes) < goal
        low = torch.where(below, middle, low)
        high = torch.where(below, high, middle)
    return (low + high) / 2


def smoothed_targets(top_class: Tensor, alpha: Tensor | float, num_classes: int) -> Tensor:
    """``(1 - a) * onehot(top_class) + a / C``; ``alpha`` per sample ``[B]`` or one float (kept
    a Python number: a tensor made from it on CUDA would be a blocking copy in every step)."""
    if isinstance(alpha, Tensor):
        alpha = alpha.to(dtype=torch.float64, device=top_class.device).reshape(-1, 1)
    else:
        alpha = float(alpha)
    onehot = torch.nn.functional.one_hot(top_class.long(), num_classes).to(torch.float64)
    return ((1.0 - alpha) * onehot + alpha / num_classes).float()


def instance_label_smoothing(teacher: Tensor, temperature: float) -> Tensor:
    """Per-instance entropy-matched label smoothing of the teacher's argmax.

    ``q_i = (1 - a_i) * onehot(argmax t_i) + a_i / C`` with ``H(q_i) = H(p(t_i, T))``.
    """
    entropy = shannon_entropy(log_probs=scaled_log_softmax(teacher, temperature).to(torch.float64))
    alpha = smoothing_for_entropy(entropy, teacher.shape[1])
    return smoothed_targets(teacher.argmax(dim=1), alpha, teacher.shape[1])


def average_sorted_distribution(teacher: Tensor, temperature: float) -> Tensor:
    """``mean_i sort_desc(p(t_i, T))``: the teacher's average sorted softmax ``[C]``."""
    probs = scaled_log_softmax(teacher, temperature).exp()
    return probs.sort(dim=1, descending=True).values.mean(dim=0)


def global_smoothing_coefficient(teacher: Tensor, temperature: float) -> float:
    """One coefficient for the whole training set: ``H(q)`` equals ``H`` of the average sorted softmax.

    Pass the teacher's logits on the un-augmented training set, computed once per teacher and T.
    """
    profile = average_sorted_distribution(teacher, temperature).to(torch.float64)
    entropy = shannon_entropy(profile)
    return float(smoothing_for_entropy(entropy.reshape(1), teacher.shape[1])[0])


def global_label_smoothing(teacher: Tensor, coefficient: float) -> Tensor:
    """Smoothed one-hot of each teacher argmax with the global ``coefficient``."""
    return smoothed_targets(teacher.argmax(dim=1), coefficient, teacher.shape[1])


def shuffled_tail(teacher: Tensor, temperature: float, keep_top: int, generator: torch.Generator | None = None) -> Tensor:
    """Bottom ``C - k`` randomised: keep the top-``k`` probabilities on their classes and permute
    the remaining ``C - k`` values among the remaining classes, a fresh permutation per sample.

    ``keep_top = C`` leaves the teacher's distribution unchanged. Seed ``generator`` for
    reproducibility (one draw per call, so pass a generator that advances every step).
    """
    probs = torch.softmax(upcast(teacher) / temperature, dim=1)
    batch, classes = probs.shape
    if not 0 <= keep_top <= classes:
        raise ValueError(f"keep_top must be in [0, {classes}]; got {keep_top}")
    if keep_top >= classes - 1:
        return probs
    order = probs.argsort(dim=1, descending=True, stable=True)
    tail_classes = order[:, keep_top:]
    tail_values = probs.gather(1, tail_classes)
    noise = torch.rand(batch, classes - keep_top, generator=generator, device=probs.device)
    permutation = noise.argsort(dim=1)
    return probs.scatter(1, tail_classes, tail_values.gather(1, permutation))


def distill_to_targets(student: Tensor, targets: Tensor, temperature: float) -> Tensor:
    """``T^2 * KL(q || p(s, T))``, batchmean, for a fixed target distribution ``q``."""
    q = upcast(targets)
    log_s = scaled_log_softmax(student, temperature)
    per_sample = (torch.special.xlogy(q, q) - q * log_s).sum(dim=1)
    return temperature * temperature * per_sample.mean()

"""Teacher diagnostics (the study's Table 1 and Fig. 4): relative entropies and softmax profiles."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import Tensor

from .objectives._common import scaled_log_softmax, shannon_entropy

__all__ = ["relative_entropy", "relative_entropy_without_top", "shannon_entropy", "sorted_profile",
           "sorted_profiles", "teacher_entropies"]


def relative_entropy(p: Tensor) -> Tensor:
    """``H(p) / log(C)`` per row of probabilities ``p`` ``[B, C]``; 0 for one-hot, 1 for uniform."""
    return shannon_entropy(p.double()) / math.log(p.shape[-1])


def relative_entropy_without_top(p: Tensor) -> Tensor:
    """``H(p_bar) / log(C - 1)`` per row: ``p`` without its argmax, renormalised to sum to 1.

    A uniform tail gives exactly 1. A row whose tail is all zeros (a numerically one-hot ``p``)
    has no defined ``p_bar``; it counts as uniform (1), the limit of a label-smoothed
    distribution. From logits, :func:`teacher_entropies` computes ``p_bar`` exactly instead.
    Needs ``C >= 3``.
    """
    classes = p.shape[-1]
    if classes < 3:
        raise ValueError(f"relative_entropy_without_top needs at least 3 classes; got {classes}")
    tail = _drop_top(p.double())
    mass = tail.sum(dim=-1, keepdim=True)
    uniform = torch.full_like(tail, 1.0 / (classes - 1))
    tail = torch.where(mass > 0, tail / mass.clamp_min(torch.finfo(tail.dtype).tiny), uniform)
    return shannon_entropy(tail) / math.log(classes - 1)


def _drop_top(values: Tensor) -> Tensor:
    """``values`` without each row's argmax entry, ``[B, C - 1]``."""
    keep = ~torch.nn.functional.one_hot(values.argmax(dim=-1), values.shape[-1]).bool()
    return values[keep].view(values.shape[0], values.shape[-1] - 1)


def sorted_profile(logits: Tensor, temperature: float, top_k: int | None = 20) -> Tensor:
    """``mean_i sort_desc(softmax(t_i / T))``, truncated to the ``top_k`` largest classes."""
    probs = scaled_log_softmax(logits, temperature).exp().double()
    profile = probs.sort(dim=-1, descending=True).values.mean(dim=0)
    return profile if top_k is None else profile[:top_k]


def sorted_profiles(logits: Tensor, temperatures: Iterable[float], top_k: int | None = 20) -> dict[float, Tensor]:
    """:func:`sorted_profile` for each temperature."""
    return {float(t): sorted_profile(logits, t, top_k) for t in temperatures}


def teacher_entropies(logits: Tensor, temperature: float = 1.0) -> dict[str, float | None]:
    """Dataset means of relative ``H(p)`` and ``H(p_bar)`` for teacher ``logits`` at ``temperature``.

    ``p_bar`` is the softmax of the logits without each row's top class, which equals ``p``
    without its argmax renormalised, computed exactly even where ``p`` underflows. With two
    classes ``p_bar`` has a single class and no relative entropy: it is ``None``.
    """
    logits = logits.double()
    probs = scaled_log_softmax(logits, temperature).exp()
    classes = logits.shape[-1]
    without_top = None
    if classes >= 3:
        tail = scaled_log_softmax(_drop_top(logits), temperature).exp()
        without_top = float((shannon_entropy(tail) / math.log(classes - 1)).mean())
    return {"relative_entropy": float(relative_entropy(probs).mean()), "relative_entropy_without_top": without_top}

"""Logit Standardization (Sun et al., 2024)."""

from __future__ import annotations

from torch import Tensor

from ._common import safe_sqrt, upcast


def standardize_logits(logits: Tensor, eps: float = 1e-7) -> Tensor:
    """``(z - mean(z)) / (std(z) + eps)`` per sample, with the **unbiased** (N-1) std.

    Apply it to both student and teacher logits, then run the host objective (``kd_loss`` or
    ``dkd_loss``) on the result at a base temperature (default 2; ``T^2`` still applies).
    A constant row maps to zeros with a zero (not NaN) gradient.
    Official preset (authors): KD weight 9, CE weight 0.1, base temperature 2.
    """
    z = upcast(logits)
    centred = z - z.mean(dim=-1, keepdim=True)
    variance = centred.square().sum(dim=-1, keepdim=True) / (z.shape[-1] - 1)
    return centred / (safe_sqrt(variance) + eps)

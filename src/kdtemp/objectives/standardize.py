"""Logit Standardization (Sun et al., 2024)."""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import centred_rows, upcast


def standardize_logits(logits: Tensor, eps: float = 1e-7) -> Tensor:
    """``(z - mean(z)) / (std(z) + eps)`` per sample, with the **unbiased** (N-1) std.

    Apply it to both student and teacher logits, then run the host objective (``kd_loss`` or
    ``dkd_loss``) on the result at a base temperature (default 2; ``T^2`` still applies).
    Official preset (authors): KD weight 9, CE weight 0.1, base temperature 2.

    A constant row maps to zeros. Its gradient is the authors' formula's: ``(I - 1/C) g / eps``
    (``1e7`` times the upstream gradient at the default ``eps``), which lets a student whose
    logits start constant (a zero-initialised head) learn; it stays finite for float16 inputs
    (saturated at 65504). Masked classes (``-inf`` logits) are left out of the mean and std
    and stay ``-inf``.
    """
    z = upcast(logits)
    centred, std, finite = centred_rows(z)
    return torch.where(finite, centred / (std + eps), z)

"""Logit Standardization (Sun et al., 2024)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._common import centred_rows, upcast
from .dkd import dkd_loss
from .kd import kd_loss
from .registry import ParameterRule, Preset, register


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


def _eps_rule() -> ParameterRule:
    return ParameterRule("number", 0.0, 1.0, low_open=True)


@register("ls_kd", summary="logit standardization, then KD at a base temperature", official=Preset(0.1, 9.0, 0, 2.0),
          display_name="LS-KD (logit standardization)", uses_label=False, parameters={"eps": _eps_rule()})
def ls_kd_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, eps: float = 1e-7) -> Tensor:
    return kd_loss(standardize_logits(s, eps), standardize_logits(t, eps), T)


@register("ls_dkd", summary="logit standardization, then DKD at a base temperature", official=Preset(1.0, 1.0, 20, 2.0),
          display_name="LS-DKD (logit standardization)", uses_label=True,
          parameters={"alpha": ParameterRule("number", 0.0), "beta": ParameterRule("number", 0.0), "eps": _eps_rule()},
          notes="kdtemp's choice: DKD's preset at the standardization base temperature 2.")
def ls_dkd_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, alpha: float = 1.0, beta: float = 8.0,
                     eps: float = 1e-7) -> Tensor:
    return dkd_loss(standardize_logits(s, eps), standardize_logits(t, eps), y, T, alpha=alpha, beta=beta)

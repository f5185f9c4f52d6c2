"""Numerical building blocks shared by the objectives.

Conventions (hold in every objective of this package):

* logits are ``[B, C]``; they are upcast to float32 (float64 stays float64)
  before any softmax, so bf16/fp16 autocast outputs are safe; the gradient that flows back
  to a half-precision input saturates at that dtype's largest finite value instead of
  overflowing to ``inf`` (see :func:`upcast`);
* a class whose logit is ``-inf`` (a masked class) has probability exactly 0; a
  probability of 0 contributes exactly 0 to a KL divergence or an entropy (``0 log 0 = 0``),
  never NaN;
* log-probabilities always come from ``log_softmax`` / ``logsumexp``, never
  from ``log(softmax)``;
* KL divergences use the *batchmean* reduction: sum over classes, mean over
  samples.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

Temperature = Union[float, Tensor]


class _SaturatingUpcast(torch.autograd.Function):
    """float32 forward; backward casts the gradient back to the input's dtype, clamped to its
    finite range (a float16 input cannot hold gradients above 65504)."""

    @staticmethod
    def forward(ctx, logits: Tensor) -> Tensor:  # type: ignore[override]
        ctx.dtype = logits.dtype
        return logits.float()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        limit = torch.finfo(ctx.dtype).max
        return grad.nan_to_num(nan=0.0, posinf=limit, neginf=-limit).clamp(-limit, limit).to(ctx.dtype)


def upcast(logits: Tensor) -> Tensor:
    """Return ``logits`` as float32, or unchanged when already float32/float64.

    The gradient back to a float16/bfloat16 input saturates at the dtype's largest finite
    value: objectives whose gradient is legitimately large (logit standardization of a
    constant row, DIST's correlation of a uniform row: about ``1 / eps``) stay finite.
    """
    if logits.dtype in (torch.float32, torch.float64):
        return logits
    if logits.requires_grad:
        return _SaturatingUpcast.apply(logits)
    return logits.float()


def check_logits(student: Tensor, teacher: Tensor) -> None:
    """Raise ``ValueError`` unless student and teacher are matching ``[B, C]`` logits."""
    if student.dim() != 2 or teacher.dim() != 2:
        raise ValueError(
            f"logits must be 2-D [batch, classes]; got student {tuple(student.shape)} "
            f"and teacher {tuple(teacher.shape)}"
        )
    if student.shape != teacher.shape:
        raise ValueError(
            f"student and teacher logits differ in shape: {tuple(student.shape)} vs {tuple(teacher.shape)}"
        )
    if student.shape[1] < 2:
        raise ValueError(f"at least 2 classes are needed; got {student.shape[1]}")


def check_temperature(temperature: Temperature, name: str = "temperature") -> None:
    """Raise ``ValueError`` for a non-positive fixed temperature.

    A tensor temperature (a learned or scheduled one: CTKD, DTS) is not read back to the host,
    which would synchronise every step; the policies that produce them keep them positive."""
    if isinstance(temperature, Tensor):
        return
    value = float(temperature)
    if not value > 0:
        raise ValueError(f"{name} must be > 0; got {value}")


def check_target(target: Tensor, logits: Tensor) -> None:
    """Raise ``ValueError`` unless ``target`` holds one class index per row of ``logits``."""
    if target.dim() != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target must be a [batch] tensor of class indices; got shape {tuple(target.shape)} "
            f"for logits {tuple(logits.shape)}"
        )
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"target must hold integer class indices; got dtype {target.dtype}")


def scaled_log_softmax(logits: Tensor, temperature: Temperature) -> Tensor:
    """``log softmax(z / T)`` over the last dimension, in float32 or wider."""
    return torch.log_softmax(upcast(logits) / temperature, dim=-1)


def masked_log_softmax(scaled: Tensor, keep: Tensor) -> Tensor:
    """``log softmax`` of ``scaled`` restricted to the classes where ``keep`` is true.

    Entries outside ``keep`` hold the placeholder 0 (never ``-inf`` nor an unbounded value),
    selected with ``where`` so that no NaN or overflow reaches either pass; callers must
    ignore them (weight them by ``keep``). A row with no kept class is treated as if every
    class were kept; callers zero its contribution.
    """
    empty_row = ~keep.any(dim=-1, keepdim=True)
    effective = keep | empty_row
    masked = scaled.masked_fill(~effective, float("-inf"))
    log_probs = scaled - torch.logsumexp(masked, dim=-1, keepdim=True)
    return torch.where(effective, log_probs, torch.zeros_like(log_probs))


def kl_from_log_probs(log_p: Tensor, log_q: Tensor, weight: Tensor | None = None) -> Tensor:
    """Per-sample ``sum_c P_c (log P_c - log Q_c)``, shape ``[B]``.

    ``weight`` (same shape, 0/1) restricts the sum to a subset of classes; the
    probabilities outside it are taken as zero. A class with ``P_c = 0`` (``log P_c = -inf``,
    e.g. a masked teacher class) contributes exactly 0, whatever ``Q_c``.
    """
    p = log_p.exp()
    present = p > 0
    difference = torch.where(present, log_p, torch.zeros_like(log_p)) - torch.where(present, log_q, torch.zeros_like(log_q))
    terms = torch.where(present, p * difference, torch.zeros_like(p))
    if weight is not None:
        terms = terms * weight
    return terms.sum(dim=-1)


def shannon_entropy(probs: Tensor | None = None, *, log_probs: Tensor | None = None) -> Tensor:
    """``-sum_c p_c log p_c`` (nats) over the last dimension with ``0 log 0 = 0``: ``[B, C] -> [B]``, ``[C] -> []``.

    kdtemp's one definition of entropy (EA-KD's weights, the label-smoothing ablations, the teacher
    diagnostics). Give exactly one of:

    * ``log_probs`` (from ``log_softmax``; what objectives have): ``p = exp(log_p)``, and a class
      whose ``p`` is 0 (underflowed, or a masked ``-inf`` class) adds exactly 0, value and gradient;
    * ``probs`` (probabilities, e.g. an averaged profile): ``xlogy(p, p)`` summed.

    The two routes round differently (the log of a rounded probability against the exact
    log-probability), so each caller keeps the route its values were always computed with.
    """
    if (probs is None) == (log_probs is None):
        raise ValueError("shannon_entropy needs exactly one of probs and log_probs")
    if probs is not None:
        return -torch.special.xlogy(probs, probs).sum(dim=-1)
    p = log_probs.exp()
    return -torch.where(p > 0, p * torch.where(p > 0, log_probs, torch.zeros_like(log_probs)),
                        torch.zeros_like(p)).sum(dim=-1)


def centred_rows(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(z - mean, unbiased std, finite)`` per row over the finite entries only: a masked
    (``-inf``) class is left out of both, and its centred value is a placeholder 0 that callers
    replace (``finite`` marks the real entries). The std's gradient is 0 at a constant row."""
    finite = torch.isfinite(z)
    count = finite.sum(dim=-1, keepdim=True)
    safe = torch.where(finite, z, torch.zeros_like(z))
    mean = safe.sum(dim=-1, keepdim=True) / count.clamp_min(1)
    centred = torch.where(finite, safe - mean, torch.zeros_like(z))
    variance = centred.square().sum(dim=-1, keepdim=True) / (count - 1).clamp_min(1)
    return centred, safe_sqrt(variance), finite


def safe_sqrt(x: Tensor) -> Tensor:
    """``sqrt(x)`` for ``x >= 0`` whose gradient at ``x = 0`` is 0 rather than NaN (or inf)."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


def reduce(per_sample: Tensor, reduction: str) -> Tensor:
    """Apply ``"batchmean"`` (mean over samples), ``"sum"`` or ``"none"``."""
    if reduction == "batchmean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'batchmean', 'sum' or 'none'; got {reduction!r}")


def binary_log_probs(scaled: Tensor, index: Tensor) -> Tensor:
    """``[log p_k, log(1 - p_k)]`` per row for class ``index``, computed in log space.

    ``scaled`` are temperature-scaled logits ``[B, C]``; the result is ``[B, 2]``.
    ``log(1 - p_k)`` is ``logsumexp`` over the other classes minus ``logsumexp`` over all.
    """
    total = torch.logsumexp(scaled, dim=-1)
    chosen = scaled.gather(1, index.view(-1, 1).long()).squeeze(1)
    others = ~torch.nn.functional.one_hot(index.long(), scaled.shape[1]).bool()
    rest = torch.logsumexp(scaled.masked_fill(~others, float("-inf")), dim=-1)
    return torch.stack([chosen - total, rest - total], dim=1)

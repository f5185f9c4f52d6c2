"""Temperature policies: fixed, the Dynamic Temperature Scheduler (DTS) and CTKD's learnable T.

A policy's ``value`` is the temperature the *next* batch uses. After a batch's optimizer step
the engine calls ``update(student_ce, teacher_ce, epoch, total_epochs)`` with that batch's
detached mean cross-entropies; policies that do not adapt ignore it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class FixedTemperature:
    """One temperature for the whole run (the study's object)."""

    temperature: float

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0; got {self.temperature}")

    @property
    def value(self) -> float:
        return self.temperature

    def update(self, student_ce: float, teacher_ce: float, epoch: int, total_epochs: int) -> float:
        return self.temperature

    def state_dict(self) -> dict:
        return {"temperature": self.temperature}

    def load_state_dict(self, state: dict) -> None:
        self.temperature = float(state["temperature"])


class DynamicTemperature:
    """Dynamic Temperature Scheduler (Islam et al., 2025).

    State ``T`` starts at ``initial``. After each batch's optimizer step (the batch used the
    current ``T``; the new value applies from the next batch)::

        g = CE(s, y) - CE(t, y)               # batch means, detached
        S = 0.5 * (1 + cos(pi * epoch / total_epochs))     # 1-based epoch
        a = g / (g - 1) if g > 1 else 1; a = 1.35 if a > 2  # the authors' cap
        T_target = clamp(initial * S * a, minimum, maximum)
        T = momentum * T + (1 - momentum) * T_target

    The cap makes ``a`` non-monotonic in ``g``: 1.35 for ``1 < g < 2``, 2 at ``g = 2``,
    then ``g / (g - 1)`` falling toward 1. ``g == 1`` is treated as ``a > 2`` (``a = 1.35``),
    the limit from above. Presets: :meth:`same_family` ``[4, 8]`` and :meth:`cross_family` ``[1, 3]``.
    """

    def __init__(self, initial: float, minimum: float, maximum: float, momentum: float = 0.9) -> None:
        if not 0 < minimum <= maximum:
            raise ValueError(f"DTS needs 0 < minimum <= maximum; got minimum={minimum}, maximum={maximum}")
        if not minimum <= initial <= maximum:
            raise ValueError(f"DTS initial must lie in [minimum, maximum] = [{minimum}, {maximum}]; got {initial}")
        if not 0 <= momentum < 1:
            raise ValueError(f"DTS momentum must be in [0, 1); got {momentum}")
        self.initial, self.minimum, self.maximum, self.momentum = float(initial), float(minimum), float(maximum), float(momentum)
        self.value = float(initial)

    @classmethod
    def same_family(cls) -> "DynamicTemperature":
        """Paper preset for teacher and student of the same family: ``T_init = T_max = 8, T_min = 4``."""
        return cls(initial=8.0, minimum=4.0, maximum=8.0)

    @classmethod
    def cross_family(cls) -> "DynamicTemperature":
        """Paper preset for teacher and student of different families: ``T_init = T_max = 3, T_min = 1``."""
        return cls(initial=3.0, minimum=1.0, maximum=3.0)

    @staticmethod
    def scaling(gap):
        """The adaptive factor ``a`` for a CE gap ``g`` (float or tensor), with the authors' cap:
        ``g / (g - 1)`` for ``g >= 1`` (infinite at ``g == 1``), replaced by 1.35 above 2; 1 below 1."""
        gap = torch.as_tensor(gap, dtype=torch.float64)
        ratio = gap / (gap - 1.0)  # inf at g == 1, which the cap turns into 1.35 as documented
        a = torch.where(gap >= 1.0, ratio, torch.ones_like(gap))
        return torch.where(a > 2.0, torch.full_like(a, 1.35), a)

    def target(self, gap, epoch: int, total_epochs: int):
        """``clamp(T_init * S(epoch / total_epochs) * a(gap), T_min, T_max)`` (float or tensor ``gap``)."""
        schedule = 0.5 * (1.0 + math.cos(math.pi * epoch / total_epochs))
        return (self.initial * schedule * self.scaling(gap)).clamp(self.minimum, self.maximum)

    def update(self, student_ce, teacher_ce, epoch: int, total_epochs: int):
        """Move ``value`` toward the target for this batch's CE gap; return the new value.

        One rule for both kinds of input. With float cross-entropies ``value`` stays a float.
        With tensors (the engine passes the batch's detached CEs on the training device) it is a
        0-dim float64 tensor on that device: no host synchronisation per step; the engine reads
        the trace once per epoch.
        """
        on_device = isinstance(student_ce, torch.Tensor) or isinstance(teacher_ce, torch.Tensor)
        gap = torch.as_tensor(student_ce, dtype=torch.float64) - torch.as_tensor(teacher_ce, dtype=torch.float64)
        value = self.momentum * self.value + (1.0 - self.momentum) * self.target(gap, epoch, total_epochs)
        self.value = value if on_device else float(value)
        return self.value

    def state_dict(self) -> dict:
        return {"value": float(self.value)}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, factor: float) -> Tensor:  # type: ignore[override]
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad * ctx.factor, None


def gradient_reversal(x: Tensor, factor: float) -> Tensor:
    """Identity forward; backward multiplies the gradient by ``factor`` (CTKD's lambda, <= 0)."""
    return _GradientReversal.apply(x, factor)


def curriculum_lambda(epoch: int, ramp_epochs: int = 10) -> float:
    """CTKD's ``lambda(e) = (cos(pi * min(e, L) / L) + 1) / 2 - 1``: 0 at e = 0, -1 from e = L on.

    Evaluated once per epoch with the 1-based epoch index (``L = 10``; 5 on ImageNet-scale runs).
    """
    if ramp_epochs < 1:
        raise ValueError(f"ramp_epochs must be >= 1; got {ramp_epochs}")
    return (math.cos(math.pi * min(epoch, ramp_epochs) / ramp_epochs) + 1.0) / 2.0 - 1.0


class LearnableTemperature(nn.Module):
    """CTKD's global learnable temperature ``T = 1 + 20 * sigmoid(theta)``, always in (1, 21).

    ``theta`` starts at 1 (``T = 15.62``) and reaches the loss through a gradient-reversal layer
    scaled by ``lambda`` (see :func:`curriculum_lambda`): the student minimises the KD loss while
    the temperature, optimised by the same optimizer, maximises it. ``T`` is not detached.
    """

    def __init__(self, initial_theta: float = 1.0, minimum: float = 1.0, span: float = 20.0) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(float(initial_theta)))
        self.minimum, self.span = float(minimum), float(span)
        self.reversal = 0.0

    def set_lambda(self, value: float) -> None:
        """Set the gradient-reversal factor for the coming epoch."""
        self.reversal = float(value)

    def forward(self) -> Tensor:
        return self.minimum + self.span * torch.sigmoid(gradient_reversal(self.theta, self.reversal))

    @property
    def value(self) -> float:
        return float(self.minimum + self.span * torch.sigmoid(self.theta.detach()))


def akd_level(epoch: int, phase1_epochs: int, max_level: int = 10) -> int:
    """Annealing KD's level ``k`` for 1-based ``epoch`` of phase 1: it starts at 1 and rises by one
    every ``floor(phase1_epochs / max_level)`` epochs (the authors' counter, which rises at the start
    of every 0-based epoch ``e > 0`` with ``e % floor(E1 / max_level) == 0``), clamped at
    ``max_level`` (the authors' code lets it pass ``max_level`` when ``E1`` is not a multiple).

    ``phase1_epochs < max_level`` is refused: a level would last zero epochs.
    """
    if max_level < 1:
        raise ValueError(f"max_level must be >= 1; got {max_level}")
    if phase1_epochs < max_level:
        raise ValueError(f"phase1_epochs ({phase1_epochs}) must be >= max_level ({max_level}): each of the "
                         f"{max_level} levels lasts floor(phase1_epochs / max_level) epochs")
    if not 1 <= epoch <= phase1_epochs:
        raise ValueError(f"epoch must be in [1, {phase1_epochs}] (phase 1); got {epoch}")
    return min(1 + (epoch - 1) // (phase1_epochs // max_level), max_level)

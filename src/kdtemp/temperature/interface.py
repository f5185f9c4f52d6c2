"""One interface for every temperature policy: what the engine asks of fixed T, DTS and CTKD.

A member holds exactly one policy and calls, in this order::

    policy.begin_epoch(epoch)                      # 1-based; CTKD sets its gradient-reversal factor
    T = policy.current()                            # the value this batch uses (before its update)
    ... loss(T), backward, optimizer step ...
    policy.after_step(T, cross_entropies, epoch, total_epochs)   # under no_grad; DTS moves T
    mean, steps = policy.end_epoch()                # mean T of the epoch; per-step values to log

``cross_entropies()`` returns the batch's detached mean ``(CE(student), CE(teacher))`` at T = 1; only a
policy that adapts to the gap calls it, so the others cost nothing. ``parameters()`` are trained by
the student's optimizer (CTKD's ``theta``); ``state_dict()`` is all a checkpoint needs to continue the
policy exactly. No value is read back to the host inside a step: DTS keeps its state on the device
and the member reads the epoch's values once, in ``end_epoch``.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn

from .policies import DynamicTemperature, FixedTemperature, LearnableTemperature, curriculum_lambda

CrossEntropies = Callable[[], tuple[Tensor, Tensor]]


class TemperaturePolicy(Protocol):
    """What the engine asks of a temperature policy (see the module docstring)."""

    name: str

    def current(self) -> float | Tensor: ...

    def parameters(self) -> list[nn.Parameter]: ...

    def begin_epoch(self, epoch: int) -> None: ...

    def after_step(self, used: float | Tensor, cross_entropies: CrossEntropies, epoch: int, total_epochs: int) -> None: ...

    def end_epoch(self) -> tuple[float, list[float]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class FixedPolicy:
    """One temperature for the whole run; nothing to log per step."""

    name = "fixed"

    def __init__(self, temperature: float) -> None:
        self.schedule = FixedTemperature(temperature)

    def current(self) -> float:
        return self.schedule.value

    def parameters(self) -> list[nn.Parameter]:
        return []

    def begin_epoch(self, epoch: int) -> None:
        pass

    def after_step(self, used, cross_entropies: CrossEntropies, epoch: int, total_epochs: int) -> None:
        pass

    def end_epoch(self) -> tuple[float, list[float]]:
        return float(self.schedule.value), []

    def state_dict(self) -> dict[str, Any]:
        return self.schedule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state)


class DTSPolicy:
    """The Dynamic Temperature Scheduler (:class:`DynamicTemperature`), batch-wise: after each
    optimizer step T moves toward its target for that batch's CE gap. Every step's value is logged
    (kept on the device during the epoch as float64, read once at its end)."""

    name = "dts"

    def __init__(self, initial: float, minimum: float, maximum: float, momentum: float = 0.9) -> None:
        self.schedule = DynamicTemperature(initial, minimum, maximum, momentum)
        self._steps: list[Tensor] = []

    def current(self) -> float | Tensor:
        return self.schedule.value

    def parameters(self) -> list[nn.Parameter]:
        return []

    def begin_epoch(self, epoch: int) -> None:
        self._steps = []

    def after_step(self, used, cross_entropies: CrossEntropies, epoch: int, total_epochs: int) -> None:
        student_ce, teacher_ce = cross_entropies()
        self._steps.append(used.to(torch.float64) if isinstance(used, Tensor)  # the device's value
                           else torch.full((), used, dtype=torch.float64, device=student_ce.device))  # no copy
        self.schedule.update(student_ce, teacher_ce, epoch, total_epochs)

    def end_epoch(self) -> tuple[float, list[float]]:
        if not self._steps:
            return float(self.schedule.value), []
        values = torch.stack(self._steps).tolist()
        self._steps = []
        return sum(values) / len(values), values

    def state_dict(self) -> dict[str, Any]:
        return self.schedule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state)


class CTKDPolicy:
    """CTKD's learnable temperature (:class:`LearnableTemperature`) with its curriculum: the
    gradient-reversal factor ``lambda(epoch)`` is set at each epoch's start. Its ``theta`` is a
    parameter of the student's optimizer. The epoch's mean T is logged, not each step's."""

    name = "ctkd"

    def __init__(self, ramp_epochs: int = 10, device: torch.device | str = "cpu") -> None:
        self.module = LearnableTemperature().to(device)
        self.ramp_epochs = ramp_epochs
        self._steps: list[Tensor] = []

    def current(self) -> Tensor:
        return self.module()

    def parameters(self) -> list[nn.Parameter]:
        return list(self.module.parameters())

    def begin_epoch(self, epoch: int) -> None:
        self._steps = []
        self.module.set_lambda(curriculum_lambda(epoch, self.ramp_epochs))

    def after_step(self, used, cross_entropies: CrossEntropies, epoch: int, total_epochs: int) -> None:
        self._steps.append(used.detach())

    def end_epoch(self) -> tuple[float, list[float]]:
        if not self._steps:
            return self.module.value, []
        mean = float(torch.stack(self._steps).mean())
        self._steps = []
        return mean, []

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)


def create_policy(kind: str, *, temperature: float, dts: Any = None, ctkd_ramp_epochs: int = 10,
                  device: torch.device | str = "cpu") -> TemperaturePolicy:
    """The policy ``kind`` (``fixed``, ``dts`` or ``ctkd``): ``temperature`` for a fixed one,
    ``dts`` (anything with ``initial``, ``minimum``, ``maximum``, ``momentum``) for DTS, the
    curriculum length for CTKD (whose parameter is made on ``device``)."""
    if kind == "fixed":
        return FixedPolicy(temperature)
    if kind == "dts":
        return DTSPolicy(dts.initial, dts.minimum, dts.maximum, dts.momentum)
    if kind == "ctkd":
        return CTKDPolicy(ctkd_ramp_epochs, device)
    raise ValueError(f"unknown temperature policy {kind!r}; allowed: fixed, dts, ctkd")

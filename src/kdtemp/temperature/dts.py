"""The Dynamic Temperature Scheduler, batch-wise: T moves after each step toward its target for the
batch's cross-entropy gap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .interface import CrossEntropies, PolicyDefaults
from .policies import DynamicTemperature
from ..config import require
from .registry import PolicySpec, register_policy, require_temperature


@dataclass
class DTSConfig:
    """Dynamic Temperature Scheduler bounds (paper presets: same family 8/4/8, cross family 3/1/3)."""

    initial: float = 8.0
    minimum: float = 4.0
    maximum: float = 8.0
    momentum: float = 0.9

    def validate(self, path: str = "dts") -> None:
        for name in ("initial", "minimum", "maximum"):
            require_temperature(getattr(self, name), f"{path}.{name}")
        require(self.minimum <= self.maximum, f"{path}", f"needs minimum <= maximum; got {self.minimum}, {self.maximum}")
        require(self.minimum <= self.initial <= self.maximum, f"{path}.initial",
                f"must lie in [{self.minimum}, {self.maximum}]; got {self.initial}")
        require(0 <= self.momentum < 1, f"{path}.momentum", f"must be in [0, 1); got {self.momentum}")


class DTSPolicy(PolicyDefaults):
    """The Dynamic Temperature Scheduler (:class:`DynamicTemperature`), batch-wise: after each
    optimizer step T moves toward its target for that batch's CE gap. Every step's value is logged
    (kept on the device during the epoch as float64, read once at its end)."""

    name = "dts"

    def __init__(self, initial: float, minimum: float, maximum: float, momentum: float = 0.9) -> None:
        self.schedule = DynamicTemperature(initial, minimum, maximum, momentum)
        self._steps: list[Tensor] = []

    def current(self, batch: Any = None) -> float | Tensor:
        return self.schedule.value

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


register_policy(PolicySpec("dts", "DTS", lambda inputs: DTSPolicy(inputs.dts.initial, inputs.dts.minimum, inputs.dts.maximum,
                                                                   inputs.dts.momentum),
                           settings=("dts",), draws="steps", bounded=True, uses_gap=True, label=lambda member: f"dts[{member.dts.minimum:g},{member.dts.maximum:g}]"))

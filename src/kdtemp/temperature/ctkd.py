"""CTKD's learnable temperature with its gradient-reversal curriculum."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .interface import CrossEntropies, PolicyDefaults
from .policies import LearnableTemperature, curriculum_lambda
from .registry import PolicySpec, register_policy


class CTKDPolicy(PolicyDefaults):
    """CTKD's learnable temperature (:class:`LearnableTemperature`) with its curriculum: the
    gradient-reversal factor ``lambda(epoch)`` is set at each epoch's start. Its ``theta`` is a
    parameter of the student's optimizer. The epoch's mean T is logged, not each step's."""

    name = "ctkd"

    def __init__(self, ramp_epochs: int = 10, device: torch.device | str = "cpu") -> None:
        self.module = LearnableTemperature().to(device)
        self.ramp_epochs = ramp_epochs
        self._steps: list[Tensor] = []

    def current(self, batch: Any = None) -> Tensor:
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


register_policy(PolicySpec("ctkd", "CTKD", lambda inputs: CTKDPolicy(inputs.ctkd_ramp_epochs, inputs.device),
                           settings=("ctkd_ramp_epochs",), label=lambda member: "learned-T",
                           needs_engine="learns its temperature adversarially with the student's optimizer, by epoch"))

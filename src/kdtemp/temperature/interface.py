"""One interface for every temperature policy: what the engine asks of fixed T, DTS, CTKD and AKD.

A member holds exactly one policy and calls, in this order::

    policy.begin_epoch(epoch)                      # 1-based; CTKD sets its gradient-reversal factor
    T = policy.current(batch)                       # the value this batch uses (before its update)
    ... loss(T), backward, optimizer step ...
    policy.after_step(T, cross_entropies, epoch, total_epochs)   # under no_grad; DTS moves T
    mean, steps = policy.end_epoch()                # mean T of the epoch; per-step values to log
    policy.epoch_summary()                          # the distribution of per-sample T, or None

``cross_entropies()`` returns the batch's detached mean ``(CE(student), CE(teacher))`` at T = 1, and
``cross_entropies(per_sample=True)`` each sample's against its class index (``[B]`` each); only a
policy that adapts to the gap calls it, so the others cost nothing. ``batch.indices`` are the
training-set positions of the batch's rows (instance-wise DTS keeps one T per training sample). ``parameters()`` are trained by
the student's optimizer (CTKD's ``theta``); ``state_dict()`` is all a checkpoint needs to continue the
policy exactly. No value is read back to the host inside a step: DTS keeps its state on the device
and the member reads the epoch's values once, in ``end_epoch``.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn


CrossEntropies = Callable[[], tuple[Tensor, Tensor]]


class TemperaturePolicy(Protocol):
    """What the engine asks of a temperature policy (see the module docstring)."""

    name: str

    def current(self, batch: Any = None) -> float | Tensor: ...

    def parameters(self) -> list[nn.Parameter]: ...

    def begin_epoch(self, epoch: int) -> None: ...

    def after_step(self, used: float | Tensor, cross_entropies: CrossEntropies, epoch: int, total_epochs: int) -> None: ...

    def end_epoch(self) -> tuple[float, list[float]]: ...

    def epoch_summary(self) -> dict[str, float] | None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class PolicyDefaults:
    """What most policies share (a policy class may derive from it): no parameters of its own, nothing
    to do at an epoch's start or after a step, no per-sample distribution, and a state that is its
    ``schedule``'s."""

    def parameters(self) -> list[nn.Parameter]:
        return []

    def begin_epoch(self, epoch: int) -> None:
        pass

    def after_step(self, used: Any, cross_entropies: CrossEntropies, epoch: int, total_epochs: int) -> None:
        pass

    def epoch_summary(self) -> dict[str, float] | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return self.schedule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state)


def create_policy(kind: str, *, temperature: float | None = None, dts: Any = None, ctkd_ramp_epochs: int = 10,
                  device: torch.device | str = "cpu", samples: int = 1,
                  objective_params: dict[str, Any] | None = None) -> TemperaturePolicy:
    """The registered policy ``kind`` (:mod:`kdtemp.temperature.registry`) made from a member's
    settings (:class:`~kdtemp.temperature.registry.PolicyInputs`)."""
    from .registry import PolicyInputs, get_policy

    return get_policy(kind).create(PolicyInputs(temperature, dts, ctkd_ramp_epochs, device, samples, objective_params))

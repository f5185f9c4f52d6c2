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

from .policies import DynamicTemperature, FixedTemperature, LearnableTemperature, akd_level, curriculum_lambda

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


class FixedPolicy:
    """One temperature for the whole run; nothing to log per step."""

    name = "fixed"

    def __init__(self, temperature: float) -> None:
        self.schedule = FixedTemperature(temperature)

    def current(self, batch: Any = None) -> float:
        return self.schedule.value

    def parameters(self) -> list[nn.Parameter]:
        return []

    def begin_epoch(self, epoch: int) -> None:
        pass

    def after_step(self, used, cross_entropies: CrossEntropies, epoch: int, total_epochs: int) -> None:
        pass

    def end_epoch(self) -> tuple[float, list[float]]:
        return float(self.schedule.value), []

    def epoch_summary(self) -> dict[str, float] | None:
        return None

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

    def current(self, batch: Any = None) -> float | Tensor:
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

    def epoch_summary(self) -> dict[str, float] | None:
        return None

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

    def epoch_summary(self) -> dict[str, float] | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)


class InstanceDTSPolicy:
    """Instance-wise DTS (the DTS paper's open question 2): DTS's rule per training sample. Sample
    ``j`` keeps its own ``T_j`` (float64, on the device, starting at ``initial``), updated from its
    own detached gap ``g_j = CE(s_j, y_j) - CE(t_j, y_j)`` (``y_j`` the dominant label) each time it
    is seen, with DTS's cosine, scaling, clamp and momentum. A batch's KD term uses the values
    before its update, one per row (``[B, 1]``): ``mean_i T_i^2 KL(p(t_i, T_i) || p(s_i, T_i))``.
    Logged per epoch: the mean T the batches used, and the distribution of every ``T_j`` at the
    epoch's end (mean, quartiles, min, max). With every sample's gap equal to the batch's, each
    ``T_j`` moves exactly as batch-wise DTS's ``T``."""

    name = "dts_instance"

    def __init__(self, initial: float, minimum: float, maximum: float, momentum: float = 0.9, samples: int = 1,
                 device: torch.device | str = "cpu") -> None:
        self.schedule = DynamicTemperature(initial, minimum, maximum, momentum)
        self.values = torch.full((samples,), float(initial), dtype=torch.float64, device=device)
        self._used: list[Tensor] = []
        self._indices: Tensor | None = None

    def current(self, batch: Any = None) -> Tensor:
        if batch is None or getattr(batch, "indices", None) is None:
            raise ValueError("instance-wise DTS needs each batch's training-sample indices")
        self._indices = batch.indices  # the rows after_step updates
        return self.values[batch.indices].float().unsqueeze(1)

    def parameters(self) -> list[nn.Parameter]:
        return []

    def begin_epoch(self, epoch: int) -> None:
        self._used = []

    def after_step(self, used: Tensor, cross_entropies: Callable[..., tuple[Tensor, Tensor]], epoch: int,
                   total_epochs: int) -> None:
        student_ce, teacher_ce = cross_entropies(per_sample=True)
        self._used.append(used.detach().double().mean())
        gap = student_ce.double() - teacher_ce.double()
        rows = self.values[self._indices]
        target = self.schedule.target(gap, epoch, total_epochs)
        self.values[self._indices] = self.schedule.momentum * rows + (1.0 - self.schedule.momentum) * target

    def end_epoch(self) -> tuple[float, list[float]]:
        if not self._used:
            return float(self.values.mean()), []
        mean = float(torch.stack(self._used).mean())
        self._used = []
        return mean, []

    def epoch_summary(self) -> dict[str, float]:
        q1, median, q3 = torch.quantile(self.values, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64,
                                                                  device=self.values.device)).tolist()
        return {"mean": float(self.values.mean()), "q1": q1, "median": median, "q3": q3,
                "min": float(self.values.min()), "max": float(self.values.max())}

    def state_dict(self) -> dict[str, Any]:
        return {"values": self.values.cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        values = state["values"]
        if values.shape != self.values.shape:
            raise ValueError(f"instance-wise DTS state holds {values.shape[0]} samples; the data has {self.values.shape[0]}")
        self.values = values.to(device=self.values.device, dtype=torch.float64)


class AKDPolicy:
    """Annealing KD's staircase (phase 1 of an ``akd`` run): the level ``k`` of each 1-based epoch
    (:func:`akd_level`), given as the paper's annealing temperature ``tau = max_level + 1 - k``
    (from ``max_level`` down to 1; the teacher is scaled by ``Phi(tau) = 1 - (tau - 1) / max_level
    = k / max_level``). After phase 1 the level stays at its last value; the run's phase 2 uses no
    temperature (the member records none)."""

    name = "akd"

    def __init__(self, phase1_epochs: int, max_level: int = 10) -> None:
        self.phase1_epochs, self.max_level = phase1_epochs, max_level
        self.level = akd_level(1, phase1_epochs, max_level)  # refuses phase1_epochs < max_level

    def current(self, batch: Any = None) -> float:
        return float(self.max_level + 1 - self.level)

    def parameters(self) -> list[nn.Parameter]:
        return []

    def begin_epoch(self, epoch: int) -> None:
        if epoch <= self.phase1_epochs:
            self.level = akd_level(epoch, self.phase1_epochs, self.max_level)

    def after_step(self, used, cross_entropies: CrossEntropies, epoch: int, total_epochs: int) -> None:
        pass

    def end_epoch(self) -> tuple[float, list[float]]:
        return self.current(), []

    def epoch_summary(self) -> dict[str, float] | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.level = int(state["level"])


def create_policy(kind: str, *, temperature: float, dts: Any = None, ctkd_ramp_epochs: int = 10,
                  device: torch.device | str = "cpu", samples: int = 1,
                  akd: dict[str, int] | None = None) -> TemperaturePolicy:
    """The policy ``kind`` (``fixed``, ``dts``, ``dts_instance``, ``ctkd`` or ``akd``): ``temperature``
    for a fixed one, ``dts`` (anything with ``initial``, ``minimum``, ``maximum``, ``momentum``) for both
    DTS forms, the training set's size ``samples`` for the instance-wise one (its state is made on
    ``device``), the curriculum length for CTKD (whose parameter is made on ``device``), and for
    Annealing KD ``akd``, the objective's ``{"phase1_epochs": ..., "max_level": ...}``."""
    if kind == "fixed":
        return FixedPolicy(temperature)
    if kind == "dts":
        return DTSPolicy(dts.initial, dts.minimum, dts.maximum, dts.momentum)
    if kind == "dts_instance":
        return InstanceDTSPolicy(dts.initial, dts.minimum, dts.maximum, dts.momentum, samples, device)
    if kind == "ctkd":
        return CTKDPolicy(ctkd_ramp_epochs, device)
    if kind == "akd":
        if akd is None:
            raise ValueError("the akd policy needs the objective's phase1_epochs and max_level")
        return AKDPolicy(akd["phase1_epochs"], akd["max_level"])
    raise ValueError(f"unknown temperature policy {kind!r}; allowed: fixed, dts, dts_instance, ctkd, akd")

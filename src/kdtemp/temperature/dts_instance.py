"""Instance-wise DTS: DTS's rule per training sample (the DTS paper's open question 2)."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..config import ConfigError
from .policies import DynamicTemperature
from .registry import PolicySpec, register_policy


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


def _check(member: Any, path: str) -> None:
    if member.objective is not None and member.objective != "kd":
        raise ConfigError(f"{path}.temperature_policy: dts_instance gives each sample its own temperature, which only "
                          f"objective 'kd' takes; got objective {member.objective!r}")


register_policy(PolicySpec(
    "dts_instance", "instance-wise DTS",
    lambda inputs: InstanceDTSPolicy(inputs.dts.initial, inputs.dts.minimum, inputs.dts.maximum, inputs.dts.momentum,
                                     inputs.samples, inputs.device),
    settings=("dts",), draws="distribution", bounded=True, uses_gap=True,
    needs_engine="keeps one temperature per training sample, indexed by the training set's positions", label=lambda member: f"dts-instance[{member.dts.minimum:g},{member.dts.maximum:g}]", check=_check,
    no_token_form="keeps one temperature per training sample and has no token form; use dts (batch-wise, progress "
                  "over optimizer steps)"))

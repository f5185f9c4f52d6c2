"""Annealing KD's staircase of temperatures (phase 1 of an ``akd`` run)."""

from __future__ import annotations

from typing import Any

from ..config import ConfigError
from .interface import PolicyDefaults
from .policies import akd_level
from .registry import PolicyInputs, PolicySpec, register_policy


class AKDPolicy(PolicyDefaults):
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

    def begin_epoch(self, epoch: int) -> None:
        if epoch <= self.phase1_epochs:
            self.level = akd_level(epoch, self.phase1_epochs, self.max_level)

    def end_epoch(self) -> tuple[float, list[float]]:
        return self.current(), []

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.level = int(state["level"])


def _create(inputs: PolicyInputs) -> AKDPolicy:
    params = inputs.objective_params
    if not params or params.get("phase1_epochs") is None or "max_level" not in params:
        raise ValueError("the akd policy needs the objective's phase1_epochs and max_level")
    return AKDPolicy(params["phase1_epochs"], params["max_level"])


def _check(member: Any, path: str) -> None:
    if member.objective != "akd":
        raise ConfigError(f"{path}.temperature_policy: akd is Annealing KD's staircase, which only objective 'akd' takes; "
                          f"got objective {member.objective!r}")


register_policy(PolicySpec("akd", "Annealing KD", _create, check=_check, in_method_name=False,
                           needs_engine="anneals by epoch and ends with a hard-label phase the engine runs",
                           label=lambda member: f"{member.phase_one_epochs}+{member.epochs - member.phase_one_epochs}"))

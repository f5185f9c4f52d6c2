"""A fixed temperature: one T for the whole run (the study's grid)."""

from __future__ import annotations

from typing import Any

from .interface import PolicyDefaults
from .policies import FixedTemperature
from .registry import PolicySpec, register_policy


class FixedPolicy(PolicyDefaults):
    """One temperature for the whole run; nothing to log per step."""

    name = "fixed"

    def __init__(self, temperature: float) -> None:
        self.schedule = FixedTemperature(temperature)

    def current(self, batch: Any = None) -> float:
        return self.schedule.value

    def end_epoch(self) -> tuple[float, list[float]]:
        return float(self.schedule.value), []


register_policy(PolicySpec("fixed", "fixed T", lambda inputs: FixedPolicy(inputs.temperature), fixed=True, draws=None, in_method_name=False,
                           label=lambda member: f"T{member.effective_temperature:g}"))

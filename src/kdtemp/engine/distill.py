"""Distillation runs from one config: a base student, optional member variants and a temperature sweep."""

from __future__ import annotations

import copy

from dataclasses import dataclass, field
from typing import Any, Literal

from ..config import from_dict, require, set_path, to_dict
from .config import CohortConfig, MemberConfig, SharedConfig, member_config, require_temperature
from .tracking import LoggingConfig


@dataclass
class DistillConfig(SharedConfig):
    """One cohort: the shared part, a base ``student`` (a member), optional ``members`` (each a
    mapping of dotted overrides on the base) and optional ``temperatures`` (one member per T
    for each variant)."""

    student: MemberConfig = field(default_factory=MemberConfig)
    members: list[dict[str, Any]] = field(default_factory=list)
    temperatures: list[float] = field(default_factory=list)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp64"] = "auto"
    checkpoint_every: int = 1
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    output: str = "runs/distill"

    def validate(self, path: str = "") -> None:
        for index, value in enumerate(self.temperatures):
            require_temperature(value, f"temperatures[{index}]")
        self.cohort()

    def member_configs(self) -> list[MemberConfig]:
        base = to_dict(self.student)
        variants = self.members or [{}]
        result = []
        for index, overrides in enumerate(variants):
            path = f"members[{index}]" if self.members else "student"
            data = copy.deepcopy(base)
            for key, value in overrides.items():
                set_path(data, key.split("."), copy.deepcopy(value), f"{path}.{key}")
            for temperature in self.temperatures or [None]:
                if temperature is not None:
                    data = {**data, "temperature": temperature}
                result.append(from_dict(member_config(self.task), data, path).resolved())
        return result

    def cohort(self) -> CohortConfig:
        config = self.with_members(self.member_configs(), device=self.device, precision=self.precision,
                                   checkpoint_every=self.checkpoint_every, logging=self.logging)
        config.validate()
        return config


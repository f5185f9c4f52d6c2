"""Temperature policies registered by name, as objectives are: each policy's module defines its class
and registers a :class:`PolicySpec` beside it (what it is called in reports, how it is made from a
member's settings, which of the member's fields are its settings, how a run of it is labelled and
checked, whether it applies to token rows). The engine, the config and preflight ask the registry,
never which policy they hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from ..config import require
from ..objectives.registry import TEMPERATURE_RANGE


@dataclass(frozen=True)
class PolicyInputs:
    """What a member gives a policy to make it: its ``temperature`` (a fixed one's), its DTS
    settings ``dts`` (``initial``, ``minimum``, ``maximum``, ``momentum``), CTKD's curriculum length,
    the training set's size ``samples`` (one T per sample), the ``device`` of its state, and its
    objective's parameters with a two-phase run's ``phase1_epochs`` (Annealing KD reads its
    ``phase1_epochs`` and ``max_level``)."""

    temperature: float | None = None
    dts: Any = None
    ctkd_ramp_epochs: int = 10
    device: torch.device | str = "cpu"
    samples: int = 1
    objective_params: dict[str, Any] | None = None


@dataclass(frozen=True)
class PolicySpec:
    """A registered temperature policy.

    ``create(inputs)`` makes it (:class:`~kdtemp.temperature.interface.TemperaturePolicy`).
    ``settings``: the member's fields it reads besides ``temperature`` (a field of no policy a run
    uses is not part of its identity). ``fixed``: one temperature for the whole run, the member's
    ``temperature``. ``label(member)``: the part of a run's label that names its temperature
    (``T4``, ``dts[1,3]``). ``check(member, path)``: what the member must satisfy to use it (raises
    ``ConfigError``). ``no_token_form``: why it does not apply to a vocabulary's token rows, after its
    name (None: it does).

    What the report draws and says: ``draws`` the temperature figure's series of a run: ``steps``
    (every step's T, its ``temperature_trace``), ``epochs`` (each epoch's mean T from its curve),
    ``distribution`` (each epoch's per-sample quartiles) or nothing for a fixed one (drawn at its T);
    ``in_method_name``: whether a method's published name names the policy (``DTS [4, 8]``,
    ``DKD + CTKD``), after the objective's unless the objective is plain KD or the policy's own
    (``bounded`` adds DTS's ``[minimum, maximum]``)."""

    name: str
    display_name: str
    create: Callable[[PolicyInputs], Any]
    settings: tuple[str, ...] = ()
    fixed: bool = False
    label: Callable[[Any], str] | None = None
    check: Callable[[Any, str], None] | None = None
    no_token_form: str | None = None
    draws: str | None = "epochs"
    in_method_name: bool = True
    bounded: bool = False
    uses_gap: bool = False
    needs_engine: str | None = None


POLICIES: dict[str, PolicySpec] = {}


def register_policy(spec: PolicySpec) -> PolicySpec:
    """Register ``spec`` under its name (where the policy is defined)."""
    POLICIES[spec.name] = spec
    return spec


def get_policy(name: str) -> PolicySpec:
    """The registered policy called ``name``; ``ValueError`` naming the registered ones otherwise."""
    if name not in POLICIES:
        raise ValueError(f"unknown temperature policy {name!r}; allowed: {', '.join(POLICIES)}")
    return POLICIES[name]


def step_driven() -> tuple[str, ...]:
    """The registered policies a training loop of its own can drive (``needs_engine`` is None)."""
    return tuple(name for name, spec in POLICIES.items() if spec.needs_engine is None)


def policy_settings() -> set[str]:
    """Every member field that is some registered policy's setting."""
    return {name for spec in POLICIES.values() for name in spec.settings}


@dataclass(frozen=True)
class UsedTemperature:
    """What a run's temperature policy was, read from the run's stored description: the policy's
    name, its spec (None for one no longer registered: a store's run of a plug-in policy), the
    member's ``temperature`` (None when unset; it is the run's T only under a fixed policy) and a
    bounded policy's ``[minimum, maximum]``."""

    policy: str
    spec: PolicySpec | None
    temperature: float | None
    bounds: tuple[float, float] | None


def used_temperature(student: Mapping[str, Any]) -> UsedTemperature:
    """:class:`UsedTemperature` of a run from its stored ``student`` section (a member's settings as
    the store keeps them; older stores may lack fields)."""
    name = str(student.get("temperature_policy") or "fixed")
    spec = POLICIES.get(name)
    temperature = student.get("temperature")
    bounds = None
    dts = student.get("dts")
    if spec is not None and spec.bounded and isinstance(dts, Mapping) \
            and dts.get("minimum") is not None and dts.get("maximum") is not None:
        bounds = (float(dts["minimum"]), float(dts["maximum"]))
    return UsedTemperature(name, spec, None if temperature is None else float(temperature), bounds)


def require_temperature(value: float, path: str) -> None:
    """``ConfigError`` at ``path`` unless ``value`` lies in the range every objective is tested finite in."""
    low, high = TEMPERATURE_RANGE
    require(low <= value <= high, path,
            f"must be in [{low:g}, {high:g}] (the range every objective is tested finite in); got {value}")

"""Objectives by name: the registry's machinery (presets, specs, parameter rules, plug-ins).

Each objective registers itself beside its definition, in its own module of this package, with
:func:`register`: its name, summary, official preset, display name, the rules of *its* parameters,
whether it uses the label, and what it needs from the dataset. This module knows none of them
(it imports no objective module); ``kdtemp.objectives`` imports every module of the package.

Every registered objective is called as ``objective(student, teacher, target, temperature)``
and returns a scalar. ``target`` is the **dominant** class index per sample (the label with
the larger MixUp/CutMix weight); objectives that use no label ignore it.

Two loss weightings are first-class (the run records which one it used):

* ``"protocol"``: the study protocol, teacher matching only (CE 0, KD 1, no warm-up);
* ``"official"``: the authors' own CE weight, KD weight, warm-up and default temperature.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from torch import Tensor


@dataclass(frozen=True)
class Preset:
    """Loss weighting of a run: ``w_ce * CE + w_kd * warmup(epoch) * L_objective``.

    ``temperature`` is the preset's default temperature (``None``: taken from the run).
    ``warmup_epochs = 0`` means no warm-up; otherwise ``warmup(e) = min(e / E_w, 1)``
    with 1-based epochs.
    """

    ce_weight: float
    kd_weight: float
    warmup_epochs: int = 0
    temperature: float | None = None

    def warmup(self, epoch: int) -> float:
        """``min(epoch / E_w, 1)`` for 1-based ``epoch`` (1.0 without warm-up)."""
        if self.warmup_epochs <= 0:
            return 1.0
        return min(epoch / self.warmup_epochs, 1.0)


PROTOCOL = Preset(ce_weight=0.0, kd_weight=1.0, warmup_epochs=0, temperature=None)
"""The study protocol: teacher matching only."""

TEMPERATURE_RANGE = (0.1, 100.0)
"""Temperatures kdtemp accepts: the range in which every objective is tested finite."""


@dataclass(frozen=True)
class ParameterRule:
    """What values one objective's hyper-parameter takes: a kind and an allowed range.

    Rules belong to one objective (DKD's ``alpha`` and DTKD's ``alpha`` are two rules): create a
    new one per parameter rather than sharing an instance between objectives.
    """

    kind: str  # "number", "integer" or "numbers" (a non-empty list of numbers)
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    optional: bool = False
    high_open: bool = False

    def allowed(self) -> str:
        noun = {"number": "a number", "integer": "an integer", "numbers": "a non-empty list of numbers"}[self.kind]
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        text = noun + (f" {' and '.join(bounds)}" if bounds else "")
        return text + (" or null" if self.optional else "")

    def check(self, value: Any) -> Any:
        """``value`` normalised (ints to floats for numbers, lists to tuples); ``ValueError`` if not allowed."""
        if value is None and self.optional:
            return None
        if self.kind == "numbers":
            if not isinstance(value, (list, tuple)) or not value:
                raise ValueError(f"must be {self.allowed()}; got {value!r}")
            return tuple(self._scalar("number", v) for v in value)
        return self._scalar(self.kind, value)

    def _scalar(self, kind: str, value: Any) -> Any:
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or (kind == "integer" and not isinstance(value, int)):
            raise ValueError(f"must be {self.allowed()}; got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"must be {self.allowed()}; got {value!r}")
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if below or above:
            raise ValueError(f"must be {self.allowed()}; got {value!r}")
        return value if kind == "integer" else float(value)


@dataclass(frozen=True)
class ObjectiveSpec:
    """A registered objective: its loss, default hyper-parameters, their rules and official preset.

    ``loss(s, t, y, T, **params)``: the adapter called by :class:`Objective`.
    ``display_name``: how reports name it (the raw ``name`` when empty).
    ``parameters``: the rule of each hyper-parameter (everything after ``(s, t, y, T)``);
    a plug-in objective has none and checks its own values.
    ``monitor(s, t, y, T)``: counts worth logging per step, as 0-dim tensors (DTKD's samples that
    fell back to the reference temperature); the engine sums them per epoch on the device.
    ``dataset_constants(teacher_logits, T, **params)``: parameters computed once from the
    teacher's logits on the un-augmented training split (``ls_global``'s coefficient, Energy KD's
    thresholds), needed while the parameters it returns are null.
    ``phase_one(params, epochs)``: for a two-phase objective (Annealing KD), how many of the run's
    ``epochs`` its distillation phase lasts; the run then trains on the hard labels alone, from its best epoch of
    phase one by the task's primary metric, with a fresh optimizer and schedule.
    ``check_run(params, epochs)``: what the objective needs of the run as a whole (AKD: a phase
    one of at least ``max_level`` epochs and a phase two), ``ValueError("<param>: ...")`` if not.
    ``no_token_form``: why the objective does not apply to the token rows of a language model
    (its value couples the rows of a batch, needs dataset-level constants, or draws random numbers
    that a chunked recomputation would draw again); empty when it is row-wise and applies.
    """

    name: str
    summary: str
    loss: Callable[..., Tensor]
    official: Preset
    uses_label: bool
    temperature_policy: str = "fixed"
    notes: str = ""
    monitor: Callable[..., dict[str, Tensor]] | None = None
    dataset_constants: Callable[..., dict[str, Any]] | None = None
    display_name: str = ""
    parameters: Mapping[str, ParameterRule] = field(default_factory=dict)
    phase_one: Callable[[Mapping[str, Any], int], int] | None = None
    check_run: Callable[[Mapping[str, Any], int], None] | None = None
    no_token_form: str = ""

    def __post_init__(self) -> None:
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)

    @property
    def defaults(self) -> dict[str, Any]:
        """Hyper-parameters and their defaults (everything after ``(s, t, y, T)``)."""
        params = list(inspect.signature(self.loss).parameters.values())[4:]
        return {p.name: p.default for p in params}

    def check(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` checked against this objective's rules (normalised), not merged with the defaults.

        ``ValueError("<param>: not a parameter of ...")`` for an unknown name and
        ``ValueError("<param>: must be ...; got ...")`` for a value its rule refuses.
        """
        defaults = self.defaults
        checked = {}
        for key, value in params.items():
            if key not in defaults:
                raise ValueError(f"{key}: not a parameter of {self.name!r}; allowed: {', '.join(defaults) or 'none'}")
            rule = self.parameters.get(key)
            if rule is None:  # a plug-in checks its own parameters
                checked[key] = value
                continue
            try:
                checked[key] = rule.check(value)
            except ValueError as error:
                raise ValueError(f"{key}: {error}") from None
        return checked


@dataclass(frozen=True)
class Objective:
    """An objective with its hyper-parameters bound: ``objective(s, t, y, T) -> scalar``."""

    spec: ObjectiveSpec
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def __call__(self, student: Tensor, teacher: Tensor, target: Tensor, temperature: Any) -> Tensor:
        return self.spec.loss(student, teacher, target, temperature, **self.params)


OBJECTIVES: dict[str, ObjectiveSpec] = {}
"""Every registered objective by name, in registration order (``kdtemp.objectives`` fixes the
built-in modules' order; see its ``BUILTIN_MODULES``)."""

Loss = TypeVar("Loss", bound=Callable[..., Tensor])


def register(
    name: str,
    *,
    summary: str,
    official: Preset,
    display_name: str,
    uses_label: bool,
    parameters: Mapping[str, ParameterRule] | None = None,
    temperature_policy: str = "fixed",
    notes: str = "",
    monitor: Callable[..., dict[str, Tensor]] | None = None,
    dataset_constants: Callable[..., dict[str, Any]] | None = None,
    phase_one: Callable[[Mapping[str, Any], int], int] | None = None,
    check_run: Callable[[Mapping[str, Any], int], None] | None = None,
    no_token_form: str = "",
) -> Callable[[Loss], Loss]:
    """Decorator registering ``loss(s, t, y, T, **params)`` as the objective ``name``; returns ``loss``.

    ``parameters`` gives the rule of every hyper-parameter of ``loss`` (each with a default that
    its rule accepts), and no other. ``ValueError`` for a name already registered or a plug-in
    name (``package.module:loss``), a hyper-parameter without a default or without a rule, or a
    rule for a parameter ``loss`` does not take.
    """

    def decorate(loss: Loss) -> Loss:
        register_spec(ObjectiveSpec(name, summary, loss, official, uses_label, temperature_policy=temperature_policy,
                                    notes=notes, monitor=monitor, dataset_constants=dataset_constants,
                                    display_name=display_name, parameters=dict(parameters or {}),
                                    phase_one=phase_one, check_run=check_run, no_token_form=no_token_form))
        return loss

    return decorate


def register_spec(spec: ObjectiveSpec) -> ObjectiveSpec:
    """Add ``spec`` to :data:`OBJECTIVES` after checking it (see :func:`register`)."""
    where = f"objective {spec.name!r}"
    if not spec.name or ":" in spec.name:
        raise ValueError(f"{where}: a registered name is non-empty and has no ':' (that names a plug-in)")
    if spec.name in OBJECTIVES:
        raise ValueError(f"{where} is already registered")
    signature = list(inspect.signature(spec.loss).parameters.values())
    if len(signature) < 4:
        raise ValueError(f"{where}: its loss must be loss(student, teacher, target, temperature, **params)")
    missing_default = [p.name for p in signature[4:] if p.default is inspect.Parameter.empty]
    if missing_default:
        raise ValueError(f"{where}: every hyper-parameter needs a default; {', '.join(missing_default)} has none")
    names = [p.name for p in signature[4:]]
    without_rule = [n for n in names if n not in spec.parameters]
    if without_rule:
        raise ValueError(f"{where}: no parameter rule for {', '.join(without_rule)}")
    unknown = [n for n in spec.parameters if n not in names]
    if unknown:
        raise ValueError(f"{where}: parameter rules for {', '.join(unknown)}, which its loss does not take")
    spec.check(spec.defaults)  # every default is a value its rule allows
    OBJECTIVES[spec.name] = spec
    return spec


def check_parameters(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` of objective ``name`` checked by that objective's rules and merged over its defaults.

    Raises ``ValueError("<param>: must be ...; got ...")`` for an unknown name, a wrong type
    or a value out of range (e.g. DKD ``beta: -8``).
    """
    spec = get_spec(name)
    return {**spec.defaults, **spec.check(params)}


def get_spec(name: str) -> ObjectiveSpec:
    """The registered spec called ``name``, or a plug-in objective ``package.module:loss`` (see
    :mod:`kdtemp.plugins`); ``ValueError`` naming the allowed ones otherwise."""
    if name in OBJECTIVES:
        return OBJECTIVES[name]
    if ":" in name:
        return _plugin_spec(name)
    raise ValueError(f"unknown objective {name!r}; allowed: {', '.join(sorted(OBJECTIVES))} or a plug-in "
                     "package.module:loss")


def display_name_of(name: str) -> str:
    """How reports name objective ``name``: its registered display name, else ``name`` itself
    (an unknown or plug-in name; a plug-in is never imported for its name)."""
    spec = OBJECTIVES.get(name)
    return spec.display_name if spec is not None else name


def _plugin_spec(name: str) -> ObjectiveSpec:
    from ..config import ConfigError
    from ..plugins import load

    try:
        loss = load(name, "objective", "objective")
    except ConfigError as error:
        raise ValueError(str(error).split(": ", 1)[1]) from None
    parameters = list(inspect.signature(loss).parameters.values())
    if len(parameters) < 4 or any(p.default is inspect.Parameter.empty for p in parameters[4:]):
        raise ValueError(f"the plug-in objective {name!r} must be loss(student, teacher, target, temperature, "
                         "**params) with a default for every hyper-parameter")
    official = getattr(loss, "official", None)
    return ObjectiveSpec(name, (loss.__doc__ or name).strip().splitlines()[0], loss,
                         official if isinstance(official, Preset) else PROTOCOL, uses_label=True,
                         notes="a plug-in objective")


def create_objective(name: str, **params: Any) -> Objective:
    """Create the objective ``name`` with hyper-parameters ``params``, checked by its own rules.

    ``ValueError`` for a parameter it does not take (``objective 'dkd' has no parameter 'gamma'``)
    or a value its rule refuses (``objective 'dkd': beta: must be a number >= 0; got -8``).
    """
    spec = get_spec(name)
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        allowed = ", ".join(sorted(spec.defaults)) or "none"
        raise ValueError(f"objective {name!r} has no parameter {unknown[0]!r}; allowed: {allowed}")
    try:
        checked = spec.check(params)
    except ValueError as error:
        raise ValueError(f"objective {name!r}: {error}") from None
    return Objective(spec, checked)


def preset(name: str, setting: str = "protocol") -> Preset:
    """The loss weighting of objective ``name`` under ``setting`` (``"protocol"`` or ``"official"``)."""
    spec = get_spec(name)
    if setting == "protocol":
        return PROTOCOL
    if setting == "official":
        return spec.official
    raise ValueError(f"unknown preset setting {setting!r}; allowed: official, protocol")

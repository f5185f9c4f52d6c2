"""Objectives by name: hyper-parameters, the authors' official presets and the study protocol.

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
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from .ats import ats_loss
from .dist import dist_loss
from .dkd import dkd_loss, dkd_parts
from .dtkd import dtkd_loss
from .energy import energy_kd_loss
from .entropy_adaptive import entropy_weights
from .kd import kd_loss
from .mlkd import mlkd_loss
from .normkd import normkd_dkd_loss, normkd_loss
from .rld import rld_loss
from .standardize import standardize_logits
from .ttm import ttm_loss


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

MLKD_RELATIVE_TEMPERATURES = (1.0, 0.75, 1.25, 0.5, 1.5)
ENERGY_RELATIVE_TEMPERATURES = (0.5, 1.0, 1.5)
"""Energy KD's (low, middle, high) temperatures relative to the run's T: the authors' (2, 4, 6) at T = 4."""


def _kd(s: Tensor, t: Tensor, y: Tensor, T: Any) -> Tensor:
    return kd_loss(s, t, T)


def _dkd(s: Tensor, t: Tensor, y: Tensor, T: Any, alpha: float = 1.0, beta: float = 8.0) -> Tensor:
    return dkd_loss(s, t, y, T, alpha=alpha, beta=beta)


def _ea_kd(s: Tensor, t: Tensor, y: Tensor, T: Any, ea_temperature: float = 3.0, entropy_bound: float | None = None) -> Tensor:
    weights = entropy_weights(s, t, ea_temperature, entropy_bound)
    return (weights * kd_loss(s, t, T, reduction="none")).mean()


def _ea_dkd(
    s: Tensor,
    t: Tensor,
    y: Tensor,
    T: Any,
    alpha: float = 1.0,
    beta: float = 8.0,
    ea_temperature: float = 3.0,
    entropy_bound: float | None = None,
) -> Tensor:
    weights = entropy_weights(s, t, ea_temperature, entropy_bound)
    tckd, nckd = dkd_parts(s, t, y, T)
    return (weights * (alpha * tckd + beta * nckd)).mean()


def _ls_kd(s: Tensor, t: Tensor, y: Tensor, T: Any, eps: float = 1e-7) -> Tensor:
    return kd_loss(standardize_logits(s, eps), standardize_logits(t, eps), T)


def _ls_dkd(s: Tensor, t: Tensor, y: Tensor, T: Any, alpha: float = 1.0, beta: float = 8.0, eps: float = 1e-7) -> Tensor:
    return dkd_loss(standardize_logits(s, eps), standardize_logits(t, eps), y, T, alpha=alpha, beta=beta)


def _dist(s: Tensor, t: Tensor, y: Tensor, T: Any, beta: float = 1.0, gamma: float = 1.0) -> Tensor:
    return dist_loss(s, t, T, beta=beta, gamma=gamma)


def _rld(
    s: Tensor, t: Tensor, y: Tensor, T: Any, alpha: float = 1.0, beta: float = 8.0, alpha_temperature: float | None = None
) -> Tensor:
    return rld_loss(s, t, y, T, alpha=alpha, beta=beta, alpha_temperature=alpha_temperature)


def _mlkd(s: Tensor, t: Tensor, y: Tensor, T: Any, relative_temperatures: tuple = MLKD_RELATIVE_TEMPERATURES) -> Tensor:
    return mlkd_loss(s, t, tuple(T * r for r in relative_temperatures))


def _ttm(s: Tensor, t: Tensor, y: Tensor, T: Any) -> Tensor:
    return ttm_loss(s, t, T)


def _wttm(s: Tensor, t: Tensor, y: Tensor, T: Any) -> Tensor:
    return ttm_loss(s, t, T, weighted=True)


def _normkd(s: Tensor, t: Tensor, y: Tensor, T: Any) -> Tensor:
    return normkd_loss(s, t, T)


def _normkd_dkd(s: Tensor, t: Tensor, y: Tensor, T: Any, alpha: float = 1.0, beta: float = 8.0) -> Tensor:
    return normkd_dkd_loss(s, t, y, T, alpha=alpha, beta=beta)


def _ats(s: Tensor, t: Tensor, y: Tensor, T: Any, target_ratio: float = 2.0) -> Tensor:
    return ats_loss(s, t, y, T, target_ratio=target_ratio)


def _dtkd(s: Tensor, t: Tensor, y: Tensor, T: Any, alpha: float = 3.0, beta: float = 1.0) -> Tensor:
    # The authors' KD term: warmup * (alpha * DTKD + beta * KD(T)) + CE, with alpha 3 and beta 1.
    return alpha * dtkd_loss(s, t, T) + beta * kd_loss(s, t, T)


def _energy_kd(
    s: Tensor,
    t: Tensor,
    y: Tensor,
    T: Any,
    low: float | None = None,
    high: float | None = None,
    low_rate: float = 0.2,
    high_rate: float = 0.2,
) -> Tensor:
    # low_rate and high_rate are read by whoever computes the thresholds, not here.
    if low is None or high is None:
        raise ValueError("energy_kd needs its energy thresholds low and high (computed from one teacher pass over "
                         "the un-augmented training split with low_rate and high_rate; see "
                         "kdtemp.objectives.energy_scores and energy_thresholds)")
    return energy_kd_loss(s, t, low, high, tuple(T * r for r in ENERGY_RELATIVE_TEMPERATURES))


def _dtkd_monitor(s: Tensor, t: Tensor, y: Tensor, T: Any, **params: Any) -> dict[str, Tensor]:
    from .dtkd import dtkd_temperatures

    with torch.no_grad():
        return {"dtkd_guarded_samples": dtkd_temperatures(s, t, T)[2].sum()}


def _energy_constants(teacher: Tensor, T: Any, low_rate: float = 0.2, high_rate: float = 0.2, **params: Any) -> dict:
    from .energy import energy_scores, energy_thresholds

    low, high = energy_thresholds(energy_scores(teacher), low_rate, high_rate)
    return {"low": low, "high": high}


def _ls_global_constants(teacher: Tensor, T: Any, **params: Any) -> dict:
    from ..signals import global_smoothing_coefficient

    return {"coefficient": global_smoothing_coefficient(teacher, T)}


def _ls_instance(s: Tensor, t: Tensor, y: Tensor, T: Any) -> Tensor:
    from ..signals import distill_to_targets, instance_label_smoothing

    return distill_to_targets(s, instance_label_smoothing(t, T), T)


def _ls_global(s: Tensor, t: Tensor, y: Tensor, T: Any, coefficient: float | None = None) -> Tensor:
    from ..signals import distill_to_targets, global_label_smoothing

    if coefficient is None:
        raise ValueError("ls_global needs its coefficient (the engine computes it from the teacher on the "
                         "un-augmented training set; see kdtemp.signals.global_smoothing_coefficient)")
    return distill_to_targets(s, global_label_smoothing(t, coefficient), T)


def _shuffled_tail(s: Tensor, t: Tensor, y: Tensor, T: Any, keep_top: int = 1) -> Tensor:
    from ..signals import distill_to_targets, shuffled_tail

    return distill_to_targets(s, shuffled_tail(t, T, keep_top), T)


@dataclass(frozen=True)
class ObjectiveSpec:
    """A registered objective: its loss, default hyper-parameters and official preset.

    ``monitor(s, t, y, T)``: counts worth logging per step, as 0-dim tensors (DTKD's samples that
    fell back to the reference temperature); the engine sums them per epoch on the device.
    ``dataset_constants(teacher_logits, T, **params)``: parameters computed once from the
    teacher's logits on the un-augmented training split (``ls_global``'s coefficient, Energy KD's
    thresholds), needed while the parameters it returns are null.
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

    @property
    def defaults(self) -> dict[str, Any]:
        """Hyper-parameters and their defaults (everything after ``(s, t, y, T)``)."""
        params = list(inspect.signature(self.loss).parameters.values())[4:]
        return {p.name: p.default for p in params}


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


OBJECTIVES: dict[str, ObjectiveSpec] = {
    spec.name: spec
    for spec in (
        ObjectiveSpec("kd", "shared fixed-temperature KD, T^2 KL(p_t || p_s)", _kd,
                      Preset(0.1, 0.9, 0, 4.0), uses_label=False,
                      notes="Official preset is the common CIFAR recipe (CE 0.1, KD 0.9, T 4)."),
        ObjectiveSpec("dkd", "Decoupled KD: alpha TCKD + beta NCKD", _dkd,
                      Preset(1.0, 1.0, 20, 4.0), uses_label=True),
        ObjectiveSpec("ea_kd", "entropy-adaptive KD: per-sample entropy weights on KD", _ea_kd,
                      Preset(0.1, 0.9, 0, 4.0), uses_label=False,
                      notes="Weights computed at ea_temperature; host preset is KD's."),
        ObjectiveSpec("ea_dkd", "entropy-adaptive DKD: per-sample entropy weights on DKD", _ea_dkd,
                      Preset(1.0, 1.0, 20, 4.0), uses_label=True,
                      notes="Host preset is DKD's."),
        ObjectiveSpec("ctkd", "curriculum temperature KD: KD at a learnable, adversarial T", _kd,
                      Preset(0.1, 0.9, 0, None), uses_label=False, temperature_policy="ctkd",
                      notes="T = 1 + 20 sigmoid(theta) is learned; a run's fixed temperature is ignored."),
        ObjectiveSpec("ls_kd", "logit standardization, then KD at a base temperature", _ls_kd,
                      Preset(0.1, 9.0, 0, 2.0), uses_label=False),
        ObjectiveSpec("ls_dkd", "logit standardization, then DKD at a base temperature", _ls_dkd,
                      Preset(1.0, 1.0, 20, 2.0), uses_label=True,
                      notes="kdtemp's choice: DKD's preset at the standardization base temperature 2."),
        ObjectiveSpec("mlkd", "multi-level KD: instance, batch and class levels over five temperatures", _mlkd,
                      Preset(0.1, 0.9, 0, 4.0), uses_label=False,
                      notes="Temperatures are T x (1, .75, 1.25, .5, 1.5): the authors' (4, 3, 5, 2, 6) at T = 4. "
                            "Single augmented view, no confidence mask."),
        ObjectiveSpec("rld", "refined logit distillation: sample confidence + masked correlation", _rld,
                      Preset(1.0, 1.0, 20, 4.0), uses_label=True),
        ObjectiveSpec("dist", "DIST: inter- and intra-class Pearson correlation", _dist,
                      Preset(1.0, 2.0, 0, 4.0), uses_label=False),
        # The other temperature methods of the literature: T is the study's temperature axis.
        ObjectiveSpec("ttm", "transformed teacher matching: KL(p(t,T) || p(s,1)), no T^2", _ttm,
                      Preset(1.0, 45.0, 0, 10.0), uses_label=False,
                      notes="T softens the teacher only (gamma = 1/T). Preset: the authors' CIFAR example "
                            "(gamma 0.1, CE 1, KD 45)."),
        ObjectiveSpec("wttm", "weighted TTM: TTM times U_i = sum_c p(t_i,1)_c^(1/T)", _wttm,
                      Preset(1.0, 45.0, 0, 10.0), uses_label=False,
                      notes="U_i lies in [1, C^(1-1/T)], so the loss scale grows with C. Preset: TTM's."),
        ObjectiveSpec("normkd", "NormKD: per-sample temperatures T * std(logits), T_t^2 KL", _normkd,
                      Preset(0.1, 0.9, 0, 2.0), uses_label=False,
                      notes="T multiplies each model's unbiased logit std; the student's std is not detached."),
        ObjectiveSpec("normkd_dkd", "NormKD + DKD: T_t^2 (alpha TCKD + beta NCKD) on normalised logits", _normkd_dkd,
                      Preset(1.0, 1.0, 20, 2.0), uses_label=True,
                      notes="alpha + beta = 9 in the authors' configs (1, 8 by default; per pair otherwise)."),
        ObjectiveSpec("ats", "asymmetric temperature scaling: teacher at target_ratio * T on y, T elsewhere", _ats,
                      Preset(0.5, 0.5, 0, 2.0), uses_label=True,
                      notes="Student at T = 1, no T^2; KL form (the authors' code returns soft CE: same gradient)."),
        ObjectiveSpec("dtkd", "dynamic temperature KD: alpha DTKD(T) + beta KD(T)", _dtkd,
                      Preset(1.0, 1.0, 20, 4.0), uses_label=False, monitor=_dtkd_monitor,
                      notes="T is the reference temperature; the authors' total is "
                            "warmup(e, 20) (3 DTKD + 1 KD) + 1 CE. Samples with a non-positive maximum logit "
                            "use T for both models (dtkd_parts counts them)."),
        ObjectiveSpec("energy_kd", "energy KD: temperature (T/2, T, 3T/2) by the teacher's energy", _energy_kd,
                      Preset(0.1, 0.9, 0, 4.0), uses_label=False, dataset_constants=_energy_constants,
                      notes="low, high: dataset-level energy thresholds, computed from one teacher pass over the "
                            "un-augmented training split; confident (low-energy) samples get T/2, as in the code."),
        # Teacher-signal ablations (the study's Fig. 5): KD toward a modified teacher distribution.
        ObjectiveSpec("ls_instance", "KD toward per-instance entropy-matched label smoothing of the teacher's argmax",
                      _ls_instance, PROTOCOL, uses_label=False),
        ObjectiveSpec("ls_global", "KD toward one entropy-matched label smoothing for the whole training set",
                      _ls_global, PROTOCOL, uses_label=False, dataset_constants=_ls_global_constants,
                      notes="coefficient: computed by the engine from the teacher on the un-augmented training set."),
        ObjectiveSpec("shuffled_tail", "KD toward the teacher with its bottom C - k probabilities randomly permuted",
                      _shuffled_tail, PROTOCOL, uses_label=False,
                      notes="Draws from the global RNG, which the engine keeps per member."),
    )
}


TEMPERATURE_RANGE = (0.1, 100.0)
"""Temperatures kdtemp accepts: the range in which every objective is tested finite."""


@dataclass(frozen=True)
class ParameterRule:
    """What values an objective hyper-parameter takes: a kind and an allowed range."""

    kind: str  # "number", "integer" or "numbers" (a non-empty list of numbers)
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    optional: bool = False

    def allowed(self) -> str:
        noun = {"number": "a number", "integer": "an integer", "numbers": "a non-empty list of numbers"}[self.kind]
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
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
        above = self.high is not None and value > self.high
        if below or above:
            raise ValueError(f"must be {self.allowed()}; got {value!r}")
        return value if kind == "integer" else float(value)


_T_LOW, _T_HIGH = TEMPERATURE_RANGE
PARAMETER_RULES: dict[str, ParameterRule] = {
    "alpha": ParameterRule("number", 0.0),
    "beta": ParameterRule("number", 0.0),
    "gamma": ParameterRule("number", 0.0),
    "ea_temperature": ParameterRule("number", _T_LOW, _T_HIGH),
    "alpha_temperature": ParameterRule("number", _T_LOW, _T_HIGH, optional=True),
    "entropy_bound": ParameterRule("number", 0.0, low_open=True, optional=True),
    "eps": ParameterRule("number", 0.0, 1.0, low_open=True),
    "coefficient": ParameterRule("number", 0.0, 1.0, optional=True),
    "keep_top": ParameterRule("integer", 0),
    "relative_temperatures": ParameterRule("numbers", 0.0, low_open=True),
    "target_ratio": ParameterRule("number", 0.0, low_open=True),
    "low": ParameterRule("number", optional=True),
    "high": ParameterRule("number", optional=True),
    "low_rate": ParameterRule("number", 0.0, 0.5),
    "high_rate": ParameterRule("number", 0.0, 0.5),
}
"""The allowed values of every registered objective's hyper-parameters, by name."""


def check_parameters(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` of objective ``name`` checked and merged over its defaults.

    Raises ``ValueError("<param>: must be ...; got ...")`` for an unknown name, a wrong type
    or a value out of range (e.g. DKD ``beta: -8``).
    """
    spec = get_spec(name)
    merged = dict(spec.defaults)
    for key, value in params.items():
        if key not in spec.defaults:
            raise ValueError(f"{key}: not a parameter of {name!r}; allowed: {', '.join(spec.defaults) or 'none'}")
        if key not in PARAMETER_RULES or name not in OBJECTIVES:  # a plug-in checks its own parameters
            merged[key] = value
            continue
        try:
            merged[key] = PARAMETER_RULES[key].check(value)
        except ValueError as error:
            raise ValueError(f"{key}: {error}") from None
    return merged


def get_spec(name: str) -> ObjectiveSpec:
    """The registered spec called ``name``, or a plug-in objective ``package.module:loss`` (see
    :mod:`kdtemp.plugins`); ``ValueError`` naming the allowed ones otherwise."""
    if name in OBJECTIVES:
        return OBJECTIVES[name]
    if ":" in name:
        return _plugin_spec(name)
    raise ValueError(f"unknown objective {name!r}; allowed: {', '.join(sorted(OBJECTIVES))} or a plug-in "
                     "package.module:loss")


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
    """Create the objective ``name`` with hyper-parameters ``params`` (checked against its defaults)."""
    spec = get_spec(name)
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        allowed = ", ".join(sorted(spec.defaults)) or "none"
        raise ValueError(f"objective {name!r} has no parameter {unknown[0]!r}; allowed: {allowed}")
    return Objective(spec, dict(params))


def preset(name: str, setting: str = "protocol") -> Preset:
    """The loss weighting of objective ``name`` under ``setting`` (``"protocol"`` or ``"official"``)."""
    spec = get_spec(name)
    if setting == "protocol":
        return PROTOCOL
    if setting == "official":
        return spec.official
    raise ValueError(f"unknown preset setting {setting!r}; allowed: official, protocol")


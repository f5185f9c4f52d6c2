"""Configuration of teacher preparation and cohort distillation (dataclasses are the schema)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Mapping

from ..config import ConfigError, require, to_dict
from ..objectives import get_spec
from ..tasks import DEFAULT_TASK, TASKS
from .tracking import LoggingConfig
from ..objectives.registry import PROTOCOL, TEMPERATURE_RANGE, Preset, check_parameters
from ..temperature import POLICIES, get_policy
from ..temperature.dts import DTSConfig
from ..temperature.registry import policy_settings, require_temperature

# The sections a run of the default task (image classification) has, as its registration declares them;
# a run of another task gets its own through :meth:`SharedConfig.field_types`.
DataConfig = TASKS[DEFAULT_TASK].data_config
AugmentConfig = TASKS[DEFAULT_TASK].augment_config
ModelConfig = TASKS[DEFAULT_TASK].model_config

DEFAULT_TEMPERATURE = 4.0
"""The temperature of a run that names none (and whose objective's official preset names none)."""

SEED_RANGE = (0, 2**32 - 1)


def require_seed(value: int, path: str) -> None:
    """Seeds are integers in ``[0, 2**32 - 1]`` (what every RNG kdtemp seeds accepts)."""
    require(SEED_RANGE[0] <= value <= SEED_RANGE[1], path, f"must be in [0, 2**32 - 1]; got {value}")


@dataclass
class OptimizerConfig:
    """AdamW, or SGD with momentum; a learning-rate schedule; per-tensor gradient clipping.

    ``schedule``: ``cosine`` (the study's half-period cosine decay over the run, per step) or
    ``step`` (the classic CIFAR KD recipe: the rate is multiplied by ``gamma`` at each epoch in
    ``milestones``, e.g. 150, 180 and 210 of 240). ``lr_warmup_epochs``: a linear warm-up of the
    rate from 0 over that many epochs (per step) before the schedule. Weight decay applies to
    weight matrices and kernels (ndim >= 2) and to CTKD's temperature parameter, not to biases
    and normalisation parameters.
    """

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    clip_norm: float | None = 1.0
    schedule: Literal["cosine", "step"] = "cosine"
    milestones: list[int] = field(default_factory=lambda: [150, 180, 210])
    gamma: float = 0.1
    lr_warmup_epochs: int = 0

    def validate(self, path: str = "optimizer") -> None:
        require(self.lr > 0, f"{path}.lr", f"must be > 0; got {self.lr}")
        require(self.weight_decay >= 0, f"{path}.weight_decay", f"must be >= 0; got {self.weight_decay}")
        require(0 <= self.momentum < 1, f"{path}.momentum", f"must be in [0, 1); got {self.momentum}")
        require(self.clip_norm is None or self.clip_norm > 0, f"{path}.clip_norm", f"must be > 0 or null; got {self.clip_norm}")
        require(0 < self.gamma <= 1, f"{path}.gamma", f"must be in (0, 1]; got {self.gamma}")
        require(self.lr_warmup_epochs >= 0, f"{path}.lr_warmup_epochs", f"must be >= 0; got {self.lr_warmup_epochs}")
        require(all(m >= 1 for m in self.milestones) and self.milestones == sorted(set(self.milestones)),
                f"{path}.milestones", f"must be increasing epochs >= 1; got {self.milestones}")

    def unused_fields(self) -> set[str]:
        unused = {"momentum", "nesterov"} if self.name == "adamw" else set()
        return unused | ({"milestones", "gamma"} if self.schedule == "cosine" else set())


@dataclass
class MemberConfig:
    """One student of a cohort: everything that may differ between members.

    ``objective: null`` trains with cross-entropy only (teacher preparation). The loss is
    ``w_ce * CE(s, y_soft) + w_kd * warmup(epoch) * objective(s, t, y_dominant, T)``; ``loss_preset``
    picks the weights (``protocol``: CE 0, KD 1; ``official``: the objective's authors'), and
    ``ce_weight`` / ``kd_weight`` / ``warmup_epochs`` override single values.

    ``temperature: null`` (the default) means the official preset's temperature under
    ``loss_preset: official`` (e.g. 2 for ``ls_kd``), else 4. A temperature given explicitly
    always wins. DTS, CTKD and AKD set the temperature themselves and ignore this field.

    A two-phase objective (``akd``, Annealing KD) trains ``objective_params.phase1_epochs`` epochs
    (by default two thirds of ``epochs``) of its distillation phase and the rest of ``epochs`` on the hard labels alone, from its best
    phase-1 epoch, with a fresh optimizer and schedule; ``optimizer``'s schedule applies to each
    phase scaled to its length (a milestone ``m`` of the run's ``epochs`` falls ``floor(m * L /
    epochs)`` epochs into a phase of ``L``; likewise the warm-up), and ``label_smoothing`` to phase 2.
    """

    name: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: str | None = "kd"
    objective_params: dict[str, Any] = field(default_factory=dict)
    temperature: float | None = None
    temperature_policy: str = "fixed"  # a registered policy (kdtemp.temperature.POLICIES)
    dts: DTSConfig = field(default_factory=DTSConfig)
    ctkd_ramp_epochs: int = 10
    loss_preset: Literal["protocol", "official"] = "protocol"
    ce_weight: float | None = None
    kd_weight: float | None = None
    warmup_epochs: int | None = None
    label_smoothing: float = 0.0
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    epochs: int = 64
    seed: int = 0
    task_sections: ClassVar[tuple[str, ...]] = ()
    """The member sections its task adds (:attr:`kdtemp.tasks.base.Task.member_sections`)."""

    def validate(self, path: str = "member") -> None:
        require(self.temperature_policy in POLICIES, f"{path}.temperature_policy",
                f"{self.temperature_policy!r} is not allowed; allowed: {' | '.join(repr(name) for name in POLICIES)}")
        require(self.epochs >= 1, f"{path}.epochs", f"must be >= 1; got {self.epochs}")
        if self.temperature is not None:
            require_temperature(self.temperature, f"{path}.temperature")
        require(0 <= self.label_smoothing < 1, f"{path}.label_smoothing", f"must be in [0, 1); got {self.label_smoothing}")
        require(self.ctkd_ramp_epochs >= 1, f"{path}.ctkd_ramp_epochs", f"must be >= 1; got {self.ctkd_ramp_epochs}")
        require_seed(self.seed, f"{path}.seed")
        for name in ("ce_weight", "kd_weight", "warmup_epochs"):
            value = getattr(self, name)
            require(value is None or 0 <= value < float("inf"), f"{path}.{name}", f"must be >= 0 and finite; got {value}")
        require(self.optimizer.lr_warmup_epochs < self.epochs or self.optimizer.lr_warmup_epochs == 0,
                f"{path}.optimizer.lr_warmup_epochs", f"must be shorter than the run ({self.epochs} epochs); "
                f"got {self.optimizer.lr_warmup_epochs}")
        if self.objective is not None:
            try:
                get_spec(self.objective)
            except ValueError as error:
                raise ConfigError(f"{path}.objective: {error}") from None
            try:
                self.objective_params = {k: v for k, v in check_parameters(self.objective, self.objective_params).items()
                                         if k in self.objective_params}
            except ValueError as error:
                raise ConfigError(f"{path}.objective_params.{error}") from None
            spec = get_spec(self.objective)
            if spec.temperature_policy != "fixed":
                require(self.temperature_policy == spec.temperature_policy, f"{path}.temperature_policy",
                        f"objective {self.objective!r} needs temperature_policy: {spec.temperature_policy}; "
                        f"got {self.temperature_policy}")
            policy = get_policy(self.temperature_policy)
            if policy.check is not None:  # what the policy asks of its member (dts_instance: objective kd)
                policy.check(self, path)
            if spec.check_run is not None:
                try:
                    spec.check_run(check_parameters(self.objective, self.objective_params), self.epochs)
                except ValueError as error:
                    raise ConfigError(f"{path}.objective_params.{error}") from None
        else:
            require(self.temperature_policy == "fixed", f"{path}.temperature_policy", "needs an objective")
            require(not self.objective_params, f"{path}.objective_params", "needs an objective")
            require(not self.kd_weight, f"{path}.kd_weight", f"needs an objective; got {self.kd_weight}")
        weights = self.weights()
        require(weights.ce_weight > 0 or weights.kd_weight > 0, f"{path}.kd_weight",
                f"the CE weight ({weights.ce_weight:g}) and the KD weight ({weights.kd_weight:g}) are both 0, "
                "so nothing would be learned; set one of them > 0")

    def weights(self) -> Preset:
        """The resolved loss weighting (preset, then single-value overrides)."""
        if self.objective is None:
            base = Preset(ce_weight=1.0, kd_weight=0.0)
        elif self.loss_preset == "official":
            base = get_spec(self.objective).official
        else:
            base = PROTOCOL
        return Preset(
            ce_weight=base.ce_weight if self.ce_weight is None else self.ce_weight,
            kd_weight=base.kd_weight if self.kd_weight is None else self.kd_weight,
            warmup_epochs=base.warmup_epochs if self.warmup_epochs is None else self.warmup_epochs,
            temperature=base.temperature,
        )

    @property
    def uses_temperature(self) -> bool:
        """Whether ``temperature`` affects the run (not for CE-only runs, DTS or CTKD)."""
        return self.distills and get_policy(self.temperature_policy).fixed

    @property
    def distills(self) -> bool:
        """Whether the run has a distillation term (an objective with a KD weight > 0)."""
        return self.objective is not None and self.weights().kd_weight > 0

    @property
    def phase_one_epochs(self) -> int | None:
        """For a run of a two-phase objective (``akd``): the epochs of its distillation phase; else None."""
        if not self.distills:
            return None
        spec = get_spec(self.objective)
        if spec.phase_one is None:
            return None
        return spec.phase_one(check_parameters(self.objective, self.objective_params), self.epochs)

    @property
    def effective_temperature(self) -> float:
        """The fixed temperature the run uses: the explicit one, else the official preset's
        temperature under ``loss_preset: official``, else 4."""
        if self.temperature is not None:
            return self.temperature
        if self.objective is not None and self.loss_preset == "official":
            preset_temperature = get_spec(self.objective).official.temperature
            if preset_temperature is not None:
                return preset_temperature
        return DEFAULT_TEMPERATURE

    def resolved(self) -> "MemberConfig":
        """A copy with the temperature filled in (what is recorded with the run); ``null`` where
        the run uses no fixed temperature (DTS, CTKD, cross-entropy only)."""
        return dataclasses.replace(self, temperature=self.effective_temperature if self.uses_temperature else None)

    def unused_fields(self) -> set[str]:
        """Dotted fields (relative to the member) that cannot affect this run's result."""
        unused = {"name", "loss_preset", "ce_weight", "kd_weight", "warmup_epochs"}  # replaced by the resolved weights
        weights = self.weights()
        if not self.distills:
            unused |= {"objective", "objective_params", "temperature", "temperature_policy"} | policy_settings()
        else:
            policy = get_policy(self.temperature_policy)
            if not policy.fixed:
                unused.add("temperature")
            unused |= policy_settings() - set(policy.settings)  # the settings of the policies it does not use
        if weights.ce_weight == 0 and self.phase_one_epochs is None:  # a two-phase run's phase 2 uses it
            unused.add("label_smoothing")
        unused |= {f"optimizer.{name}" for name in self.optimizer.unused_fields()}
        unused |= {f"model.{name}" for name in self.model.unused_fields()}
        for section in self.task_sections:  # the task's own member sections (a language model's responses)
            inner = getattr(self, section).unused_fields()
            unused |= {section} if "*" in inner else {f"{section}.{name}" for name in inner}
        return unused

    def identity(self) -> dict[str, Any]:
        """What determines this run's result: the resolved configuration without unused fields.

        Two members with the same identity train the same run (their labels may differ)."""
        data = to_dict(self.resolved())
        weights = self.weights()
        data["weights"] = {"ce": weights.ce_weight, "kd": weights.kd_weight, "warmup": weights.warmup_epochs}
        if self.distills:
            data["objective_params"] = check_parameters(self.objective, self.objective_params)
        else:
            data["weights"].pop("warmup")
        return _without(data, self.unused_fields())

    def label(self) -> str:
        """A short human-readable label (the ``name`` when given)."""
        if self.name:
            return self.name
        if not self.distills:  # no objective, or a KD weight of 0
            return f"ce-{self.optimizer.name}"
        return f"{self.objective}-{get_policy(self.temperature_policy).label(self)}-{self.optimizer.name}"


def _without(data: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    """``data`` (nested mappings) without the dotted ``fields``."""
    result = {}
    for key, value in data.items():
        if key in fields:
            continue
        inner = {f[len(key) + 1:] for f in fields if f.startswith(key + ".")}
        result[key] = _without(value, inner) if inner and isinstance(value, dict) else value
    return result


@functools.cache
def member_config(task: str) -> type[MemberConfig]:
    """The member dataclass of ``task``: :class:`MemberConfig` with that task's model config
    (image classification's is :class:`MemberConfig` itself)."""
    spec = TASKS[task]
    model, sections = spec.model_config, dict(spec.member_sections)
    if model is ModelConfig and not sections:
        return MemberConfig
    fields = [("model", model, field(default_factory=model))]
    fields += [(name, kind, field(default_factory=kind)) for name, kind in sections.items()]
    return dataclasses.make_dataclass("MemberConfig", fields, bases=(MemberConfig,),
                                      namespace={"__module__": __name__, "__doc__": MemberConfig.__doc__,
                                                 "task_sections": tuple(sections)})


@dataclass
class SharedConfig:
    """What every member of a cohort shares: the task, data, augmentation, teacher, batch size and
    data seed. ``task`` names the kind of problem (:mod:`kdtemp.tasks`) and chooses the dataclasses
    of ``data``, ``augment`` and the models (:meth:`field_types`); those declared here are image
    classification's, the default task's."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    teacher: ModelConfig | None = None
    batch_size: int = 64
    data_seed: int = 0
    task: str = DEFAULT_TASK

    @classmethod
    def field_types(cls, data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        """The dataclasses the run's ``task`` gives ``data``, ``augment``, the teacher and every
        member (or model) field of this class (read by :func:`kdtemp.config.from_dict`). An unknown
        ``task`` is named here, before its fields are read as another task's."""
        task = data.get("task", DEFAULT_TASK) if isinstance(data, Mapping) else DEFAULT_TASK
        if not isinstance(task, str) or task not in TASKS:
            raise ConfigError(f"{prefix}task: unknown task {task!r}; allowed: {', '.join(sorted(TASKS))}")
        spec = TASKS[task]  # the default task's too: every task's sections are typed by the registry
        chosen: dict[str, Any] = {"data": spec.data_config, "augment": spec.augment_config,
                                  "teacher": typing.Optional[spec.model_config]}
        for name, hint in typing.get_type_hints(cls).items():
            if hint is MemberConfig:
                chosen[name] = member_config(task)
            elif hint == list[MemberConfig]:
                chosen[name] = list[member_config(task)]
            elif hint is ModelConfig:
                chosen[name] = spec.model_config
        return chosen

    def key(self) -> dict[str, Any]:
        """The cohort key: what members must share. Fields that do not change results (where the
        cache lives, whether the data may be downloaded, parameters of augmentations that are
        off, the weights path of a randomly initialised teacher) are not part of it."""
        data = _without(to_dict(self.data), self.data.unused_fields() | set(TASKS[self.task].evaluation_fields))
        if self.data.split_file:
            data["split_file_sha256"] = self.data.split_file_digest()
        teacher = None
        if self.teacher is not None:
            teacher = _without(to_dict(self.teacher), self.teacher.unused_fields() | {"drop_path_rate"})
        key = {
            "data": data, "augment": _without(to_dict(self.augment), self.augment.unused_fields()),
            "teacher": teacher, "batch_size": self.batch_size, "data_seed": self.data_seed,
        }
        if self.task != DEFAULT_TASK:  # the runs of image studies keep the ids they had before tasks
            key["task"] = self.task
        return key

    def evaluation(self) -> dict[str, Any]:
        """The evaluation settings (``{"data.<field>": value}`` for the task's
        :attr:`~kdtemp.tasks.base.Task.evaluation_fields`, without fields that cannot change a result):
        what a run's final metrics were measured under; empty for a task whose evaluation has none."""
        data = _without(to_dict(self.data), self.data.unused_fields())
        return {f"data.{name}": data[name] for name in sorted(TASKS[self.task].evaluation_fields) if name in data}

    def with_members(self, members: list[MemberConfig], **settings: Any) -> "CohortConfig":
        """The cohort of ``members`` that shares this config's task, data, augmentation, teacher,
        batch size and data seed (``settings``: the cohort's own, e.g. its device): the one place a
        cohort is built from a shared config."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(SharedConfig)}
        return CohortConfig(**shared, members=list(members), **settings)

    def validate_shared(self, prefix: str) -> None:
        require(self.task in TASKS, f"{prefix}task", f"unknown task {self.task!r}; allowed: {', '.join(sorted(TASKS))}")
        expected = TASKS[self.task].data_config
        require(isinstance(self.data, expected), f"{prefix}data",
                f"task {self.task!r} reads its data as {expected.__name__}; got {type(self.data).__name__}")
        require(self.batch_size >= 1, f"{prefix}batch_size", f"must be >= 1; got {self.batch_size}")
        require_seed(self.data_seed, f"{prefix}data_seed")


@dataclass
class CohortConfig(SharedConfig):
    """A cohort: the shared part and the members.

    ``checkpoint_every``: members are checkpointed every that many epochs (and at their last);
    a restart after a crash redoes at most ``checkpoint_every - 1`` epochs, with the same result.
    ``fuse``: members of one architecture train as one stacked model (:mod:`kdtemp.engine.fused`);
    their results agree with unfused training to float32 rounding, and they record ``derived.fused``.
    ``until_epoch``: train no member past this epoch in this call (checkpointed there, still unfinished:
    a later call continues it exactly; ``kdtemp tune``'s rungs); none: to each member's ``epochs``.
    """

    members: list[MemberConfig] = field(default_factory=list)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp64"] = "auto"
    eval_batch_size: int = 512
    checkpoint_every: int = 1
    fuse: bool = False
    until_epoch: int | None = None

    def validate(self, path: str = "") -> None:
        prefix = f"{path}." if path else ""
        self.validate_shared(prefix)
        require(self.until_epoch is None or self.until_epoch >= 1, f"{prefix}until_epoch",
                f"must be >= 1 or null; got {self.until_epoch}")
        require(self.eval_batch_size >= 1, f"{prefix}eval_batch_size", f"must be >= 1; got {self.eval_batch_size}")
        require(self.checkpoint_every >= 1, f"{prefix}checkpoint_every", f"must be >= 1; got {self.checkpoint_every}")
        require_device(self.device, f"{prefix}device")
        require_precision(self.precision, self.task, f"{prefix}precision")
        seen: dict[str, MemberConfig] = {}
        for index, member in enumerate(self.members):
            other = seen.setdefault(run_id(self, member), member)
            if other is not member:
                raise ConfigError(f"{prefix}members[{index}]: {member.label()!r} trains the same run as {other.label()!r} "
                                  "(they differ only in fields that run does not use)")
        needs_teacher = [m for m in self.members if m.distills]
        if needs_teacher and self.teacher is None:
            raise ConfigError(f"{prefix}teacher: member {needs_teacher[0].label()!r} distills, so a teacher is needed")


def require_precision(precision: str, task: str, path: str) -> None:
    """A precision the run's task (already checked) computes in (its declared ``precisions``)."""
    allowed = TASKS[task].precisions
    require(precision in allowed, path, f"{task} computes in {', '.join(allowed)}; got {precision!r}")


def require_device(device: str, path: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    valid = device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())
    require(valid, path, f"must be auto, cpu, cuda or cuda:N; got {device!r}")


def run_id(cohort: SharedConfig, member: MemberConfig) -> str:
    """Identifier of one run: a hash of what determines its result (the cohort key and the
    member's identity), so fields a run does not use never make two ids for one run."""
    identity = {"cohort": cohort.key(), "member": member.identity()}
    if member.phase_one_epochs is not None and cohort.evaluation():  # its phase 2 starts from its best evaluation
        identity["evaluation"] = cohort.evaluation()
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]

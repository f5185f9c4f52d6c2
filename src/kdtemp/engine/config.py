"""Configuration of teacher preparation and cohort distillation (dataclasses are the schema)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ..config import ConfigError, require, to_dict
from ..data import AugmentConfig, DataConfig
from ..models import ModelConfig
from ..objectives import OBJECTIVES, get_spec
from ..objectives.registry import PROTOCOL, Preset


@dataclass
class OptimizerConfig:
    """AdamW, or SGD with momentum; half-cosine decay over the run; per-tensor gradient clipping.

    Weight decay applies to weight matrices and kernels (ndim >= 2) and to CTKD's temperature
    parameter, not to biases and normalisation parameters.
    """

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    clip_norm: float | None = 1.0

    def validate(self, path: str = "optimizer") -> None:
        require(self.lr > 0, f"{path}.lr", f"must be > 0; got {self.lr}")
        require(self.weight_decay >= 0, f"{path}.weight_decay", f"must be >= 0; got {self.weight_decay}")
        require(0 <= self.momentum < 1, f"{path}.momentum", f"must be in [0, 1); got {self.momentum}")
        require(self.clip_norm is None or self.clip_norm > 0, f"{path}.clip_norm", f"must be > 0 or null; got {self.clip_norm}")


@dataclass
class DTSConfig:
    """Dynamic Temperature Scheduler bounds (paper presets: same family 8/4/8, cross family 3/1/3)."""

    initial: float = 8.0
    minimum: float = 4.0
    maximum: float = 8.0
    momentum: float = 0.9

    def validate(self, path: str = "dts") -> None:
        require(0 < self.minimum <= self.maximum, f"{path}", f"needs 0 < minimum <= maximum; got {self.minimum}, {self.maximum}")
        require(self.minimum <= self.initial <= self.maximum, f"{path}.initial",
                f"must lie in [{self.minimum}, {self.maximum}]; got {self.initial}")
        require(0 <= self.momentum < 1, f"{path}.momentum", f"must be in [0, 1); got {self.momentum}")


@dataclass
class MemberConfig:
    """One student of a cohort: everything that may differ between members.

    ``objective: null`` trains with cross-entropy only (teacher preparation). The loss is
    ``w_ce * CE(s, y_soft) + w_kd * warmup(epoch) * objective(s, t, y_dominant, T)``; ``loss_preset``
    picks the weights (``protocol``: CE 0, KD 1; ``official``: the objective's authors'), and
    ``ce_weight`` / ``kd_weight`` / ``warmup_epochs`` override single values.
    """

    name: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: str | None = "kd"
    objective_params: dict[str, Any] = field(default_factory=dict)
    temperature: float = 4.0
    temperature_policy: Literal["fixed", "dts", "ctkd"] = "fixed"
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

    def validate(self, path: str = "member") -> None:
        require(self.epochs >= 1, f"{path}.epochs", f"must be >= 1; got {self.epochs}")
        require(self.temperature > 0, f"{path}.temperature", f"must be > 0; got {self.temperature}")
        require(0 <= self.label_smoothing < 1, f"{path}.label_smoothing", f"must be in [0, 1); got {self.label_smoothing}")
        require(self.ctkd_ramp_epochs >= 1, f"{path}.ctkd_ramp_epochs", f"must be >= 1; got {self.ctkd_ramp_epochs}")
        if self.objective is not None:
            require(self.objective in OBJECTIVES, f"{path}.objective",
                    f"unknown objective {self.objective!r}; allowed: {', '.join(sorted(OBJECTIVES))}")
            allowed = get_spec(self.objective).defaults
            for key in self.objective_params:
                require(key in allowed, f"{path}.objective_params.{key}",
                        f"not a parameter of {self.objective!r}; allowed: {', '.join(allowed) or 'none'}")
            if get_spec(self.objective).temperature_policy == "ctkd":
                require(self.temperature_policy == "ctkd", f"{path}.temperature_policy",
                        "objective 'ctkd' needs temperature_policy: ctkd")
        else:
            require(self.temperature_policy == "fixed", f"{path}.temperature_policy", "needs an objective")
        for name in ("ce_weight", "kd_weight", "warmup_epochs"):
            value = getattr(self, name)
            require(value is None or value >= 0, f"{path}.{name}", f"must be >= 0; got {value}")

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

    def label(self) -> str:
        """A short human-readable label (the ``name`` when given)."""
        if self.name:
            return self.name
        if self.objective is None:
            return f"ce-{self.optimizer.name}"
        policy = "" if self.temperature_policy == "fixed" else f"-{self.temperature_policy}"
        return f"{self.objective}{policy}-T{self.temperature:g}-{self.optimizer.name}"


@dataclass
class SharedConfig:
    """What every member of a cohort shares: data, augmentation, teacher, batch size, data seed."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    teacher: ModelConfig | None = None
    batch_size: int = 64
    data_seed: int = 0

    def key(self) -> dict[str, Any]:
        """The cohort key. Where the cache lives and whether the data may be downloaded do not
        change results, so they are not part of it."""
        data = {k: v for k, v in to_dict(self.data).items() if k not in ("cache_dir", "download")}
        return {
            "data": data, "augment": to_dict(self.augment),
            "teacher": to_dict(self.teacher), "batch_size": self.batch_size, "data_seed": self.data_seed,
        }


@dataclass
class CohortConfig(SharedConfig):
    """A cohort: the shared part and the members.

    ``checkpoint_every``: members are checkpointed every that many epochs (and at their last);
    a restart after a crash redoes at most ``checkpoint_every - 1`` epochs, with the same result.
    """

    members: list[MemberConfig] = field(default_factory=list)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    eval_batch_size: int = 512
    checkpoint_every: int = 1

    def validate(self, path: str = "") -> None:
        prefix = f"{path}." if path else ""
        require(self.batch_size >= 1, f"{prefix}batch_size", f"must be >= 1; got {self.batch_size}")
        require(self.eval_batch_size >= 1, f"{prefix}eval_batch_size", f"must be >= 1; got {self.eval_batch_size}")
        require(self.checkpoint_every >= 1, f"{prefix}checkpoint_every", f"must be >= 1; got {self.checkpoint_every}")
        require(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
                f"{prefix}device", f"must be auto, cpu or cuda[:N]; got {self.device!r}")
        needs_teacher = [m for m in self.members if m.objective is not None and m.weights().kd_weight > 0]
        if needs_teacher and self.teacher is None:
            raise ConfigError(f"{prefix}teacher: member {needs_teacher[0].label()!r} distills, so a teacher is needed")


def run_id(cohort: CohortConfig, member: MemberConfig) -> str:
    """Identifier of one run: a hash of its resolved configuration (cohort key + member)."""
    text = json.dumps({"cohort": cohort.key(), "member": to_dict(member)}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]

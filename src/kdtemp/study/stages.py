"""Preparation stages: the teachers (and students to initialise from) a study needs, in its file.

```yaml
prepare:
  teachers:                          # a stage: a base preparation, varied by grid and zip
    base: {model: {name: resnet32}, optimizer: {lr: 5.0e-3}, epochs: 12}
    grid: {epochs: [4, 12]}
  scratch: {base: {model: {name: resnet20}, epochs: 12}}
base:
  teacher: {prepared: teachers}      # every preparation of the stage: an axis of the study
  ...
```

A preparation is a teacher-preparation config (:class:`kdtemp.engine.TeacherConfig`: cross-entropy
with label smoothing, the same engine), whose ``data``, ``augment`` and ``batch_size`` default to
the study base's. It is identified by the hash of its resolved config (the id of its run), written
to ``<prepared>/<id>/teacher.pt`` (``<prepared>`` is ``prepare_output``, by default a ``prepared``
folder beside the study's), and therefore reused by every study that declares the same one.
Preparations that share data, augmentation, batch size and data seed train as one cohort (those
that differ only in epochs share one data stream). A stage is a mapping ``{base, grid, zip}`` or a
list of them (their preparations together).

A model anywhere in the study (``teacher``, ``student.model``, or an axis value for them) may be
``{prepared: <stage>}``: in ``base``, a stage of several preparations becomes an axis named after
the stage; elsewhere the stage must hold exactly one.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, from_dict, require, set_path, to_dict
from ..engine.config import run_id
from ..engine.teacher import TeacherConfig
from ..tasks import DEFAULT_TASK, get_task
from .axes import Axis, axes_of
from .recipes import merged, recipe_of

SHARED_FROM_BASE = ("data", "augment", "batch_size", "task")
REFERENCE_FIELDS = ("teacher", "student.model")


@dataclass
class Preparation:
    """One model to prepare: its stage, a readable label, and its resolved config."""

    stage: str
    label: str
    config: TeacherConfig

    @property
    def prep_id(self) -> str:
        cohort = self.config.cohort()
        return run_id(cohort, cohort.members[0])

    @property
    def folder(self) -> Path:
        return Path(self.config.output)

    @property
    def weights(self) -> Path:
        return self.folder / "teacher.pt"

    def reference(self) -> dict[str, Any]:
        """The model config that uses this preparation (a checkpoint of it, once prepared)."""
        return {"name": self.config.model.name, "init": "checkpoint", "weights": str(self.weights),
                "prepared": self.prep_id}


def expand_stages(prepare: dict[str, Any], study_base: dict[str, Any], root: Path) -> dict[str, list[Preparation]]:
    """Every preparation of every stage, validated; ``root`` is the folder preparations go to."""
    stages: dict[str, list[Preparation]] = {}
    if prepare:  # a mistake in what the stages take from the study's base is named where it is written
        from_dict(TeacherConfig, {key: study_base[key] for key in SHARED_FROM_BASE if key in study_base}, "base")
    for stage, blocks in prepare.items():
        require(isinstance(stage, str) and stage.isidentifier(), f"prepare.{stage}",
                "a stage name is a word (letters, digits, _)")
        blocks = blocks if isinstance(blocks, list) else [blocks]
        preparations: list[Preparation] = []
        for index, block in enumerate(blocks):
            where = f"prepare.{stage}" + (f"[{index}]" if len(blocks) > 1 else "")
            require(isinstance(block, dict), where, f"expected a mapping with base, grid, zip; got {block!r}")
            unknown = sorted(set(block) - {"base", "grid", "zip"})
            require(not unknown, f"{where}.{unknown[0] if unknown else ''}", "unknown field; allowed: base, grid, zip")
            base = {key: copy.deepcopy(study_base[key]) for key in SHARED_FROM_BASE if key in study_base}
            if isinstance(base.get("data"), dict):  # what concerns the students' teacher is not this one's
                for name in get_task(base.get("task", DEFAULT_TASK)).teacher_data_fields:
                    base["data"].pop(name, None)
            own, recipe = recipe_of(block.get("base") or {}, "preparation", f"{where}.base")
            for key, value in own.items():
                base[key] = copy.deepcopy(value)
            axes = axes_of(block.get("grid"), block.get("zip") or [], [], f"{where}.")
            for combo in (itertools.product(*[axis.variants for axis in axes]) if axes else [()]):
                data = copy.deepcopy(base)
                labels = []
                for axis, (label, overrides) in zip(axes, combo):
                    labels.append(f"{axis.name}={label}")
                    for key, value in overrides.items():
                        set_path(data, key.split("."), copy.deepcopy(value), f"{where}.{axis.name}")
                data["output"] = str(root)  # replaced by the preparation's own folder below
                if recipe:
                    data = merged(recipe, data)
                try:
                    config = from_dict(TeacherConfig, data, where)
                except ConfigError as error:
                    raise ConfigError(f"{error}" + (f" (in the preparation {', '.join(labels)})" if labels else "")) from None
                preparation = Preparation(stage, _prep_label(config, labels), config)
                preparation.config.output = str(root / preparation.prep_id)
                preparations.append(preparation)
        ids = [p.prep_id for p in preparations]
        duplicate = next((i for i in ids if ids.count(i) > 1), None)
        require(duplicate is None, f"prepare.{stage}", "two of its preparations resolve to the same configuration")
        stages[stage] = preparations
    return stages


def _prep_label(config: TeacherConfig, labels: list[str]) -> str:
    """``resnet32 ft 20 ep``, plus the varied fields the name does not already say."""
    origin = "scratch" if config.model.init == "random" else "ft"
    said = ("epochs=", "model.name=", "model.init=", "model.name+", "epochs+")
    rest = [label for label in labels if not label.startswith(said)]
    name = get_task(config.task).model_label(config.model)  # a text model built from a config: by its shape
    return f"{name} {origin} {config.epochs} ep" + (f" ({', '.join(rest)})" if rest else "")


def reference_of(value: Any, stages: dict[str, list[Preparation]], where: str, single: bool = True) -> Any:
    """``value`` with a ``{prepared: stage}`` mapping replaced by its preparation's model config."""
    if not (isinstance(value, dict) and "prepared" in value):
        return value
    stage = value["prepared"]
    require(stage in stages, where, f"names the stage {stage!r}, which prepare does not declare; "
                                    f"declared: {', '.join(stages) or 'none'}")
    extra = sorted(set(value) - {"prepared"})
    require(not extra, where, f"a reference to a prepared model takes no other field; got {extra}")
    require(not single or len(stages[stage]) == 1, where,
            f"the stage {stage!r} prepares {len(stages[stage])} models; name it in base to make it an axis, or "
            "give a stage of one")
    return stages[stage][0].reference()


def stage_axes(study_base: dict[str, Any], stages: dict[str, list[Preparation]]):
    """The axes that ``{prepared: stage}`` in ``base`` adds (one per stage of several
    preparations), and the base with single-preparation references resolved."""
    base = copy.deepcopy(study_base)
    axes = []
    for field in REFERENCE_FIELDS:
        keys = field.split(".")
        node = base
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or not isinstance(node.get(keys[-1]), dict) or "prepared" not in node[keys[-1]]:
            continue
        stage = node[keys[-1]]["prepared"]
        where = f"base.{field}"
        reference_of(node[keys[-1]], stages, where, single=False)  # checks the stage exists
        if len(stages[stage]) == 1:
            node[keys[-1]] = stages[stage][0].reference()
        else:
            node.pop(keys[-1])
            axes.append(Axis(stage, [(p.label, {field: p.reference()}) for p in stages[stage]]))
    return base, axes


def all_preparations(stages: dict[str, list[Preparation]]) -> list[Preparation]:
    seen: dict[str, Preparation] = {}
    for preparations in stages.values():
        for preparation in preparations:
            seen.setdefault(preparation.prep_id, preparation)
    return list(seen.values())


def preparation_cohorts(preparations: list[Preparation]):
    """Preparations grouped into cohorts (shared data, augmentation, batch size, data seed, precision):
    ``[(cohort key, [preparations])]``; members that differ only in epochs share one stream."""
    import hashlib
    import json

    groups: dict[str, list[Preparation]] = {}
    for preparation in preparations:
        shared = {**preparation.config.cohort().key(), "precision": preparation.config.precision}
        key = hashlib.sha1(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:12]
        groups.setdefault(key, []).append(preparation)
    return list(groups.items())


def describe(preparation: Preparation) -> dict[str, Any]:
    return {"prep_id": preparation.prep_id, "stage": preparation.stage, "label": preparation.label,
            "config": to_dict(preparation.config), "weights": str(preparation.weights)}

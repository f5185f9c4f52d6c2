"""The study file: a base run, a grid, paired axes, presets and seeds, expanded into runs and cohorts.

A study file is plain YAML::

    name: digits-temperature
    base:                        # one run's configuration (data, augment, teacher, batch_size, student)
      data: {dataset: digits, resolution: 16}
      teacher: {name: resnet32, init: checkpoint, weights: runs/teacher/teacher.pt}
      student: {model: {name: resnet20}, objective: kd, epochs: 8}
    grid:                        # cartesian product over any field (dotted paths)
      student.temperature: [1, 2, 3, 4, 5, 7, 10, 20, 40]
    zip:                         # axes varied together (equal lengths)
      - {student.optimizer.name: [adamw, sgd], student.optimizer.lr: [0.002, 0.05]}
    presets: [kd_approaches]     # named axes for the study's dimensions
    seeds: [0, 1, 2]             # each seed sets student.seed and data_seed

Every run's configuration is resolved and validated when the study is loaded, so a bad file
stops with one error naming the field before anything runs.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import re

from ..config import ConfigError, apply_overrides, from_dict, parse_override, require, set_path
from ..engine import CohortConfig, MemberConfig, run_id
from ..engine.config import SharedConfig, require_device, require_seed
from ..engine.tracking import LoggingConfig
from ..paths import load_config, locate
from .axes import Axis, _covered, axes_of
from .presets import PRESETS
from .recipes import merged, recipe_of
from .stages import REFERENCE_FIELDS, all_preparations, expand_stages, reference_of, stage_axes
from .folders import output_folder

SEED_FIELDS = ("student.seed", "data_seed")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class RunSpec(SharedConfig):
    """The resolved configuration of one run: the cohort-shared part and the student."""

    student: MemberConfig = field(default_factory=MemberConfig)

    def validate(self, path: str = "") -> None:
        self.cohort_config().validate(path)

    def cohort_config(self) -> CohortConfig:
        return self.with_members([self.student])

    @property
    def run_id(self) -> str:
        return run_id(self, self.student)

    def unused_fields(self) -> set[str]:
        """Dotted fields of the run that cannot affect its result."""
        unused = {f"data.{f}" for f in self.data.unused_fields()} | {f"augment.{f}" for f in self.augment.unused_fields()}
        unused |= {f"student.{f}" for f in self.student.unused_fields()}
        if self.teacher is not None:
            unused |= {f"teacher.{f}" for f in self.teacher.unused_fields()}
        return unused

    @property
    def cohort_key(self) -> str:
        return hashlib.sha1(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class ExecutorConfig:
    """Where cohorts run: ``inline`` (this process), ``local`` (a pool over GPUs or CPU
    processes) or ``ray`` (a cluster; each cohort is a task asking for a GPU when there is one).
    ``retries``: how often a cohort whose worker process died is started again from its
    checkpoints before its runs fail (local executor). ``memory``: the budget of one cohort
    (``80GB``, ``24GiB`` or bytes; by default 90 % of the GPU's memory, on a CPU the available RAM
    less a tenth), which cohorts are packed under (:mod:`kdtemp.study.memory`). ``fuse``: members of
    one architecture train as one stacked model (:mod:`kdtemp.engine.fused`; meant for GPUs, where
    small students are bound by kernel launches, but not measured there yet; slower on a CPU), agreeing
    with unfused training to float32 rounding."""

    kind: Literal["inline", "local", "ray"] = "inline"
    workers: int | None = None
    threads: int | None = None
    ray_address: str | None = None
    device: str = "auto"
    checkpoint_every: int = 1
    retries: int = 2
    memory: str | int | None = None
    fuse: bool = False

    def validate(self, path: str = "executor") -> None:
        require_device(self.device, f"{path}.device")
        if self.memory is not None:
            from .memory import parse_memory

            parse_memory(self.memory, f"{path}.memory")
        require(0 <= self.retries <= 100, f"{path}.retries", f"must be in [0, 100]; got {self.retries}")
        require(self.checkpoint_every >= 1, f"{path}.checkpoint_every", f"must be >= 1; got {self.checkpoint_every}")
        require(self.workers is None or self.workers >= 1, f"{path}.workers", f"must be >= 1; got {self.workers}")
        require(self.threads is None or self.threads >= 1, f"{path}.threads", f"must be >= 1; got {self.threads}")


@dataclass
class TuneConfig:
    """How ``kdtemp tune`` searches the study's temperature axis (:mod:`kdtemp.study.tune`).

    ``seeds``: the seeds each candidate trains with (default: the study's first); ``eta``: at each rung
    the best ``1/eta`` of the candidates (at least two) go on; ``rungs``: the epochs at which candidates are
    compared (default: one rung at half the budget, :func:`kdtemp.study.tune.default_rungs`);
    ``metric``: the validation metric compared (default: ``val_`` + the task's primary metric)."""

    seeds: list[int] | None = None
    eta: int = 3
    rungs: list[int] | None = None
    metric: str | None = None

    def validate(self, path: str = "tune") -> None:
        require(self.eta >= 2, f"{path}.eta", f"must be >= 2; got {self.eta}")
        if self.seeds is not None:
            require(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), f"{path}.seeds",
                    f"must be a non-empty list of distinct seeds; got {self.seeds}")
            for index, seed in enumerate(self.seeds):
                require_seed(seed, f"{path}.seeds[{index}]")
        if self.rungs is not None:
            require(len(self.rungs) >= 1 and all(isinstance(r, int) and r >= 1 for r in self.rungs)
                    and self.rungs == sorted(set(self.rungs)), f"{path}.rungs",
                    f"must be increasing epochs >= 1; got {self.rungs}")


@dataclass
class StudyFile:
    """The schema of a study file (see the module docstring)."""

    name: str
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] | None = None
    zip: list[dict[str, list]] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    max_cohort_size: int | None = None
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    output: str | None = None
    prepare: dict[str, Any] = field(default_factory=dict)
    prepare_output: str | None = None
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    degenerate_teacher: Literal["stop", "continue"] = "stop"
    tune: TuneConfig = field(default_factory=TuneConfig)

    def validate(self, path: str = "") -> None:
        require(bool(NAME_PATTERN.match(self.name)) and ".." not in self.name, "name",
                f"{self.name!r} is not allowed; a study name is 1-100 letters, digits, '.', '_' or '-', starting "
                "with a letter or digit (it names the study's folder; use `output` to choose where it goes)")
        require(len(self.seeds) >= 1, "seeds", "give at least one seed")
        for index, seed in enumerate(self.seeds):
            require_seed(seed, f"seeds[{index}]")
        require(len(set(self.seeds)) == len(self.seeds), "seeds", f"has a seed twice: {self.seeds}")
        require(self.max_cohort_size is None or self.max_cohort_size >= 1, "max_cohort_size",
                f"must be >= 1; got {self.max_cohort_size}")
        for name in self.presets:
            require(name in PRESETS, f"presets", f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
        require(len(set(self.presets)) == len(self.presets), "presets", f"names a preset twice: {self.presets}")
        student = self.base.get("student") if isinstance(self.base.get("student"), dict) else {}
        for field_path, present in (("base.data_seed", "data_seed" in self.base), ("base.student.seed", "seed" in student)):
            require(not present, field_path, "is set by `seeds` for every run; remove it from base and list the "
                                             "seeds you want in `seeds`")


@dataclass
class Run:
    """One cell of the grid for one seed."""

    spec: RunSpec
    cell: dict[str, Any]
    seed: int

    @property
    def run_id(self) -> str:
        return self.spec.run_id


@dataclass
class Cohort:
    """Runs that share data, augmentation, teacher, batch size and data seed."""

    cohort_id: str
    runs: list[Run]

    def config(self, device: str = "auto") -> CohortConfig:
        return self.runs[0].spec.with_members([r.spec.student for r in self.runs], device=device)


@dataclass
class Study:
    """A validated study: its file, output folder, runs and cohorts, and notes on how its axes
    apply (cells that collapse into one run because an axis does not apply to them)."""

    file: StudyFile
    source: str
    output: Path
    runs: list[Run]
    notes: list[str] = field(default_factory=list)
    stages: dict[str, list] = field(default_factory=dict)  # stage name -> its Preparations
    packing: Any = None  # the cohorts packed under a memory budget (:meth:`fit_memory`), once preflight ran

    @property
    def preparations(self) -> list:
        """Every distinct preparation of the study's stages, in order."""
        return all_preparations(self.stages)

    def fit_memory(self, state: Any, executor: ExecutorConfig | None = None) -> None:
        """Pack the cohorts under the memory budget of ``executor`` (the file's by default) from the
        data facts preflight learned (``state``); :attr:`cohorts` returns them from then on."""
        from .memory import fit

        self.packing = fit(self, state, executor or self.file.executor)

    @property
    def cohorts(self) -> list[Cohort]:
        """The cohorts: packed under the memory budget once :meth:`fit_memory` ran, else cut by
        ``max_cohort_size`` alone."""
        from .memory import by_size, cohort_runs

        if self.packing is not None:
            return [Cohort(cohort_id, runs) for cohort_id, runs in self.packing.cohorts]
        return [Cohort(cohort_id, runs) for cohort_id, runs, _ in cohort_runs(self.runs, by_size(self.file.max_cohort_size))]

    @property
    def axis_names(self) -> list[str]:
        return list(self.runs[0].cell) if self.runs else []


def build_axes(study: StudyFile) -> list[Axis]:
    """The grid's axes: grid fields, zipped groups and presets; an axis given twice is an error."""
    return axes_of(study.grid, study.zip, study.presets, "", SEED_FIELDS)


def expand(study: StudyFile, notes: list[str] | None = None, stages: dict[str, list] | None = None,
           recipe: dict[str, Any] | None = None) -> list[Run]:
    """Every (cell, seed) of the study as a validated :class:`Run`, in a stable order.

    Cells that differ only on an axis whose fields a run does not use (a temperature axis for
    DTS or CTKD, DTS bounds for a fixed temperature) are one run: it is kept once, its cell
    shows ``None`` for that axis, and a line is added to ``notes``. An axis that applies to no
    run at all, and two cells that set the same used values, are errors. ``stages``: the study's
    preparations, which ``{prepared: stage}`` references resolve to (see :mod:`kdtemp.study.stages`).
    """
    stages = stages or {}
    study_base, prepared_axes = stage_axes(study.base, stages)
    axes = build_axes(study)
    for axis in axes:  # a prepared model named in an axis value becomes its checkpoint
        axis.variants = [(label, {key: reference_of(value, stages, f"{axis.name}") if key in REFERENCE_FIELDS else value
                                  for key, value in overrides.items()}) for label, overrides in axis.variants]
    axes += prepared_axes
    try:
        from_dict(RunSpec, merged(recipe or {}, study_base), "base")
    except ConfigError as error:  # a base field in error that an axis sets is checked per run instead
        where = str(error).split(":", 1)[0].removeprefix("base.")
        varied = {f for axis in axes for f in axis.fields}
        if not any(where == f or where.startswith(f + ".") or f.startswith(where + ".") for f in varied):
            raise ConfigError(str(error)) from None
    runs: list[Run] = []
    seen: dict[str, Run] = {}
    collapsed: dict[tuple[str, str, str], set[str]] = {}
    partly: dict[tuple[str, str, str], set[str]] = {}
    dropped: dict[tuple[str, str, str], int] = {}
    combos = itertools.product(*[axis.variants for axis in axes]) if axes else [()]
    for combo in combos:
        for seed in study.seeds:
            data = copy.deepcopy(study_base)
            cell, overrides_of = {}, {}
            for axis, (label, overrides) in zip(axes, combo):
                cell[axis.name] = label
                overrides_of[axis.name] = set(overrides)
                for key, value in overrides.items():
                    set_path(data, key.split("."), copy.deepcopy(value), f"{axis.name}")
            set_path(data, ["student", "seed"], seed)
            data["data_seed"] = seed
            if recipe:
                data = merged(recipe, data)
            where = ", ".join(f"{k}={v}" for k, v in cell.items()) or "base"
            try:
                spec = from_dict(RunSpec, data)
            except ConfigError as error:
                raise ConfigError(f"{error} (in the run {where}, seed {seed})") from None
            spec.student = spec.student.resolved()
            run = Run(spec, cell, seed)
            other = seen.get(run.run_id)
            unused = spec.unused_fields()
            if other is None:
                seen[run.run_id] = run
                runs.append(run)
                # the loss weighting's fields take effect through the resolved weights of a run that distils
                without_effect = unused - (WEIGHT_FIELDS if spec.student.objective is not None else set())
                for axis, (_, overrides) in zip(axes, combo):  # a zip group's field this run does not use
                    # (a CE-only run's temperature; setting a field to null is using it)
                    ignored = sorted(f for f, v in overrides.items() if _covered(f, without_effect) and v is not None)
                    if ignored and len(ignored) < len(axis.fields):
                        partly.setdefault((axis.name, ", ".join(ignored)), {}).setdefault(
                            spec.student.label(), set()).add(where)
                continue
            differing = [axis for axis in axes if cell[axis.name] != other.cell[axis.name]]
            inapplicable = [axis for axis in differing if all(_covered(f, unused) for f in axis.fields)]
            if not differing or len(inapplicable) < len(differing):
                where_other = ", ".join(f"{k}={v}" for k, v in other.cell.items()) or "base"
                raise ConfigError(f"grid: the runs {where_other} and {where} (seed {seed}) resolve to the same "
                                  "configuration")
            for axis in inapplicable:
                other.cell[axis.name] = None
                key = (axis.name, ", ".join(sorted(axis.fields)))
                collapsed.setdefault(key, {}).setdefault(spec.student.label(), set()).add(other.run_id)
                dropped[key] = dropped.get(key, 0) + 1
    for axis in axes:
        if len(axis.variants) > 1 and all(run.cell[axis.name] is None for run in runs):
            fields = ", ".join(sorted(axis.fields))
            raise ConfigError(f"{axis.name}: applies to no run of this study (no run uses {fields}); remove the axis")
    if notes is not None:  # one note per axis and field, however many runs it concerns
        for (axis_name, fields), by_label in collapsed.items():
            kept = sum(len(ids) for ids in by_label.values())
            one = len(by_label) == 1
            notes.append(f"axis {axis_name!r} does not apply to {_some(sorted(by_label))} ({'it does' if one else 'they do'}"
                         f" not use {fields}): {'its' if one else 'their'} {kept + dropped[(axis_name, fields)]} cells "
                         f"train {kept} runs, shown without that axis")
        for (axis_name, fields), by_label in partly.items():
            if len(by_label) == 1:
                ((label, cells),) = by_label.items()
                notes.append(f"axis {axis_name!r}: {label} does not use {fields}, so that part of its cell ("
                             f"{'; '.join(sorted(cells))}) has no effect on it")
            else:
                count = sum(len(cells) for cells in by_label.values())
                notes.append(f"axis {axis_name!r}: {count} runs ({_some(sorted(by_label))}) do not use {fields}, so "
                             "that part of their cells has no effect on them")
    return runs


WEIGHT_FIELDS = {"student.loss_preset", "student.ce_weight", "student.kd_weight", "student.warmup_epochs"}
"""Fields a run's identity replaces by its resolved loss weights: they take effect through them."""


def _some(labels: list[str], shown: int = 3) -> str:
    """``a``, ``a and b``, ``a, b, c and 4 more``."""
    if len(labels) <= shown:
        return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    return ", ".join(labels[:shown]) + f" and {len(labels) - shown} more"


def load_study(path: str | Path, output: str | Path | None = None, overrides: list[str] | None = None) -> Study:
    """Read, validate and expand a study file, with dotted ``overrides`` (``base.student.epochs=2``,
    ``seeds=[0]``) applied on top. Nothing runs here."""
    base = locate(str(path))[1]  # the folder its relative paths (and its default output) resolve against
    data, path = load_config(path, "study")
    for text in overrides or []:  # a grid's fields are dotted keys: grid.student.temperature=[2] sets one
        keys, value = parse_override(text)
        if keys[0] == "grid" and len(keys) > 1:
            grid = data.get("grid") if isinstance(data.get("grid"), dict) else {}
            data["grid"] = {**grid, ".".join(keys[1:]): value}
        else:
            data = apply_overrides(data, [text])

    recipe = None
    if isinstance(data.get("base"), dict):  # a named recipe fills, per run, what the run does not set
        data["base"], recipe = recipe_of(data["base"], "run", "base")
    study_file = from_dict(StudyFile, data)

    def planned(folder: Path) -> tuple[dict, list[Run], list[str]]:
        """The study's stages, runs and notes with its results in ``folder``."""
        notes: list[str] = []
        prepared_root = Path(study_file.prepare_output) if study_file.prepare_output else folder.parent / "prepared"
        stages = expand_stages(study_file.prepare, study_file.base, prepared_root)
        return stages, expand(study_file, notes, stages, recipe), notes

    folder, legacy = output_folder(base, study_file.name, output or study_file.output,
                                   lambda f: {run.run_id for run in planned(f)[1]})
    stages, runs, notes = planned(folder)
    if legacy is not None:
        notes.append(f"using the results in {legacy.resolve()} (where earlier kdtemp versions put a study without "
                     "`output`); new studies go to studies/ beside the study file (into <name>/ when the file "
                     "is in studies/ itself)")
    source = Path(path).read_text()
    if overrides:
        source += "\n# command-line overrides: " + " ".join(overrides) + "\n"
    return Study(study_file, source, folder, runs, notes, stages)

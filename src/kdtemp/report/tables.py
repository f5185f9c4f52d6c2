"""Report tables, computed from the store alone.

Runs are grouped into *settings*: the configuration fields that vary across the study, except the
temperature and the seeds. Every cell of a table is the mean (with std and count) over seeds of the
runs of one setting at one temperature. Runs without a fixed temperature (DTS and CTKD set their own;
a cross-entropy-only run has none) have no T column: one value per setting (:func:`aggregate_points`).

The value of a run is the study's **primary metric** (:class:`Metric`: top-1 for images; any metric a
task names, with its goal ``max`` or ``min``) at its final epoch, or at its best epoch by that metric;
"best" in every table (the bold cells, the best temperature, the gain over KD) follows the goal.
"""

from __future__ import annotations

import csv
import json
import io
import re
import statistics
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Iterable

from ..tasks import TASKS, get_task
from ..temperature import POLICIES
from ..temperature.registry import policy_settings, used_temperature

METHOD_PREFIXES = ("student.objective_params.", "student.dts.")
"""Configuration fields that belong to a method (its objective's parameters, DTS's bounds)."""
IGNORED = {"student.seed", "data_seed", "student.temperature", "data.cache_dir", "data.download"}
FRIENDLY = {
    "student.objective": "objective", "student.optimizer.name": "optimizer", "student.optimizer.lr": "lr",
    "student.optimizer.weight_decay": "wd", "batch_size": "batch", "student.epochs": "epochs",
    "teacher.weights": "teacher", "teacher.name": "teacher model", "teacher.init": "teacher init",
    "student.model.name": "student", "student.model.init": "init", "student.model.weights": "student weights",
    "data.dataset": "dataset", "data.root": "data", "student.temperature_policy": "policy",
    "student.loss_preset": "preset", "student.objective_params.keep_top": "k",
}
SIGNALS = ("ls_instance", "ls_global", "shuffled_tail")
NO_KD = "cross-entropy only (no KD)"
"""The method name of runs without a distillation term (no objective, or a KD weight of 0)."""
METHOD_KEYS = ("objective", "policy", "preset", "kd_weight", "initial", "minimum", "maximum", "k")
"""Setting fields that name a method (an objective and how its temperature is set); with a
record's ``method_keys`` (its objective's parameters), they are the method; the others (student,
epochs, dataset, ...) are the context a method is compared in."""
NAMED_KEYS = ("objective", "policy", "minimum", "maximum", "initial")
"""Method fields a method's published name stands for (``DTS [4, 8]``: objective, policy and DTS's
bounds; its initial T is DTS's own); the others (``preset=official``, DKD's ``beta=4``) follow it."""
def _metric_names() -> dict[str, Any]:
    """Every registered task's :class:`~kdtemp.tasks.base.MetricName` by metric (read when a report
    names a metric, so a task registered later is named too)."""
    from ..tasks import TASKS

    names: dict[str, Any] = {}
    for task in TASKS.values():
        names.update(task.metric_names)
    return names


@dataclass(frozen=True)
class Metric:
    """The metric a report shows: ``name`` as the store records it (``top1``, ``accuracy``,
    ``rouge_l``, ``test_loss``) and ``goal``, ``max`` or ``min``: which values are better."""

    name: str = "top1"
    goal: str = "max"

    @property
    def label(self) -> str:
        """``top-1 (%)``; ``loss (lower is better)``."""
        return self._named("label") + (" (lower is better)" if self.goal == "min" else "")

    def _named(self, part: str) -> str:
        """The ``part`` of the metric's name as its task declares it (``label``, ``noun``); a metric
        on a named evaluation set (``rouge_l_selfinst``) as its metric's on that set (``ROUGE-L (x100)
        on selfinst``); a metric no task names, as the store names it."""
        names = _metric_names()
        if self.name in names:
            return getattr(names[self.name], part)
        for base in sorted(names, key=len, reverse=True):
            if self.name.startswith(base + "_"):
                return f"{getattr(names[base], part)} on {self.name[len(base) + 1:]}"
        return self.name

    @property
    def short(self) -> str:
        named = _metric_names().get(self.name)
        return named.short if named is not None else self.name

    @property
    def unit(self) -> str:
        named = _metric_names().get(self.name)
        return named.unit if named is not None else ""

    @property
    def noun(self) -> str:
        return self._named("noun")

    def key(self, which: str) -> str:
        """The table's key of the metric at the ``final`` or ``best`` epoch: ``final_top1``."""
        return f"{which}_{self.name}"

    def title(self, which: str) -> str:
        """``final top-1 (%)``, ``best-epoch top-1 (%)``."""
        return f"{'final' if which == 'final' else 'best-epoch'} {self.label}"

    @property
    def tables(self) -> dict[str, str]:
        """The report's two tables: ``{key: title}`` at the final and at the best epoch."""
        return {self.key(which): self.title(which) for which in ("final", "best")}


METRICS = Metric().tables
"""The tables of an image study: ``{"final_top1": "final top-1 (%)", "best_top1": "best-epoch top-1 (%)"}``."""
METRIC_NOTES = {"best-epoch top-1 (%)": "; the best epoch is chosen on the test set, so this is an optimistic "
                                        "estimate (the final epoch's accuracy is the honest one)"}


def metric_note(title: str) -> str:
    """What a reader must know about a table's metric (a best epoch is chosen on the test set)."""
    if title in METRIC_NOTES:
        return METRIC_NOTES[title]
    if title.startswith("best-epoch "):
        return ("; the best epoch is chosen on the test set, so this is an optimistic estimate (the final epoch's "
                "value is the honest one)")
    return ""


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> ``{"a.b.c": value}`` (lists kept as values)."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def unused_keys(config: dict[str, Any]) -> set[str]:
    """Flattened config keys that say nothing about this run (so they stay out of its row label):
    DTS bounds of a run without DTS, SGD's momentum under AdamW, the step schedule's milestones
    under the cosine, a prepared model's architecture (its label says it), a folder's root when
    the dataset is shown by it."""
    used = _policy(config.get("student.temperature_policy") or "fixed")
    unused = {k for k in config for name in policy_settings() - set(used.settings if used else ())
              if k == f"student.{name}" or k.startswith(f"student.{name}.")}
    if config.get("student.optimizer.name") == "adamw":
        unused |= {"student.optimizer.momentum", "student.optimizer.nesterov"}
    if config.get("student.optimizer.schedule", "cosine") == "cosine":
        unused |= {"student.optimizer.milestones", "student.optimizer.gamma"}
    for role in ("teacher", "student.model"):
        weights = config.get(f"{role}.weights")
        if isinstance(weights, str) and " " in weights:  # a prepared model's label ("resnet32 ft 20 ep")
            unused |= {f"{role}.name", f"{role}.init"}
    if config.get("data.root") and config.get("data.dataset") == PurePath(str(config["data.root"])).name:
        unused.add("data.root")
    return unused


def natural_key(text: str) -> list:
    """Sort key that orders numbers by value: ``batch=64`` before ``batch=256``."""
    return [(0, float(part), "") if part.replace(".", "", 1).isdigit() else (1, 0.0, part)
            for part in re.split(r"(\d+(?:\.\d+)?)", text) if part]


def _show(key: str, value: Any) -> str:
    if key.endswith(".root") and isinstance(value, str):
        return PurePath(value).name
    if key.endswith(".weights") and isinstance(value, str) and ("/" in value or value.endswith((".pt", ".pth", ".th"))):
        path = PurePath(value)
        return path.parent.name if path.name == "teacher.pt" else path.stem
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass
class Record:
    """One run, as the report sees it."""

    run_id: str
    status: str
    temperature: float | None  # None: the run set its own (DTS, CTKD) or used none (cross-entropy only)
    seed: int
    setting: dict[str, str]
    objective: str | None
    epochs: int
    final: float | None  # the primary metric at the last epoch
    best: float | None  # the primary metric at the best epoch by it
    curve: list[dict] = field(default_factory=list)
    distills: bool = True  # False: trained with cross-entropy only (no objective, or a KD weight of 0)
    method_keys: frozenset[str] = frozenset()  # setting keys of the method's own parameters (DKD's beta, ...)
    metric: str = "top1"  # the primary metric's name
    goal: str = "max"  # and which of its values are better
    policy: str = "fixed"  # how its temperature is set: fixed, dts, dts_instance or ctkd
    bounds: tuple[float, float] | None = None  # DTS's [minimum, maximum] (a DTS run's name says them)
    metrics: dict[str, float] = field(default_factory=dict)  # every final metric, under the study's evaluation
    degenerate: str | None = None  # why its generations are noise on some evaluation set (its task says), or None
    reevaluated: bool = False  # its final metrics come from evaluating its final weights again (no best epoch)
    generations: bool = False  # its task's evaluation generates text (``Task.writes_samples``: a language model)

    def value(self, metric: str) -> float | None:
        """The primary metric at the final (``final``, ``final_top1``) or best (``best_...``) epoch."""
        if metric == "final" or metric.startswith("final_"):
            return self.final
        if metric == "best" or metric.startswith("best_"):
            return self.best
        return getattr(self, metric)

    @property
    def label(self) -> str:
        return setting_label(self.setting)

    def without(self, key: str) -> str:
        return setting_label({k: v for k, v in self.setting.items() if k != key})

    @property
    def method(self) -> str:
        """The published name of the run's method: ``KD``, ``WTTM``, ``DTS [4, 8]``, ``CTKD``,
        ``cross-entropy only (no KD)`` (:func:`method_name`)."""
        return method_name(self.objective, self.policy, self.distills, self.bounds)

    def name(self, drop: Iterable[str] = (), full: bool = False) -> str:
        """The row label a person reads: the setting with its method fields (objective, policy,
        DTS bounds) replaced by the method's published name, first (``KD, epochs=2``; ``DTS [4, 8],
        student=resnet32``), and without the fields in ``drop``. A setting without method fields
        (the method does not vary) is shown as :attr:`label` is. ``full``: the method fields the
        name stands for that still tell two runs apart follow it too (DTS's ``initial=3``; a
        cross-entropy-only run's ``kd_weight=0``)."""
        drop = set(drop)
        own = set(METHOD_KEYS) | self.method_keys
        shown = {k: v for k, v in self.setting.items() if k not in drop}
        method = [k for k in shown if k in own]
        # the method's own parameters (DKD's beta=4, preset=official) follow its name; a run
        # without distillation is named by that alone
        named = {"objective", "policy", "minimum", "maximum"} if full else set(NAMED_KEYS)
        extra = [f"{k}={v}" for k, v in shown.items() if k in own and k not in named and (self.distills or full)]
        context = [f"{k}={v}" for k, v in shown.items() if k not in own]
        return ", ".join(([self.method] if method else []) + extra + context) or "all runs"


def setting_label(setting: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "all runs"


def method_name(objective: str | None, policy: str = "fixed", distills: bool = True,
                bounds: tuple[float, float] | None = None) -> str:
    """A method's published name: the objective's registered display name (``KD``, ``WTTM``,
    ``LS-KD (logit standardization)``); DTS on KD ``DTS [4, 8]`` (its bounds), on another objective
    ``DKD + DTS [4, 8]``, per sample ``instance-wise DTS [4, 8]``; the learned temperature of CTKD
    ``CTKD`` (``DKD + CTKD`` on another objective); a run without a distillation term
    ``cross-entropy only (no KD)``."""
    from ..objectives.registry import display_name_of

    if not distills:
        return NO_KD
    if objective is None:
        return "no objective"
    name = display_name_of(objective)
    base = name.split(" (")[0]  # "LS-KD (logit standardization)" + DTS: "LS-KD + DTS [...]"
    spec = _policy(policy)
    if spec is None or not spec.in_method_name:
        return name
    named = spec.display_name + (f" [{bounds[0]:g}, {bounds[1]:g}]" if spec.bounded and bounds else "")
    return named if objective in ("kd", policy) else f"{base} + {named}"


def evaluation_split(runs: list[dict]) -> str:
    """The split the runs' task evaluates on (``test``; GLUE's ``validation``), as reports name it."""
    from ..tasks import DEFAULT_TASK, TASKS

    task = TASKS.get(str((runs[0]["config"] if runs else {}).get("task", DEFAULT_TASK)))
    return task.evaluation_split if task is not None else "test"


def _policy(name: Any):
    """The registered policy called ``name`` (None for one no longer registered: a store's run of a
    plug-in policy)."""
    return POLICIES.get(str(name))


def readable(items: Iterable[Record], key=lambda r: r.label, drop=lambda r: ()) -> dict[str, str]:
    """``{key: the name a person reads}`` for the rows of a table keyed by ``key``: each record's
    :meth:`Record.name` without the fields ``drop`` gives; where two different keys would get one
    name, their full names (:meth:`Record.name`, ``full``), and where those are one too, the name
    with the key beside it, so no two rows read the same."""
    first: dict[str, Record] = {}
    for record in items:
        first.setdefault(key(record), record)

    def unique(names: dict[str, str]) -> set[str]:
        count: dict[str, int] = {}
        for value in names.values():
            count[value] = count.get(value, 0) + 1
        return {k for k, v in names.items() if count[v] > 1}

    names = {k: r.name(drop(r)) for k, r in first.items()}
    clash = unique(names)
    names.update({k: first[k].name(drop(first[k]), full=True) for k in clash})
    clash = unique(names)
    return {k: (f"{v} ({k})" if k in clash else v) for k, v in names.items()}


def relabel(table: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """``table`` (a heatmap's or the points') with each row named by ``names``, in the same order."""
    return {names.get(row, row): cells for row, cells in table.items()}


def primary_of(run: dict) -> tuple[str, str, float | None, float | None]:
    """A stored run's primary metric, its goal and its final and best values; a run without a
    primary metric (written before tasks declared one, or made by hand) is read as top-1 from
    ``final_top1`` and ``best_top1``."""
    metric = run.get("primary_metric") or "top1"
    goal = run.get("primary_goal") or "max"
    final = run["final_primary"] if "final_primary" in run else run.get(f"final_{metric}")
    best = run["best_primary"] if "best_primary" in run else run.get(f"best_{metric}")
    return metric, goal, final, best


def records(runs: list[dict], prepared: dict[str, str] | None = None) -> list[Record]:
    """Records of the store's runs, with the varying fields of their configurations as settings.

    ``prepared``: preparation id -> its label; a model prepared by the study is shown by its
    label (``resnet32 ft 20 ep``), not by the hash in its weights path."""
    prepared = prepared or {}
    flat = []
    for run in runs:
        config = flatten(run["config"])
        for role in ("teacher", "student.model"):  # one readable field instead of path and id
            prep_id = config.pop(f"{role}.prepared", None)
            if prep_id:
                config[f"{role}.weights"] = prepared.get(prep_id, prep_id)
        if config.get("data.dataset") == "folder" and config.get("data.root"):  # a folder is known by its name
            config["data.dataset"] = PurePath(str(config["data.root"])).name
        flat.append(config)
    keys = sorted({k for f in flat for k in f} - IGNORED)
    varying = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]
    # a shortened value (a path's last part) must not make two different settings one row
    full = {k for k in varying if len({_show(k, f.get(k)) for f in flat}) < len({repr(f.get(k)) for f in flat})}
    settings, method_keys = [], []
    for config in flat:
        unused = unused_keys(config) - full
        # a field this run's configuration does not have (another objective's parameter) says nothing about it
        shown = [k for k in varying if k not in unused and k in config]
        settings.append({FRIENDLY.get(k, k.split(".")[-1]): str(config.get(k)) if k in full else _show(k, config.get(k))
                         for k in shown})
        method_keys.append(frozenset(FRIENDLY.get(k, k.split(".")[-1]) for k in shown if k.startswith(METHOD_PREFIXES)))
    for role in MODEL_ROLES:  # a model given by name and weights file: one field, its weights' name
        settings = _merge_model(settings, role)
    out = []
    for run, config, setting, own in zip(runs, flat, settings, method_keys):
        used = used_temperature(run["config"].get("student") or {})
        temperature, policy, bounds = used.temperature, used.policy, used.bounds
        uses_own = used.spec is None or not used.spec.fixed  # a policy no longer registered: its own T
        # a fixed-policy run stored without a temperature is a cross-entropy-only run (``resolved``)
        distills = (config.get("student.objective") is not None and config.get("student.kd_weight") != 0
                    and (uses_own or temperature is not None))
        fixed = temperature is not None and not uses_own and distills
        metric, goal, final, best = primary_of(run)
        metrics = {k: v for k, v in (run.get("final") or {}).items() if isinstance(v, (int, float))}
        task = config.get("task")
        degenerate = (get_task(task).degenerate(metrics, every_set=True)
                      if run["status"] == "done" and task in TASKS else None)
        out.append(Record(run["run_id"], run["status"], temperature if fixed else None,
                          run["seed"], setting,
                          config.get("student.objective"), int(config["student.epochs"]),
                          final, best, run["curve"] or [], distills=distills,
                          method_keys=own, metric=metric, goal=goal, policy=policy, bounds=bounds,
                          metrics=metrics, degenerate=degenerate, reevaluated=bool(run.get("reevaluated")),
                          generations=task in TASKS and TASKS[task].writes_samples))
    return out


MODEL_ROLES = {"teacher": "teacher", "student.model": "student"}
"""Config roles whose model name and weights file make one setting field (the value's key)."""


def model_label(name: str, weights: str) -> str:
    """One readable name of a model given by architecture and weights file: the file's name when
    it names the architecture (``resnet56-4bfd9763``), else both (``resnet56 (best)``)."""
    return weights if name.lower() in weights.lower() else f"{name} ({weights})"


def _merge_model(settings: list[dict[str, str]], role: str) -> list[dict[str, str]]:
    """``teacher model=resnet56, teacher=resnet56-4bfd9763`` -> ``teacher=resnet56-4bfd9763``, in
    every setting that has both fields, unless that would make two different settings one."""
    name_key, weights_key, key = FRIENDLY[f"{role}.name"], FRIENDLY[f"{role}.weights"], MODEL_ROLES[role]
    both = [s for s in settings if name_key in s and weights_key in s]
    pairs = {(s[name_key], s[weights_key]) for s in both}
    if not both or len({model_label(*pair) for pair in pairs}) < len(pairs):
        return settings
    out = []
    for setting in settings:
        if name_key not in setting or weights_key not in setting:
            out.append(setting)
            continue
        merged = {}
        for k, v in setting.items():
            if k == name_key:
                merged[key] = model_label(v, setting[weights_key])
            elif k != weights_key:
                merged[k] = v
        out.append(merged)
    return out


@dataclass
class Cell:
    mean: float
    std: float
    n: int
    goal: str = "max"  # which means are better: the metric's goal


def _cell(values: list[float], goal: str = "max") -> Cell:
    return Cell(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values), goal)


def aggregate(items: Iterable[Record], metric: str, key=lambda r: r.label) -> dict[str, dict[float, Cell]]:
    """``{setting: {T: Cell}}`` over finished fixed-temperature runs: mean and sample std over seeds."""
    groups: dict[str, dict[float, list[float]]] = {}
    goal = "max"
    for record in items:
        value = record.value(metric)
        if record.status != "done" or value is None or record.temperature is None:
            continue
        goal = record.goal
        groups.setdefault(key(record), {}).setdefault(record.temperature, []).append(value)
    return {row: {t: _cell(v, goal) for t, v in sorted(cells.items())}
            for row, cells in sorted(groups.items(), key=lambda item: natural_key(item[0]))}


def aggregate_points(items: Iterable[Record], metric: str, key=lambda r: r.label) -> dict[str, Cell]:
    """``{setting: Cell}`` over finished runs without a fixed temperature: those that set their
    own (DTS, CTKD) and cross-entropy-only runs (``Record.distills`` tells them apart)."""
    groups: dict[str, list[float]] = {}
    goal = "max"
    for record in items:
        value = record.value(metric)
        if record.status == "done" and value is not None and record.temperature is None:
            goal = record.goal
            groups.setdefault(key(record), []).append(value)
    return {row: _cell(values, goal) for row, values in sorted(groups.items(), key=lambda item: natural_key(item[0]))}


def markdown_text(value: Any) -> str:
    """``value`` as literal Markdown table text: every character Markdown or HTML would interpret
    (emphasis, code, links, tags, entities, the cell separator) is escaped; an underscore inside
    a word (``ls_kd``), which CommonMark never reads as emphasis, is kept as it is."""
    text = str(value).replace("\n", " ").replace("\r", " ").replace("&", "&amp;")
    text = re.sub(r"([\\`*\[\]|<>~!])", r"\\\1", text)
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


TIE_TOLERANCE = 1e-5
"""Means (in percentage points) closer than this are equal: far below one test image in any test
set (100 / 10M images), far above the float32 rounding of accuracies stored by earlier versions
(19.500000476837158 for 39 of 200)."""


def goal_of(cells: Iterable[Cell]) -> str:
    """The goal of a row's (or a table's) metric: ``max`` unless its cells say ``min``."""
    return next((cell.goal for cell in cells), "max")


def better(a: float, b: float, goal: str = "max", tolerance: float = TIE_TOLERANCE) -> bool:
    """Whether mean ``a`` is better than ``b`` by more than ``tolerance``."""
    return a > b + tolerance if goal == "max" else a < b - tolerance


def best_temperatures(row: dict[float, Cell], tolerance: float = TIE_TOLERANCE) -> set[float]:
    """The temperatures whose mean is the row's best by its metric's goal (ties all count)."""
    if goal_of(row.values()) == "min":
        bottom = min(cell.mean for cell in row.values())
        return {t for t, cell in row.items() if cell.mean <= bottom + tolerance}
    top = max(cell.mean for cell in row.values())
    return {t for t, cell in row.items() if cell.mean >= top - tolerance}


def temperatures_of(table: dict[str, dict[float, Cell]]) -> list[float]:
    return sorted({t for row in table.values() for t in row})


def row_cells(cells: dict[float, Cell], temperatures: list[float]) -> list[tuple[Cell | None, bool]]:
    """One row of a heatmap table in column order: each column's cell (None where that T is
    missing) and whether it is the best of the row. Every renderer of the table uses this."""
    best = best_temperatures(cells)
    return [(cells.get(t), t in best) for t in temperatures]


def best_spread(row: dict[float, Cell]) -> float:
    """The seed std of the row's best cell (the largest of tied best cells); 0 without seeds to
    spread (one seed)."""
    return max((row[t].std for t in best_temperatures(row) if row[t].n > 1), default=0.0)


def within_best_spread(row: dict[float, Cell]) -> set[float]:
    """The temperatures whose mean lies within the best cell's seed std of the best mean (the best
    included): with these seeds, not distinguishable from the best. Empty when the best has no
    spread (one seed)."""
    spread = best_spread(row)
    if not row or spread <= 0:
        return set()
    best = best_temperatures(row)
    top = row[min(best)].mean
    return {t for t, cell in row.items() if t in best or abs(cell.mean - top) <= spread + TIE_TOLERANCE}


SPREAD_MARK = "†"
"""Marks a heatmap cell (not the best) whose mean lies within the best cell's seed std."""
SPREAD_NOTE = (f"{SPREAD_MARK} within the best cell's seed std of the row's best mean: with these seeds, not "
               "distinguishable from the best")
"""The legend line of the mark (the Markdown and HTML tables; the figure hatches such cells)."""


def row_marks(cells: dict[float, Cell], temperatures: list[float]) -> list[tuple[Cell | None, bool, bool]]:
    """:func:`row_cells` with a third field: whether the cell (not the best) lies within the best
    cell's seed spread (:func:`within_best_spread`), so a reader does not take noise for a finding."""
    near = within_best_spread(cells)
    return [(cell, best, t in near and not best)
            for t, (cell, best) in zip(temperatures, row_cells(cells, temperatures))]


def marks_any(table: dict[str, dict[float, Cell]]) -> bool:
    """Whether any cell of ``table`` is marked as within its row's best cell's spread."""
    return any(len(within_best_spread(cells)) > len(best_temperatures(cells)) for cells in table.values() if cells)


def cell_markdown(cell: Cell | None, best: bool, near: bool = False) -> str:
    """A heatmap cell in Markdown: the mean (bold for the best) +- the std when there are seeds to
    spread, and the spread mark (:data:`SPREAD_MARK`) when it lies within the best cell's std."""
    if cell is None:
        return ""
    mean = f"**{cell.mean:.2f}**" if best else f"{cell.mean:.2f}"
    return (f"{mean} +- {cell.std:.2f}" if cell.n > 1 else mean) + (f" {SPREAD_MARK}" if near else "")


DEGENERATE_MARK = "(degenerate)"
DEGENERATE_NOTE = (f"{DEGENERATE_MARK}: the generations of at least one of the cell's runs are degenerate (mostly empty, "
                   "looping, or few distinct words; generations.md says which and why): its score ranks noise")


def flagged(items: Iterable[Record], key=lambda r: r.label) -> set[tuple[str, float | None]]:
    """``(setting, T)`` of the cells holding a finished run with degenerate generations (T None: a
    run without a fixed temperature), keyed as :func:`aggregate` keys them."""
    return {(key(r), r.temperature) for r in items if r.status == "done" and r.degenerate}


def heatmap_markdown(table: dict[str, dict[float, Cell]], title: str,
                     flags: set[tuple[str, float | None]] | None = None) -> str:
    """Rows a setting, columns T, each cell the mean +- std over seeds; the best of each row (and
    its ties) in bold, the cells within the best cell's seed std marked (:data:`SPREAD_NOTE`), the
    cells in ``flags`` (:func:`flagged`) marked degenerate (:data:`DEGENERATE_NOTE`)."""
    flags = flags or set()
    temps = temperatures_of(table)
    note = metric_note(title)
    lines = [f"**{title}** (mean +- std over seeds; best per row, and ties, in bold){note}", "",
             "| setting | " + " | ".join(f"T={t:g}" for t in temps) + " |",
             "|---|" + "---:|" * len(temps)]
    for row, cells in table.items():
        values = [cell_markdown(*marks) + (f" {DEGENERATE_MARK}" if marks[0] is not None and (row, t) in flags else "")
                  for t, marks in zip(temps, row_marks(cells, temps))]
        lines.append(f"| {markdown_text(row)} | " + " | ".join(values) + " |")
    if marks_any(table):
        lines += ["", SPREAD_NOTE + "."]
    if any((row, t) in flags for row, cells in table.items() for t in cells):
        lines += ["", DEGENERATE_NOTE + "."]
    return "\n".join(lines) + "\n"


ONE_SEED = "one seed"
"""What a spread column says of a value from a single seed (a standard deviation of 0.00 would claim
a spread nobody measured)."""


def spread(std: float | None, n: int) -> str:
    """A seed std as a table shows it: two decimals, :data:`ONE_SEED` for one seed, empty for none."""
    if std is None:
        return ""
    return ONE_SEED if n < 2 else f"{std:.2f}"


def points_markdown(points: dict[str, Cell], title: str, flags: set[tuple[str, float | None]] | None = None) -> str:
    """The runs without a fixed temperature (DTS and CTKD set their own; cross-entropy-only runs
    use none): one row each, mean +- std over seeds; rows in ``flags`` marked degenerate."""
    if not points:
        return ""
    flags = flags or set()
    lines = [f"**{title}, runs without a fixed temperature (DTS, CTKD, no KD)** (mean +- std over seeds)", "",
             "| setting | mean | std | seeds |", "|---|---:|---:|---:|"]
    for row, cell in points.items():
        mark = f" {DEGENERATE_MARK}" if (row, None) in flags else ""
        lines.append(f"| {markdown_text(row)}{mark} | {cell.mean:.2f} | {spread(cell.std, cell.n)} | {cell.n} |")
    if any((row, None) in flags for row in points):
        lines += ["", DEGENERATE_NOTE + "."]
    return "\n".join(lines) + "\n"


def generation_rows(items: Iterable[Record], names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per finished run whose evaluation measured its generations (a language model's): its
    name, seed, every final metric with its spread over generation seeds (``seed_sd_<metric>``, None
    for one generation seed), and why its generations are degenerate (None when they are not)."""
    names = names or {}
    rows = []
    for r in items:
        if r.status != "done" or not r.generations:
            continue
        values = {k: v for k, v in r.metrics.items() if not k.startswith("seed_sd_") and not k.startswith("train")}
        rows.append({"run": r.run_id, "name": names.get(r.label, r.label), "T": r.temperature, "seed": r.seed,
                     "values": values, "spreads": {k: r.metrics.get(f"seed_sd_{k}") for k in values},
                     "degenerate": r.degenerate, "reevaluated": r.reevaluated})
    return sorted(rows, key=lambda row: (natural_key(row["name"]), row["T"] or 0.0, row["seed"]))


def generations_markdown(rows: list[dict[str, Any]], title: str = "Generations") -> str:
    """:func:`generation_rows` as Markdown: each metric as mean +- its spread over generation seeds
    ("one generation seed" in the caption when each was generated once), the degenerate ones named."""
    if not rows:
        return ""
    names = []
    for row in rows:
        names += [k for k in row["values"] if k not in names]
    several = any(v is not None for row in rows for v in row["spreads"].values())
    spread_text = "mean +- std over generation seeds" if several else "one generation seed: no spread known"
    lines = [f"**{title}** (each run's final evaluation; {spread_text}; degenerate: mostly empty, looping, or few "
             "distinct words on some evaluation set, so its score ranks noise)", "",
             "| run | setting | T | seed | " + " | ".join(names) + " | degenerate |",
             "|---|---|---:|---:|" + "---:|" * len(names) + "---|"]
    for row in rows:
        cells = []
        for name in names:
            value, sd = row["values"].get(name), row["spreads"].get(name)
            cells.append("" if value is None else f"{value:.2f}" + ("" if sd is None else f" +- {sd:.2f}"))
        temperature = "" if row["T"] is None else f"{row['T']:g}"
        lines.append(f"| {row['run']} | {markdown_text(row['name'])} | {temperature} | {row['seed']} | "
                     + " | ".join(cells) + f" | {markdown_text(row['degenerate'] or '')} |")
    if any(row["reevaluated"] for row in rows):
        lines += ["", "Runs finished under other evaluation settings were evaluated again (their final weights); "
                      "they have no best epoch under these settings."]
    return "\n".join(lines) + "\n"


def heatmap_csv(tables: dict[str, dict[str, dict[float, Cell]]],
                points: dict[str, dict[str, Cell]] | None = None, names: dict[str, str] | None = None) -> str:
    """Long form: metric, setting (the configuration's fields: a stable key), T, mean, std, n, best
    (1 for the best of its row), label (the row's name in the tables and figures, ``names``: the
    methods' published names) and within_best_std (1 where the mean lies within the best cell's
    seed std of the best mean, the best included; empty where the best has no spread, one seed).
    Runs without a fixed temperature have an empty T, best and within_best_std."""
    names = names or {}
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["metric", "setting", "temperature", "mean", "std", "n", "best", "label", "within_best_std"])
    for metric, table in tables.items():
        for row, cells in table.items():
            best, near = best_temperatures(cells), within_best_spread(cells)
            for t, cell in cells.items():
                writer.writerow([metric, row, f"{t:g}", repr(cell.mean), repr(cell.std), cell.n, int(t in best),
                                 names.get(row, row), int(t in near) if near else ""])
        for row, cell in (points or {}).get(metric, {}).items():
            writer.writerow([metric, row, "", repr(cell.mean), repr(cell.std), cell.n, "", names.get(row, row), ""])
    return buffer.getvalue()


def method_rows(items: list[Record], metric: str) -> list[dict[str, Any]]:
    """Each method at its best: per context (the setting without the method's own fields), every
    method's best mean over T (or its single value when it sets its own temperature), with std
    and seeds, and the gain over the best fixed-temperature KD of the same context (positive:
    better, by the metric's goal). ``method`` is the method's configuration fields (a key:
    ``objective=kd, policy=dts``), ``name`` its published name (``DTS [4, 8]``, :meth:`Record.name`)."""
    def split(record: Record) -> tuple[str, str]:
        own = set(METHOD_KEYS) | record.method_keys
        method = {k: v for k, v in record.setting.items() if k in own}
        context = {k: v for k, v in record.setting.items() if k not in own}
        return setting_label(context), setting_label(method) if record.distills else NO_KD

    def context_keys(record: Record) -> list[str]:
        own = set(METHOD_KEYS) | record.method_keys
        return [k for k in record.setting if k not in own]

    names = readable(items, key=lambda r: split(r)[1], drop=context_keys)
    names.update({split(r)[1]: r.method for r in items if split(r)[1] == "all runs"})  # the method does not vary

    with_t = aggregate(items, metric, key=lambda r: "\x00".join(split(r)))
    without_t = aggregate_points(items, metric, key=lambda r: "\x00".join(split(r)))
    kd_keys = {"\x00".join(split(r)) for r in items if r.objective == "kd" and r.temperature is not None}
    goal = next((r.goal for r in items if r.status == "done" and r.value(metric) is not None), "max")
    def at_best(cells: dict[float, Cell]) -> tuple[str, Cell]:
        """The best temperatures (tied ones joined: ``10/20``) and the first one's cell."""
        best = sorted(best_temperatures(cells))
        return "/".join(f"{t:g}" for t in best), cells[best[0]]

    best_kd: dict[str, tuple[str, Cell]] = {}
    for key in sorted(kd_keys & set(with_t)):  # in a fixed order: the first of tied baselines stays
        context = key.split("\x00")[0]
        temperatures, cell = at_best(with_t[key])
        if context not in best_kd or better(cell.mean, best_kd[context][1].mean, goal):
            best_kd[context] = (temperatures, cell)
    rows = []
    for key, cells in with_t.items():
        rows.append((key, *at_best(cells)))
    rows += [(key, "none" if key.endswith("\x00" + NO_KD) else "own", cell) for key, cell in without_t.items()]
    out = []
    for key, temperature, cell in rows:
        context, method = key.split("\x00")
        baseline = best_kd.get(context)
        gain = None if baseline is None else (cell.mean - baseline[1].mean) * (1 if goal == "max" else -1)
        out.append({"context": context, "method": method, "name": names.get(method, method), "T": temperature,
                    "mean": cell.mean, "std": cell.std,
                    "n": cell.n, "gain": gain,
                    "kd_std": None if baseline is None else baseline[1].std,
                    "kd_n": None if baseline is None else baseline[1].n,
                    "kd_T": None if baseline is None else baseline[0]})
    return sorted(out, key=lambda r: (r["context"], -(r["mean"]) if goal == "max" else r["mean"]))


def methods_markdown(rows: list[dict[str, Any]], title: str) -> str:
    """The method table: best T, mean +- std over seeds, gain over the best fixed-T KD."""
    if not rows:
        return ""
    lines = [f"**{title}: each method at its best temperature** (mean +- std over seeds; gain over the best "
             "fixed-T KD of the same setting, whose seed std is given for scale; the best T is chosen on the "
             "test set, as in the papers)", "",
             "| setting | method | best T | mean | std | seeds | gain over best KD (KD std) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        gain = "" if r["gain"] is None else f"{r['gain']:+.2f} ({spread(r['kd_std'], r['kd_n'])}, KD at T={r['kd_T']})"
        name = markdown_text(r.get("name", r["method"]))
        lines.append(f"| {markdown_text(r['context'])} | {name} | {r['T']} | {r['mean']:.2f} | "
                     f"{spread(r['std'], r['n'])} | {r['n']} | {gain} |")
    return "\n".join(lines) + "\n"


def teachers_rows(teachers: list[dict], runs: list[dict] | None = None, prepared: dict[str, str] | None = None,
                  metric: Metric = Metric()) -> list[dict[str, Any]]:
    """One row per diagnosed teacher: its name (a prepared teacher's label, else model and weights
    file), dataset, its test value of the study's metric (as the runs that used it measured it;
    the key ``test <metric>``, ``test top1``), the same metric on the training split (``train``, from
    its diagnostics) and relative entropies at T = 1."""
    prepared = prepared or {}
    test_key = f"test {metric.name}"
    rows = []
    for teacher in teachers:
        config, diagnostics = teacher["config"], teacher["diagnostics"]
        model = config["teacher"]
        if model.get("prepared"):
            name = prepared.get(model["prepared"], model["prepared"])
        else:  # named once: its weights file when that names the architecture (resnet56-4bfd9763)
            source = model.get("weights") or model.get("init")
            name = model_label(str(model["name"]), _show("teacher.weights", source))
        data = config["data"]
        dataset = PurePath(str(data["root"])).name if data.get("dataset") == "folder" and data.get("root") else data["dataset"]
        test = [r["teacher"].get(metric.name) for r in runs or [] if r.get("teacher") and distilled_from(r, teacher)]
        rows.append({"teacher": name, "dataset": dataset, test_key: test[0] if test else None,
                     "train": diagnostics.get(metric.name), "H(p)": diagnostics["relative_entropy"],
                     "H(p_bar)": diagnostics["relative_entropy_without_top"], "teacher_id": teacher["teacher_id"]})
    return sorted(rows, key=lambda r: (natural_key(r["dataset"]), natural_key(r["teacher"])))


def teachers_markdown(rows: list[dict[str, Any]], metric: Metric = Metric(), split: str = "test") -> str:
    """The teachers' table; ``split``: the split the runs evaluated on (its task's ``evaluation_split``)."""
    lines = [f"**Teachers** (test {metric.short} on the {split} split; relative entropies and {metric.short} on the "
             "un-augmented training split at T = 1)", "",
             f"| teacher | dataset | test {metric.short} | train {metric.short} | H(p) | H(p_bar) |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        tail = "n/a (2 classes)" if r["H(p_bar)"] is None else f"{r['H(p_bar)']:.3f}"
        value = r.get(f"test {metric.name}")
        test = "" if value is None else f"{value:.2f}"
        train = "" if r["train"] is None else f"{r['train']:.2f}"
        lines.append(f"| {markdown_text(r['teacher'])} | {markdown_text(r['dataset'])} | {test} | {train} | "
                     f"{r['H(p)']:.3f} | {tail} |")
    return "\n".join(lines) + "\n"


def evaluated_teachers(runs: list[dict], prepared: dict[str, str] | None = None,
                       metric: Metric = Metric(), preparations: list[dict] | None = None) -> list[dict[str, Any]]:
    """One row per teacher as the cohorts that distilled from it evaluated it (a task without teacher
    diagnostics, a language model's): its name, dataset, the study's metric and every other metric
    its evaluation gave (perplexity, each evaluation set's), from the runs' stored ``teacher``; a
    prepared teacher's from its preparation (``preparations``, the store's rows: under the study's
    evaluation settings, evaluated again when they changed). A teacher of runs evaluated again that
    was not prepared by the study is left out: its metrics were measured under the earlier settings."""
    prepared = prepared or {}
    finals = {p["prep_id"]: p.get("final") or {} for p in preparations or [] if p.get("status") == "done"}
    rows: dict[str, dict[str, Any]] = {}
    for run in runs:
        metrics = run.get("teacher")
        model = run["config"].get("teacher")
        if model and model.get("prepared") in finals:
            metrics = {k: v for k, v in finals[model["prepared"]].items() if not k.startswith("train")}
        elif run.get("reevaluated"):
            continue
        if not metrics or not model:
            continue
        data = run["config"]["data"]
        key = json.dumps([model, {k: v for k, v in data.items() if k not in ("cache_dir", "download")}], sort_keys=True)
        if key in rows:
            continue
        if model.get("prepared"):
            name = prepared.get(model["prepared"], model["prepared"])
        else:
            source = model.get("weights") or model.get("init")
            name = model_label(str(model["name"]), _show("teacher.weights", source))
        values = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        rows[key] = {"teacher": name, "dataset": str(data.get("dataset")), "value": values.get(metric.name),
                     "metrics": values}
    return sorted(rows.values(), key=lambda r: (natural_key(r["dataset"]), natural_key(r["teacher"])))


def evaluated_teachers_markdown(rows: list[dict[str, Any]], metric: Metric = Metric(), split: str = "test") -> str:
    """The teachers' table of :func:`evaluated_teachers`: the study's metric, then the others."""
    if not rows:
        return ""
    others = sorted({k for r in rows for k in r["metrics"] if k != metric.name and not k.startswith("seed_sd_")})
    lines = [f"**Teachers** ({metric.short} and the other measures of their evaluation on the {split} split, as "
             "the cohorts that distilled from them measured them)", "",
             "| teacher | dataset | " + " | ".join([metric.short, *others]) + " |",
             "|---|---|" + "---:|" * (1 + len(others))]
    for r in rows:
        cells = [r["value"], *(r["metrics"].get(k) for k in others)]
        lines.append(f"| {markdown_text(r['teacher'])} | {markdown_text(r['dataset'])} | "
                     + " | ".join("" if v is None else f"{v:.2f}" for v in cells) + " |")
    return "\n".join(lines) + "\n"


TEACHER_KEYS = ("teacher", "teacher model", "teachers", "teacher init")


def distilled_from(run: dict, teacher: dict) -> bool:
    """Whether ``run`` distilled from the stored ``teacher`` (the same model on the same data; where
    the cache lives and whether the data may be downloaded do not matter)."""
    def data(config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in ("cache_dir", "download")}

    return (teacher["config"]["teacher"] == run["config"].get("teacher")
            and data(teacher["config"]["data"]) == data(run["config"]["data"]))


def teacher_of_run(run: dict, rows: list[dict[str, Any]], teachers: list[dict]) -> dict[str, Any] | None:
    """The teacher row (of :func:`teachers_rows`) of the teacher a run distilled from."""
    by_id = {row["teacher_id"]: row for row in rows}
    return next((by_id.get(t["teacher_id"]) for t in teachers if distilled_from(run, t)), None)


def teacher_table_markdown(items: list[Record], runs: list[dict], rows: list[dict[str, Any]], teachers: list[dict],
                           metric: str, title: str, primary: Metric = Metric()) -> str:
    """The study's Table 1: a row per teacher with its test value of the ``primary`` metric and
    relative entropies beside the students' ``metric`` (``final_top1``) at each T (mean +- std over
    seeds), one block per other setting (student, optimizer, ...); the best per row in bold. Empty
    unless the teacher varies."""
    by_run = {run["run_id"]: teacher_of_run(run, rows, teachers) for run in runs}
    named = [r for r in items if by_run.get(r.run_id) is not None]
    if len({by_run[r.run_id]["teacher_id"] for r in named}) < 2:
        return ""
    blocks: dict[str, list[Record]] = {}
    for record in named:
        context = setting_label({k: v for k, v in record.setting.items() if k not in TEACHER_KEYS})
        blocks.setdefault(context, []).append(record)
    lines = [f"**{title} by teacher** (test {primary.short} of each teacher; H(p), H(p_bar) on its training split at T = 1; "
             "students' mean +- std over seeds; best per row in bold)", ""]
    # each block by its methods' published names (KD, DTS [4, 8]), as the other tables
    named_context = {setting_label({k: v for k, v in r.setting.items() if k not in TEACHER_KEYS}):
                     r.name(drop=TEACHER_KEYS) for r in named}
    marked = False
    for context, block in sorted(blocks.items(), key=lambda item: natural_key(item[0])):
        table = aggregate(block, metric, key=lambda r: by_run[r.run_id]["teacher_id"])
        if not table:  # runs without a fixed temperature (DTS, CTKD): no T column to show them at
            continue
        temps = temperatures_of(table)
        if context != "all runs":
            lines.append(f"*{markdown_text(named_context.get(context, context))}*")
            lines.append("")
        lines.append(f"| teacher | dataset | test {primary.short} | H(p) | H(p_bar) | " + " | ".join(f"T={t:g}" for t in temps) + " |")
        lines.append("|---|---|---:|---:|---:|" + "---:|" * len(temps))
        info = {row["teacher_id"]: row for row in rows}
        for teacher_id in sorted(table, key=lambda i: (natural_key(info[i]["dataset"]), natural_key(info[i]["teacher"]))):
            row = info[teacher_id]
            cells = [cell_markdown(*marks) for marks in row_marks(table[teacher_id], temps)]
            marked = marked or marks_any({teacher_id: table[teacher_id]})
            value = row.get(f"test {primary.name}")
            test = "" if value is None else f"{value:.2f}"
            tail = "n/a" if row["H(p_bar)"] is None else f"{row['H(p_bar)']:.3f}"
            lines.append(f"| {markdown_text(row['teacher'])} | {markdown_text(row['dataset'])} | {test} | "
                         f"{row['H(p)']:.3f} | {tail} | " + " | ".join(cells) + " |")
        lines.append("")
    if marked:
        lines += [SPREAD_NOTE + ".", ""]
    return "\n".join(lines)

"""Finished runs and prepared models evaluated apart from training.

``kdtemp evaluate STUDY data.generation.seeds=[10,20,30,40,50]``: every finished run and prepared model
of a study evaluated under other evaluation settings (dotted overrides of the task's evaluation fields,
:attr:`~kdtemp.tasks.base.Task.evaluation_fields`), nothing trained. The study driver does the same
for the runs a changed study file asks to evaluate differently (:func:`evaluate_awaiting`): evaluation
settings are not part of a run's identity, so a finished run is evaluated again, never trained again.
Every result lands beside its run (:mod:`kdtemp.engine.evaluation`), so an evaluation done once is
never done twice and an interrupted one resumes with the models it had not finished."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..config import ConfigError, apply_overrides, from_dict, parse_override, to_dict
from ..engine import CohortConfig
from ..engine.evaluation import Evaluator, read_evaluation
from ..engine.storage import RunFolder
from ..tasks import get_task
from ..weights import read_weights
from .layout import store_path
from .spec import Study
from .store import PREPARATION, RUN, Store


@dataclass
class Job:
    """One model to evaluate: a finished run (``kind`` ``run``) or a prepared model (``prepared``)."""

    kind: str
    label: str
    seed: int
    id: str
    config: CohortConfig
    weights: Callable[[], dict]
    folder: Path
    source: str

    @property
    def store_kind(self) -> str:
        return PREPARATION if self.kind == "prepared" else RUN


def check_overrides(task: str, overrides: list[str]) -> None:
    """One line for an override that is not one of the task's evaluation fields."""
    fields = sorted(get_task(task).evaluation_fields)
    allowed = ", ".join(f"data.{name}" for name in fields) or "none: its evaluation has no settings apart from training"
    for text in overrides:
        keys, _ = parse_override(text)
        if keys[0] != "data" or len(keys) < 2 or keys[1] not in fields:
            raise ConfigError(f"{'.'.join(keys)}: evaluate changes only what training does not read (a {task} "
                              f"study's evaluation fields); allowed: {allowed}")


def _config(spec_config: CohortConfig, overrides: list[str], where: str) -> CohortConfig:
    if not overrides:
        return spec_config
    try:
        return from_dict(CohortConfig, apply_overrides(to_dict(spec_config), overrides))
    except ConfigError as error:
        raise ConfigError(f"{error} (evaluating {where})") from None


def study_jobs(study: Study, overrides: list[str], runs: Iterable[str], preparations: Iterable[str]) -> list[Job]:
    """The evaluation jobs of the named finished ``runs`` and ``preparations`` of ``study``."""
    runs, preparations = set(runs), set(preparations)
    jobs = []
    for preparation in study.preparations:
        if preparation.prep_id in preparations:
            cohort = preparation.config.cohort()
            jobs.append(Job("prepared", preparation.label, cohort.members[0].seed, preparation.prep_id,
                            _config(cohort, overrides, f"prepared {preparation.label}"),
                            lambda p=preparation: read_weights(p.weights)[0],
                            preparation.folder.parent / "runs" / preparation.prep_id, str(preparation.weights)))
    runs_dir = study.output / "runs"
    for run in study.runs:
        if run.run_id in runs:
            folder = RunFolder(runs_dir, run.run_id)
            jobs.append(Job("run", run.spec.student.label(), run.spec.student.seed, run.run_id,
                            _config(run.spec.cohort_config(), overrides, f"run {run.run_id}"),
                            lambda f=folder: f.load_checkpoint()["model"], folder.path, str(folder.checkpoint_path)))
    return jobs


def run_jobs(jobs: list[Job], progress: bool = True,
             done: Callable[[Job, dict, bool], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate ``jobs`` (the data opened once per cohort key and evaluation); one row each (``kind``,
    ``label``, ``seed``, ``id``, ``metrics``, ``cached``: whether it was evaluated before).
    ``done(job, record, cached)`` after each."""
    evaluators: dict[str, Evaluator] = {}
    rows = []
    for job in jobs:
        record = read_evaluation(job.folder, job.config.evaluation())
        cached = record is not None
        if record is None:
            key = json.dumps([job.config.key(), job.config.evaluation()], sort_keys=True, default=str)
            if key not in evaluators:
                evaluators[key] = Evaluator(job.config, progress=progress)
            role = "teacher" if job.kind == "prepared" else "student"
            record = evaluators[key].evaluate(job.config.members[0].model, job.weights(), job.folder, role, job.source)
            if progress:
                print(f"  evaluated {job.kind} {job.label} (seed {job.seed}) in {record['seconds']:.0f} s")
        if done is not None:
            done(job, record, cached)
        rows.append({"kind": job.kind, "label": job.label, "seed": job.seed, "id": job.id,
                     "metrics": record["metrics"], "cached": cached})
    return rows


def evaluate_study(study: Study, overrides: list[str], progress: bool = True) -> list[dict[str, Any]]:
    """Evaluate every finished run and prepared model of ``study`` under ``overrides``; one row each
    (:func:`run_jobs`)."""
    tasks = {run.spec.task for run in study.runs} | {p.config.cohort().task for p in study.preparations}
    for task in sorted(tasks):
        check_overrides(task, overrides)
    if not store_path(study).is_file():
        raise ConfigError(f"study {study.file.name!r} has no store at {store_path(study)}; run it first")
    with Store(store_path(study), readonly=True) as store:
        done_runs = {r["run_id"] for r in store.runs() if r["status"] == "done"}
        done_preparations = {p["prep_id"] for p in store.preparations() if p["status"] == "done"}
    jobs = study_jobs(study, overrides, done_runs, done_preparations)
    if not jobs:
        raise ConfigError(f"study {study.file.name!r} has no finished run or prepared model to evaluate")
    if progress:
        todo = sum(read_evaluation(job.folder, job.config.evaluation()) is None for job in jobs)
        print(f"evaluate: {len(jobs)} finished models, {len(jobs) - todo} evaluated under these settings already"
              f" ({' '.join(overrides) if overrides else 'the study file as it is'})")
    return run_jobs(jobs, progress)


def evaluate_awaiting(study: Study, store: Store, kind: str, progress: bool = True) -> int:
    """Evaluate the finished runs (``kind`` ``run``) or prepared models (``preparation``) whose metrics
    were measured under other evaluation settings than the study file now asks for, and record each
    in the store (:meth:`~kdtemp.study.store.Store.record_evaluation`); return how many."""
    awaiting = {row["run_id" if kind == RUN else "prep_id"] for row in store.awaiting_evaluation(kind)}
    if not awaiting:
        return 0
    jobs = study_jobs(study, [], awaiting if kind == RUN else (), awaiting if kind == PREPARATION else ())
    if progress and jobs:
        print(f"evaluate: {len(jobs)} finished {'runs' if kind == RUN else 'prepared models'} were evaluated under "
              "other settings than the study file's; evaluating their final weights again (nothing is trained)")

    def record(job: Job, result: dict, cached: bool) -> None:
        store.record_evaluation(job.store_kind, job.id, result["settings"], result["metrics"], result.get("seconds", 0.0))

    run_jobs(jobs, progress, record)
    return len(jobs)


def evaluation_table(rows: list[dict[str, Any]]) -> str:
    """The evaluated models as a text table: each metric with its spread over generation seeds."""
    names = []
    for row in rows:
        names += [k for k in row["metrics"] if not k.startswith("seed_sd_") and k not in names]
    lines = ["kind\tlabel\tseed\tid\t" + "\t".join(names)]
    for row in rows:
        metrics = row["metrics"]
        cells = []
        for name in names:
            value, spread = metrics.get(name), metrics.get(f"seed_sd_{name}")
            cells.append("" if value is None else f"{value:.2f}" + ("" if spread is None else f" ± {spread:.2f}"))
        lines.append(f"{row['kind']}\t{row['label']}\t{row['seed']}\t{row['id']}\t" + "\t".join(cells))
    return "\n".join(lines)

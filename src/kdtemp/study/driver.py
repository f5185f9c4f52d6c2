"""The study driver: registers runs in the store, hands cohorts to an executor, records results.

Running a study again (``run`` or ``resume``) skips finished runs and continues interrupted ones
from their checkpoints. Runs that failed stay failed unless ``retry_failed`` is set.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from ..config import to_dict
from ..data import default_cache_dir
from ..engine.diagnose import DEFAULT_TEMPERATURES
from ..engine.preflight import Preflight, preflight
from ..files import warn
from .executors import Task, make_executor
from .lock import StudyLock, describe, live_holder
from .spec import ExecutorConfig, Study
from .store import Store

def teacher_id(spec) -> str | None:
    """Identity of a (teacher, dataset) pair, for its diagnostics; None without a teacher."""
    if spec.teacher is None:
        return None
    key = spec.key()
    identity = {"teacher": key["teacher"], "data": key["data"], "crop": spec.augment.random_resized_crop}
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def store_path(study: Study) -> Path:
    return study.output / "study.sqlite"


def register(study: Study, store: Store) -> None:
    """Record the study file and add any run the store does not have yet (as pending)."""
    store.set_meta("name", study.file.name)
    store.set_meta("study_file", study.source)
    store.set_meta("axes", study.axis_names)
    rows = []
    for cohort in study.cohorts:
        for position, run in enumerate(cohort.runs):
            rows.append({"run_id": run.run_id, "cohort_id": cohort.cohort_id, "position": position,
                         "label": run.spec.student.label(), "cell": run.cell, "seed": run.seed,
                         "config": to_dict(run.spec), "epochs": run.spec.student.epochs})
    store.register(rows)


def check_study(study: Study, executor: ExecutorConfig | None = None, download: bool = True) -> Preflight:
    """Preflight of every cohort of ``study`` (see :mod:`kdtemp.engine.preflight`); nothing is written."""
    executor = executor or study.file.executor
    remote = executor.kind == "ray" and bool(executor.ray_address)
    cohorts = [(cohort.config(), [run.spec.student for run in cohort.runs]) for cohort in study.cohorts]
    return preflight(cohorts, device="auto" if remote else executor.device, download=download)


def run_study(study: Study, executor: ExecutorConfig | None = None, progress: bool = True,
              retry_failed: bool = False) -> dict[str, int]:
    """Train every unfinished run of ``study``; return the final status counts of its runs.

    Preflight runs first: a mistake in the data or a weights file stops the study before its
    store is written."""
    executor = executor or study.file.executor
    check_study(study, executor)
    runs_dir = study.output / "runs"
    with StudyLock(study.output), Store(store_path(study)) as store:
        register(study, store)
        status = {r["run_id"]: r["status"] for r in store.runs()}
        finished = {"done", "failed"} if not retry_failed else {"done"}
        diagnosed = {t["teacher_id"] for t in store.teachers()}
        temperatures = sorted({r.spec.student.temperature for r in study.runs if r.spec.student.temperature is not None}
                              | set(DEFAULT_TEMPERATURES))
        tasks = []
        for cohort in study.cohorts:
            todo = [r for r in cohort.runs if status[r.run_id] not in finished]
            teacher = teacher_id(cohort.runs[0].spec)
            if not todo and (teacher is None or teacher in diagnosed):
                continue
            config = dataclasses.replace(cohort.config(), members=[r.spec.student for r in todo])
            plain = to_dict(config)
            plain["data"]["cache_dir"] = plain["data"]["cache_dir"] or str(default_cache_dir())
            plain["checkpoint_every"] = executor.checkpoint_every
            diagnose = teacher is not None and teacher not in diagnosed
            diagnosed.add(teacher)
            tasks.append(Task(cohort.cohort_id, plain, str(runs_dir), [r.run_id for r in todo], teacher, diagnose,
                              temperatures))
        if progress:
            print(f"study {study.file.name}: {len(study.runs)} runs in {len(study.cohorts)} cohorts; "
                  f"{sum(len(t.run_ids) for t in tasks)} to train in {len(tasks)} cohorts ({executor.kind} executor)")
        for task in tasks:
            store.mark_running(task.run_ids)
        unfinished = {task.cohort_id: task for task in tasks}
        try:
            for task, results, error in make_executor(executor, progress).execute(tasks):
                unfinished.pop(task.cohort_id, None)
                if error is not None:
                    store.record_failure(task.run_ids, f"cohort {task.cohort_id} failed: {error}")
                else:
                    for result in results["results"]:
                        store.record(result)
                        for message in result.get("warnings") or []:
                            warn(f"run {result['run_id']} ({result['label']}): {message}")
                    if results["teacher"] is not None:
                        store.record_teacher(task.teacher_id, {"teacher": task.cohort["teacher"],
                                                               "data": task.cohort["data"]}, results["teacher"])
                if progress:
                    counts = store.counts(r.run_id for r in study.runs)
                    print(f"  cohort {task.cohort_id} finished: {counts['done']} done, {counts['failed']} failed, "
                          f"{counts['pending'] + counts['running']} to go")
        finally:  # an executor that could not start, or a driver stopped by an exception: nothing stays "running"
            store.mark_pending([run_id for task in unfinished.values() for run_id in task.run_ids])
        return store.counts(r.run_id for r in study.runs)


def results_table(study: Study | None, store: Store) -> list[dict[str, Any]]:
    """One flat row per run of the study (every run in the store when ``study`` is None)."""
    ids = [r.run_id for r in study.runs] if study is not None else None
    axes = store.meta("axes", [])
    rows = []
    for run in store.runs(ids):
        row = {"run_id": run["run_id"], "cohort_id": run["cohort_id"], "label": run["label"]}
        row.update({axis: run["cell"].get(axis) for axis in axes})
        row.update({key: run[key] for key in ("seed", "status", "epochs", "epochs_done", "final_top1", "final_top5",
                                               "best_top1", "best_top5", "best_epoch", "seconds", "error")})
        rows.append(row)
    return rows


def export(study: Study | None, store: Store, fmt: str) -> str:
    """The results table as CSV, or as JSON with every run's per-epoch curve."""
    rows = results_table(study, store)
    if fmt == "json":
        curves = {r["run_id"]: r for r in store.runs([row["run_id"] for row in rows])}
        return json.dumps([{**row, "config": curves[row["run_id"]]["config"], "curve": curves[row["run_id"]]["curve"]}
                           for row in rows], indent=1)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def plan(study: Study) -> str:
    """The runs, the cohorts, what preflight found and an estimate of the cost, as text.

    Runs preflight (without downloading): a mistake stops ``plan`` as it would stop ``run``."""
    checked = check_study(study, download=False)
    lines = [f"study {study.file.name}: {len(study.runs)} runs in {len(study.cohorts)} cohorts "
             f"({len(study.file.seeds)} seeds); output {study.output}"]
    lines.append(f"axes: {', '.join(study.axis_names) or '(none)'}")
    lines += [f"note: {note}" for note in study.notes]
    described = set()
    for cohort in study.cohorts:
        data = cohort.runs[0].spec.data
        key = json.dumps(to_dict(data), sort_keys=True)
        if key in described:
            continue
        described.add(key)
        try:
            lines.append(f"data: {checked.facts(data).describe()}")
        except KeyError:
            lines.append(f"data: {data.dataset} at {data.root!r} is downloaded when the study runs")
    teacher_images = solo_teacher_images = student_images = 0
    for cohort in study.cohorts:
        spec = cohort.runs[0].spec
        try:
            size = checked.facts(spec.data).train // spec.batch_size * spec.batch_size
        except KeyError:
            size = None
        epochs = [r.spec.student.epochs for r in cohort.runs]
        teacher = spec.teacher.name if spec.teacher else "none"
        lines.append(f"  cohort {cohort.cohort_id}: {len(cohort.runs)} runs, {spec.data.dataset}, teacher {teacher}, "
                     f"batch {spec.batch_size}, data seed {spec.data_seed}, epochs {min(epochs)}-{max(epochs)}")
        if size:
            teacher_images += size * max(epochs)
            solo_teacher_images += size * sum(epochs)
            student_images += size * sum(epochs)
    if student_images:
        lines.append(f"cost: ~{student_images:,} student image-steps (forward+backward) and ~{teacher_images:,} teacher "
                     f"forward passes; separate runs would need ~{solo_teacher_images:,} teacher passes "
                     f"({1 - teacher_images / solo_teacher_images:.0%} saved by cohorts)")
    lines.append("preflight: data, weights and devices checked; nothing is wrong that can be found before training")
    if store_path(study).is_file():
        with Store(store_path(study), readonly=True) as store:
            counts = store.counts(r.run_id for r in study.runs)
            done = [r for r in store.runs(r.run_id for r in study.runs) if r["status"] == "done" and r["epochs_done"]]
            lines.append(f"store: {counts['done']} done, {counts['failed']} failed, {counts['pending'] + counts['running']} to go")
            if done:
                pace = sum(r["seconds"] for r in done) / sum(r["epochs_done"] for r in done)
                remaining = sum(r.spec.student.epochs for r in study.runs) - sum(r["epochs_done"] for r in store.runs(r.run_id for r in study.runs))
                lines.append(f"estimate: ~{pace * remaining / 60:.1f} min of member time left at the recorded "
                             f"{pace:.2f} s per member-epoch")
    return "\n".join(lines)


def status(study: Study) -> str:
    """Progress of a study from its store. Runs marked running while no driver holds the study
    are shown as interrupted: a driver that died cannot finish them, ``resume`` will."""
    if not store_path(study).is_file():
        return f"study {study.file.name}: not started ({len(study.runs)} runs planned)"
    holder = live_holder(study.output)
    with Store(store_path(study), readonly=True) as store:
        runs = store.runs(r.run_id for r in study.runs)
        counts = store.counts(r.run_id for r in study.runs)
    if holder is None and counts["running"]:
        counts["interrupted"] = counts.pop("running")
    lines = [f"study {study.file.name}: {len(study.runs)} runs: " + ", ".join(f"{counts[s]} {s}" for s in counts)]
    if holder is not None:
        lines.append(f"  a driver is running it now ({describe(holder)})")
    elif counts.get("interrupted"):
        lines.append(f"  {counts['interrupted']} runs were interrupted: no driver is running the study; "
                     "`kdtemp study resume` continues them from their checkpoints")
    missing = len(study.runs) - len(runs)
    if missing:
        lines.append(f"  {missing} runs of the file are not registered yet (run the study to add them)")
    for run in runs:
        if run["status"] == "failed":
            lines.append(f"  failed {run['run_id']} ({run['label']}): {run['error']}")
    return "\n".join(lines)


def rebuild(study: Study) -> tuple[Path | None, dict[str, int]]:
    """A new store for ``study`` from its run folders (each run's ``metrics.json``); a damaged
    store is kept aside. Teacher diagnostics are recomputed by the next ``run``.

    Returns where the old store went (None when there was none) and the rebuilt status counts."""
    from ..engine.storage import RunFolder

    path = store_path(study)
    with StudyLock(study.output):
        moved = None
        if path.exists():
            moved = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            os.replace(path, moved)
            for suffix in ("-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    os.replace(side, moved.with_name(moved.name + suffix))
        with Store(path) as store:
            register(study, store)
            for run in study.runs:
                metrics = RunFolder(study.output / "runs", run.run_id).read_metrics()
                if metrics and metrics.get("status") in ("done", "failed") and metrics.get("run_id") == run.run_id:
                    store.record(metrics)
            return moved, store.counts(r.run_id for r in study.runs)

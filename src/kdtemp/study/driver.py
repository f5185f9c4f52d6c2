"""The study driver: registers runs in the store, hands cohorts to an executor, records results.

Running a study again (``run`` or ``resume``) skips finished runs and continues interrupted ones
from their checkpoints. Runs that failed stay failed unless ``retry_failed`` is set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

from ..config import ConfigError, to_dict
from ..paths import default_cache_dir
from ..engine.diagnose import DEFAULT_TEMPERATURES
from ..tasks import get_task
from ..tasks.base import Preflight
from ..files import warn
from .executors import Task, make_executor
from .layout import store_path
from .lock import StudyLock, describe, live_holder, read_holder
from ..engine.storage import RunFolder
from .spec import ExecutorConfig, Study
from .cost import Cost, assumption, training_cost
from .stages import describe as describe_preparation
from .evaluation import evaluate_awaiting
from .store import PREPARATION, RUN, Store
from .results import export, results_table  # noqa: F401  (re-exported: kdtemp.study's API)

def teacher_id(spec) -> str | None:
    """Identity of a (teacher, dataset) pair, for its diagnostics; None without a teacher."""
    if spec.teacher is None:
        return None
    key = spec.key()
    identity = {"teacher": key["teacher"], "data": key["data"]}
    identity.update(get_task(spec.task).teacher_view(spec.augment))  # images: the crop changes the evaluation view
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def register(study: Study, store: Store) -> None:
    """Record the study file and add any run (and preparation) the store does not have yet (as pending)."""
    store.set_meta("name", study.file.name)
    store.set_meta("study_file", study.source)
    store.set_meta("axes", study.axis_names)
    store.set_meta("run_ids", [run.run_id for run in study.runs])
    rows = []
    for cohort in study.cohorts:
        for position, run in enumerate(cohort.runs):
            rows.append({"run_id": run.run_id, "cohort_id": cohort.cohort_id, "position": position,
                         "label": run.spec.student.label(), "cell": run.cell, "seed": run.seed,
                         "config": to_dict(run.spec), "epochs": run.spec.student.epochs,
                         "evaluation": run.spec.cohort_config().evaluation()})
    store.register(rows)
    store.register_preparations({**describe_preparation(p), "evaluation": p.config.cohort().evaluation()}
                                for p in study.preparations)


def _plain_cohort(config, executor: ExecutorConfig, logging=None) -> dict:
    plain = to_dict(config)
    if logging is not None:
        plain["logging"] = to_dict(logging)
    if "cache_dir" in plain["data"]:  # a worker in another process caches where the driver does
        plain["data"]["cache_dir"] = plain["data"]["cache_dir"] or str(default_cache_dir())
    plain["checkpoint_every"] = executor.checkpoint_every
    plain["fuse"] = executor.fuse
    return plain


def prepared(preparation) -> bool:
    """Whether a preparation's ``teacher.pt`` exists and is intact (a damaged one is moved aside)."""
    from ..files import quarantine
    from ..weights import WeightsError, read_weights

    if not preparation.weights.is_file():
        return False
    try:
        read_weights(preparation.weights)
        return True
    except WeightsError as error:
        moved = quarantine(preparation.weights, str(error))
        warn(f"{error}; moved aside as {moved.name}, and the model is prepared again")
        return False


def run_preparations(study: Study, store: Store, executor: ExecutorConfig, progress: bool,
                     retry_failed: bool) -> dict[str, str]:
    """The study's first stage: prepare every model its runs need that is not prepared yet (the
    preparations of one cohort share a data stream); return the errors of those that failed."""
    recorded = {p["prep_id"]: p for p in store.preparations()}
    failed: dict[str, str] = {}
    todo = []
    locks = []  # prepared models are shared between studies: one driver prepares each at a time
    for preparation in study.preparations:
        if not preparation.weights.is_file():
            lock = StudyLock(preparation.folder)
            try:
                lock.acquire()
            except ConfigError:
                for held in locks:
                    held.release()
                raise ConfigError(f"prepare.{preparation.stage}: {preparation.label} is being prepared by another "
                                  f"driver ({describe(read_holder(lock.path))}); run this study again when it has "
                                  "finished") from None
            locks.append(lock)
        row = recorded.get(preparation.prep_id, {})
        if prepared(preparation):
            if row.get("status") != "done":  # prepared by another study, or before a kill
                metrics = RunFolder(preparation.folder.parent / "runs", preparation.prep_id).read_metrics() or {}
                store.record_preparation(preparation.prep_id, "done", metrics)
        elif row.get("status") == "failed" and not retry_failed:
            failed[preparation.prep_id] = row.get("error") or "failed"
        else:
            todo.append(preparation)
    try:
        return _prepare(study, store, executor, progress, todo, failed)
    finally:
        for lock in locks:
            lock.release()


def check_degenerate_teachers(study: Study, store: Store, progress: bool = True) -> None:
    """Stop the study, before any student trains, at the first prepared model whose last evaluation its
    task calls degenerate (:meth:`kdtemp.tasks.base.Task.degenerate`: a language model that emits its
    end-of-sequence at once, or loops), naming where its generations are; ``degenerate_teacher:
    continue`` goes on knowingly (each such model is then named once)."""
    done = {p["prep_id"]: p for p in store.preparations() if p["status"] == "done"}
    for preparation in study.preparations:
        row = done.get(preparation.prep_id)
        if row is None:
            continue
        why = get_task(preparation.config.cohort().task).degenerate(row.get("final") or {})
        if why is None:
            continue
        samples = RunFolder(preparation.folder.parent / "runs", preparation.prep_id).samples_path
        message = (f"prepare.{preparation.stage}: {preparation.label} generates degenerate text ({why}; its generations: "
                   f"{samples})")
        if study.file.degenerate_teacher == "stop":
            raise ConfigError(f"{message}; train it longer or on more data, or set degenerate_teacher: continue to "
                              "distil from it knowingly")
        if progress:
            warn(f"{message}; its students train anyway (degenerate_teacher: continue)")


def _prepare(study: Study, store: Store, executor: ExecutorConfig, progress: bool, todo: list,
             failed: dict[str, str]) -> dict[str, str]:
    from ..engine.teacher import export_teacher
    from .stages import preparation_cohorts

    tasks, by_id = [], {p.prep_id: p for p in todo}
    for key, group in preparation_cohorts(todo):
        config = dataclasses.replace(group[0].config.cohort(), members=[p.config.cohort().members[0] for p in group])
        runs_dir = group[0].folder.parent / "runs"
        tasks.append(Task(f"prepare-{key}", _plain_cohort(config, executor), str(runs_dir), [p.prep_id for p in group]))
    if progress and tasks:
        print(f"stage prepare: {len(todo)} models to prepare in {len(tasks)} cohorts "
              f"({', '.join(p.label for p in todo[:4])}{', ...' if len(todo) > 4 else ''})")
    for task in tasks:
        for prep_id in task.run_ids:
            store.record_preparation(prep_id, "running")
    unfinished = {task.cohort_id: task for task in tasks}
    try:
        for task, results, error in make_executor(executor, progress).execute(tasks):
            unfinished.pop(task.cohort_id, None)
            outcomes = {r["run_id"]: r for r in (results or {}).get("results", [])}
            for prep_id in task.run_ids:
                result = outcomes.get(prep_id)
                if error is None and result is not None and result["status"] == "done":
                    export_teacher(by_id[prep_id].config, result, Path(task.runs_dir))
                    store.record_preparation(prep_id, "done", result)
                else:
                    reason = error or (result or {}).get("error") or "it did not finish"
                    failed[prep_id] = reason
                    store.record_preparation(prep_id, "failed", result, reason)
            if progress:
                print(f"  preparation cohort {task.cohort_id} finished")
    finally:
        for task in unfinished.values():
            for prep_id in task.run_ids:
                store.record_preparation(prep_id, "pending")
    return failed


def _needs(run, prep_ids: set[str]) -> str | None:
    """The preparation among ``prep_ids`` that ``run`` distils from or starts from, if any."""
    for model in (run.spec.teacher, run.spec.student.model):
        if model is not None and model.prepared in prep_ids:
            return model.prepared
    return None


def check_study(study: Study, executor: ExecutorConfig | None = None, download: bool = True) -> Preflight:
    """Preflight of every cohort of ``study`` by its task (images: :mod:`kdtemp.tasks.image.preflight`, text:
    :mod:`kdtemp.tasks.text.preflight`); nothing is written."""
    executor = executor or study.file.executor
    remote = executor.kind == "ray" and bool(executor.ray_address)
    device = "auto" if remote else executor.device
    state = Preflight()
    for preparation in study.preparations:  # the first stage's cohorts, named by their stage
        cohort = preparation.config.cohort()
        get_task(cohort.task).preflight([(cohort, cohort.members)], device=device, download=download,
                                        member_field=f"prepare.{preparation.stage}", state=state)
    by_task: dict[str, list] = {}
    for cohort in study.cohorts:
        config = cohort.config()
        by_task.setdefault(config.task, []).append((config, [run.spec.student for run in cohort.runs]))
    for task, cohorts in by_task.items():
        state = get_task(task).preflight(cohorts, device=device, download=download, state=state)
    by_id = {p.prep_id: p for p in study.preparations}
    for run in study.runs:  # a prepared model must have learned the classes the run uses, in the same order
        for field_name, model in (("teacher", run.spec.teacher), ("student.model", run.spec.student.model)):
            preparation = by_id.get(model.prepared) if model is not None and model.prepared else None
            if preparation is None:
                continue
            try:
                learned, used = state.facts(preparation.config.data).classes, state.facts(run.spec.data).classes
            except KeyError:
                continue  # a dataset that is downloaded when the study runs
            if learned != used:
                raise ConfigError(f"{field_name}: the prepared model {preparation.label} (stage "
                                  f"{preparation.stage!r}) learns {len(learned)} classes ({', '.join(learned[:3])}, ...) "
                                  f"but the run's data has {len(used)} ({', '.join(used[:3])}, ...); prepare it on the "
                                  "run's data")
    if not remote:  # a remote cluster's devices are not this machine's: packed by max_cohort_size alone
        study.fit_memory(state, executor)  # cohorts under the memory budget; a member that cannot fit is refused
    return state


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
        failed_preparations = run_preparations(study, store, executor, progress, retry_failed)
        evaluate_awaiting(study, store, PREPARATION, progress)  # its evaluation settings changed: not prepared again
        check_degenerate_teachers(study, store, progress)
        evaluate_awaiting(study, store, RUN, progress)
        blocked = set()
        if failed_preparations:
            labels = {p.prep_id: p.label for p in study.preparations}
            for run in study.runs:
                prep_id = _needs(run, set(failed_preparations))
                if prep_id is not None:
                    blocked.add(run.run_id)
                    store.record_failure([run.run_id], f"its prepared model {labels[prep_id]} failed: "
                                                       f"{failed_preparations[prep_id]}")
        status = {r["run_id"]: r["status"] for r in store.runs()}
        finished = {"done", "failed"} if not retry_failed else {"done"}
        diagnosed = {t["teacher_id"] for t in store.teachers()}
        temperatures = sorted({r.spec.student.temperature for r in study.runs if r.spec.student.temperature is not None}
                              | set(DEFAULT_TEMPERATURES))
        tasks = []
        for cohort in study.cohorts:
            todo = [r for r in cohort.runs if status[r.run_id] not in finished and r.run_id not in blocked]
            teacher = teacher_id(cohort.runs[0].spec)
            if not get_task(cohort.runs[0].spec.task).diagnoses_teacher:
                teacher = None  # a task whose teacher diagnostics have no form (a vocabulary's)
            if not todo and (teacher is None or teacher in diagnosed):
                continue
            config = dataclasses.replace(cohort.config(), members=[r.spec.student for r in todo])
            plain = _plain_cohort(config, executor, study.file.logging)
            diagnose = teacher is not None and teacher not in diagnosed
            diagnosed.add(teacher)
            tasks.append(Task(cohort.cohort_id, plain, str(runs_dir), [r.run_id for r in todo], teacher, diagnose,
                              temperatures))
        if progress:
            print(f"study {study.file.name}: {len(study.runs)} runs in {len(study.cohorts)} cohorts; "
                  f"{sum(len(t.run_ids) for t in tasks)} to train in {len(tasks)} cohorts ({executor.kind} executor)")
        execute_cohorts(study, store, executor, tasks, progress)
        return store.counts(r.run_id for r in study.runs)


def execute_cohorts(study: Study, store: Store, executor: ExecutorConfig, tasks: list[Task], progress: bool) -> None:
    """Train the cohorts ``tasks`` (of ``study``'s runs) with ``executor``: each result into the store as soon
    as its run finishes (its warnings once), a failed cohort's runs failed with the reason, the teacher's
    diagnostics recorded; a run left unfinished (the driver stopped, or a cohort's ``until_epoch``) is
    pending again, resumable from its checkpoint."""
    warned: set[str] = set()

    def record(result: dict) -> None:
        """A run's result into the store (again at its cohort's end: the same values), its warnings once."""
        store.record(result)
        if result["run_id"] not in warned:
            warned.add(result["run_id"])
            for message in result.get("warnings") or []:
                warn(f"run {result['run_id']} ({result['label']}): {message}")

    try:  # a run is running from when its cohort starts, not while it waits for a worker
        for task, results, error in make_executor(executor, progress).execute(
                tasks, started=lambda task: store.mark_running(task.run_ids),
                finished=lambda task, result: record(result)):  # done while its cohort trains on
            if error is not None:
                store.record_failure(task.run_ids, f"cohort {task.cohort_id} failed: {error}")
            else:
                for result in results["results"]:
                    record(result)
                if results["teacher"] is not None:
                    store.record_teacher(task.teacher_id, {"teacher": task.cohort["teacher"],
                                                           "data": task.cohort["data"]}, results["teacher"])
            if progress:
                counts = store.counts(r.run_id for r in study.runs)
                print(f"  cohort {task.cohort_id} finished: {counts['done']} done, {counts['failed']} failed, "
                      f"{counts['pending'] + counts['running']} to go")
    finally:  # an executor that could not start, a driver stopped by an exception, a cohort stopped at its
        # until_epoch: nothing stays "running" (mark_pending changes only runs marked running)
        store.mark_pending([run_id for task in tasks for run_id in task.run_ids])


def plan(study: Study) -> str:
    """The runs, the cohorts, what preflight found and an estimate of the cost, as text.

    Runs preflight (without downloading): a mistake stops ``plan`` as it would stop ``run``."""
    checked = check_study(study, download=False)
    lines = [f"study {study.file.name}: {len(study.runs)} runs in {len(study.cohorts)} cohorts "
             f"({len(study.file.seeds)} seeds); output {study.output}"]
    lines.append(f"axes: {', '.join(study.axis_names) or '(none)'}")
    lines += [f"note: {note}" for note in study.notes]
    unit = get_task(study.runs[0].spec.task).step_unit if study.runs else "input-steps"

    def facts_of(data):
        try:
            return checked.facts(data)
        except KeyError:  # not on disk yet: downloaded when the study runs
            return None

    total = Cost()
    if study.preparations:
        from .stages import preparation_cohorts

        ready = [p for p in study.preparations if p.weights.is_file()]
        stage = Cost()
        for p in study.preparations:
            if p not in ready:
                stage.add(training_cost(get_task(p.config.task), p.config.data, facts_of(p.config.data), p.config.batch_size,
                                        [(p.config.model, p.config.epochs)]))
        total.add(stage)
        lines.append(f"stage prepare: {len(study.preparations)} models in "
                     f"{len(preparation_cohorts(study.preparations))} cohorts, {len(ready)} prepared already; "
                     f"~{stage.sample_steps:,} {unit} to go ({stage.describe()}); into "
                     f"{study.preparations[0].folder.parent}")
        for stage_name, preparations in study.stages.items():
            lines.append(f"  {stage_name}: " + "; ".join(p.label + (" (prepared)" if p in ready else "")
                                                       for p in preparations))
    described = set()
    for cohort in study.cohorts:
        data = cohort.runs[0].spec.data
        key = json.dumps(to_dict(data), sort_keys=True)
        if key in described:
            continue
        described.add(key)
        facts = facts_of(data)
        if facts is not None:
            lines.append(f"data: {facts.describe()}")
        elif data.expected_sizes() is not None:
            train, test = data.expected_sizes()
            lines.append(f"data: {data.dataset} at {data.root!r} is downloaded when the study runs "
                         f"(about {train:,} train / {test:,} test images)")
        else:
            lines.append(f"data: {data.dataset} at {data.root!r} is downloaded when the study runs")
    distill = Cost()
    memories = study.packing.memories if study.packing is not None else [None] * len(study.cohorts)
    for cohort, memory in zip(study.cohorts, memories):
        spec = cohort.runs[0].spec
        epochs = [r.spec.student.epochs for r in cohort.runs]
        teacher = get_task(spec.task).model_label(spec.teacher) if spec.teacher else "none"
        lines.append(f"  cohort {cohort.cohort_id}: {len(cohort.runs)} runs, {spec.data.dataset}, teacher {teacher}, "
                     f"batch {spec.batch_size}, data seed {spec.data_seed}, epochs {min(epochs)}-{max(epochs)}"
                     + (f", memory {memory.describe()}" if memory is not None else ""))
        lines += [f"    {note}" for note in get_task(spec.task).plan_notes(spec, [r.spec.student for r in cohort.runs])]
        distill.add(training_cost(get_task(spec.task), spec.data, facts_of(spec.data), spec.batch_size,
                                  [(r.spec.student.model, r.spec.student.epochs) for r in cohort.runs], spec.teacher,
                                  [r.spec.student for r in cohort.runs]))
    total.add(distill)
    if study.packing is not None:
        lines += study.packing.lines()
    if distill.sample_steps:
        saved = 1 - distill.teacher_passes / distill.solo_teacher_passes if distill.solo_teacher_passes else 0.0
        lines.append(f"cost: ~{distill.sample_steps:,} student {unit} (forward+backward) and "
                     f"~{distill.teacher_passes:,} teacher forward passes; separate runs would need "
                     f"~{distill.solo_teacher_passes:,} teacher passes ({saved:.0%} saved by cohorts); "
                     f"{distill.describe()}")
    if total.flops:
        lines.append(f"total: ~{total.sample_steps:,} {unit}, {total.describe()} ({assumption()})")
    if total.unknown_data:
        lines.append(f"cost: not counted for {', '.join(sorted(total.unknown_data))} (its size is known once it is on disk)")
    lines.append("preflight: data, weights and devices checked; nothing is wrong that can be found before training")
    if store_path(study).is_file():
        with Store(store_path(study), readonly=True) as store:
            counts = store.counts(r.run_id for r in study.runs)
            done = [r for r in store.runs(r.run_id for r in study.runs) if r["status"] == "done" and r["epochs_done"]]
            to_go = len(study.runs) - counts["done"] - counts["failed"]  # runs the store has not registered yet too
            lines.append(f"store: {counts['done']} done, {counts['failed']} failed, {to_go} to go")
            wanted = {r.run_id: r.spec.cohort_config().evaluation() for r in study.runs}
            again = [r for r in done if r.get("evaluation") is not None and r["evaluation"] != wanted[r["run_id"]]
                     and store.evaluated(RUN, r["run_id"], wanted[r["run_id"]]) is None]
            if again:
                lines.append(f"evaluate: {len(again)} finished runs were evaluated under other settings than this file's; "
                             "`kdtemp study run` evaluates their final weights again (nothing is trained)")
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
                for path in sorted((study.output / "runs" / run.run_id / "evaluations").glob("*/metrics.json")):
                    try:  # the run's evaluations apart from training (one cut short by a kill is done again)
                        record = json.loads(path.read_text())
                        store.record_evaluation(RUN, run.run_id, record["settings"], record["metrics"],
                                                record.get("seconds", 0.0))
                    except (ValueError, KeyError, TypeError):
                        continue
            return moved, store.counts(r.run_id for r in study.runs)

"""``kdtemp tune``: the best temperature for the user's own pair without paying for the whole grid.

The candidates are the study's own temperature axis (every value of every axis that changes a run's
temperature or temperature policy: fixed temperatures, DTS ranges, CTKD ...), for each setting of its
other axes. They start together (one cohort: one data stream and one teacher pass) and are compared on
the **validation split** (``data.validation``: choosing on the test split would be a leak) at rungs of
training: successive halving, the best ``1/eta`` (at least two) going on at each rung (``tune.rungs``; by
default one rung at half the budget), the survivors trained to the full budget and the best of them by its
final validation score chosen. The default follows the rank-agreement evidence of the report
(``rank_agreement.md``, ``bench/tune.py``): a tenth or a quarter into training the ranking of T was close
to unrelated to the final one; by half it agreed better.

A candidate's runs are the study's runs (the same ids): a run stopped at a rung is checkpointed there and
left pending, so ``kdtemp study run`` later trains any dropped candidate to the full budget, exactly as if it
had never stopped, and a killed ``tune`` resumes from the checkpoints to the same choice (the choice is a
function of the recorded validation scores alone). The result (``<study>/tune.json``) records every rung's
scores, the chosen candidate with its validation and test scores, the cost in student-epochs against the
full grid (all the study's seeds, and one seed), and, where the grid is finished in the store, the regret
of the choice on test against the seed std of the grid's best cell.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError
from ..engine.storage import RunFolder
from ..files import atomic_write_text
from ..tasks import get_task
from ..tasks.validation import PREFIX as VALIDATION_PREFIX
from .executors import Task as CohortTask
from .layout import store_path
from .lock import StudyLock
from .spec import ExecutorConfig, Run, Study
from .store import Store


@dataclass
class Candidate:
    """One value of the temperature axes in one setting: its runs, one per tune seed."""

    name: str
    runs: list[Run]
    scores: dict[int, float | None] = field(default_factory=dict)  # rung epoch -> mean validation score


@dataclass
class Setting:
    """The candidates of one setting of the study's other axes."""

    name: str
    epochs: int
    candidates: list[Candidate]


def _temperature_signature(run: Run) -> str:
    student = run.spec.student
    return json.dumps([student.temperature, student.temperature_policy, dataclasses.asdict(student.dts)
                       if student.temperature_policy != "fixed" else None], default=str)


def temperature_axes(study: Study) -> list[str]:
    """The study's axes that change a run's temperature or temperature policy."""
    found = []
    for axis in study.axis_names:
        by_rest: dict[str, set[str]] = {}
        for run in study.runs:
            rest = json.dumps({k: v for k, v in run.cell.items() if k != axis}, sort_keys=True, default=str)
            by_rest.setdefault(f"{rest}|{run.seed}", set()).add(_temperature_signature(run))
        if any(len(signatures) > 1 for signatures in by_rest.values()):
            found.append(axis)
    return found


def settings_of(study: Study, seeds: list[int]) -> list[Setting]:
    """The study's settings (its cells without the temperature axes) with their candidates; one line
    when there is nothing to tune."""
    axes = temperature_axes(study)
    if not axes:
        raise ConfigError(f"tune: study {study.file.name!r} has no temperature axis (no axis changes student.temperature "
                          "or its policy); add one (presets: [temperatures], or grid: {student.temperature: [1, 2, 4, 8]})")
    groups: dict[str, dict[str, list[Run]]] = {}
    for run in study.runs:
        if run.seed not in seeds:
            continue
        rest = ", ".join(f"{k}={v}" for k, v in run.cell.items() if k not in axes) or "all runs"
        name = ", ".join(f"{v}" for k, v in run.cell.items() if k in axes)
        groups.setdefault(rest, {}).setdefault(name, []).append(run)
    settings = []
    for rest, candidates in groups.items():
        if len(candidates) < 2:
            continue
        epochs = {run.spec.student.epochs for runs in candidates.values() for run in runs}
        if len(epochs) != 1:
            raise ConfigError(f"tune: the candidates of {rest} train for different numbers of epochs ({sorted(epochs)}); "
                              "candidates are compared at the same points of one budget")
        settings.append(Setting(rest, epochs.pop(), [Candidate(n, runs) for n, runs in candidates.items()]))
    if not settings:
        raise ConfigError(f"tune: study {study.file.name!r} has no setting with two or more temperatures to choose from")
    return settings


def default_rungs(candidates: int, eta: int, epochs: int) -> list[int]:
    """One rung, at half the budget (rounded, at least epoch 1, before the last): the report's rank agreement
    on real settings (BENCHMARKS.md, ``bench/tune.py``) found the ranking of T a tenth or a quarter into training
    close to unrelated to the final one (Kendall's tau from -0.40 to 0.67), and better by half (0.03 to 1.00).
    None for one candidate or a one-epoch budget."""
    if candidates < 2 or epochs < 2:
        return []
    return [min(epochs - 1, max(1, round(epochs / 2)))]


def check(study: Study) -> tuple[list[int], str, list[Setting], dict[str, list[int]]]:
    """Everything ``tune`` needs, checked before any work: the seeds, the metric, the settings and each
    setting's rungs (one line for each mistake)."""
    config = study.file.tune
    seeds = config.seeds or [study.file.seeds[0]]
    missing = [s for s in seeds if s not in study.file.seeds]
    if missing:
        raise ConfigError(f"tune.seeds: {missing} are not seeds of the study (its seeds: {study.file.seeds}); "
                          "tune's candidates are the study's runs")
    settings = settings_of(study, seeds)
    spec = settings[0].candidates[0].runs[0].spec
    task = get_task(spec.task)
    if not task.validation_split:
        raise ConfigError(f"tune: a {spec.task} study has no validation split to choose on (its data section has no "
                          "validation field)")
    for setting in settings:
        for candidate in setting.candidates:
            if candidate.runs[0].spec.data.validation is None:
                raise ConfigError("data.validation: tune chooses on a validation split held out of training, never on "
                                  "test; set base.data.validation (a fraction such as 0.1, or a count; for a language "
                                  "model, how many validation records to generate on)")
    metric = config.metric or f"{VALIDATION_PREFIX}{task.primary_metric}"
    rungs = {}
    for setting in settings:
        chosen = config.rungs or default_rungs(len(setting.candidates), config.eta, setting.epochs)
        beyond = [r for r in chosen if r >= setting.epochs]
        if beyond:
            raise ConfigError(f"tune.rungs: {beyond} lie at or beyond the budget of {setting.epochs} epochs "
                              f"({setting.name}); a rung is an epoch before the last")
        rungs[setting.name] = chosen
    return seeds, metric, settings, rungs


def _score(run: Run, runs_dir, epoch: int, metric: str) -> float | None:
    metrics = RunFolder(runs_dir, run.run_id).read_metrics() or {}
    row = next((r for r in metrics.get("curve") or [] if r.get("epoch") == epoch), None)
    value = None if row is None else row.get(metric)
    return None if value is None or value != value else float(value)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if len(present) == len(values) and present else None


def _train(study: Study, store: Store, executor: ExecutorConfig, runs: list[Run], until: int, progress: bool) -> None:
    """Train ``runs`` (the study's) to epoch ``until`` (their full budget when it is theirs), cohort by cohort,
    as the driver does (:func:`~kdtemp.study.driver.execute_cohorts`); runs stopped short stay pending."""
    from .driver import _plain_cohort, execute_cohorts

    wanted = {run.run_id for run in runs}
    status = {r["run_id"]: (r["status"], r["epochs_done"]) for r in store.runs(wanted)}
    tasks = []
    for cohort in study.cohorts:
        todo = [r for r in cohort.runs if r.run_id in wanted and status[r.run_id][0] not in ("done", "failed")
                and status[r.run_id][1] < min(until, r.spec.student.epochs)]
        if not todo:
            continue
        config = dataclasses.replace(cohort.config(), members=[r.spec.student for r in todo])
        plain = _plain_cohort(config, executor, study.file.logging)
        plain["until_epoch"] = until
        tasks.append(CohortTask(cohort.cohort_id, plain, str(study.output / "runs"), [r.run_id for r in todo]))
    execute_cohorts(study, store, executor, tasks, progress)  # a failed candidate has no score: it ranks last


def tune_study(study: Study, executor: ExecutorConfig | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the search (see the module's docstring); return (and write to ``<study>/tune.json``) its record."""
    from .driver import check_degenerate_teachers, check_study, register, run_preparations

    executor = executor or study.file.executor
    seeds, metric, settings, rungs = check(study)
    check_study(study, executor)
    goal = get_task(settings[0].candidates[0].runs[0].spec.task).primary_goal
    runs_dir = study.output / "runs"
    with StudyLock(study.output), Store(store_path(study)) as store:
        register(study, store)
        failed = run_preparations(study, store, executor, progress, retry_failed=False)
        if failed:
            raise ConfigError(f"tune: a prepared model failed: {next(iter(failed.values()))}")
        check_degenerate_teachers(study, store, progress)
        active = {s.name: list(s.candidates) for s in settings}
        history: dict[str, list[dict]] = {s.name: [] for s in settings}
        points = sorted({r for chosen in rungs.values() for r in chosen} | {s.epochs for s in settings})
        for epoch in points:
            runs = [run for s in settings for c in active[s.name] if epoch <= s.epochs and
                    (epoch in rungs[s.name] or epoch == s.epochs) for run in c.runs]
            if progress:
                print(f"tune: training {len(runs)} runs to epoch {epoch}")
            _train(study, store, executor, runs, epoch, progress)
            for setting in settings:
                if epoch not in rungs[setting.name] and epoch != setting.epochs:
                    continue
                for candidate in active[setting.name]:
                    candidate.scores[epoch] = _mean([_score(r, runs_dir, epoch, metric) for r in candidate.runs])
                ranked = sorted(active[setting.name], key=lambda c: (c.scores[epoch] is None,
                                                                     -(c.scores[epoch] or 0) if goal == "max" else (c.scores[epoch] or 0)))
                keep = 1 if epoch == setting.epochs else min(len(ranked), max(2, math.ceil(len(ranked) / study.file.tune.eta)))
                history[setting.name].append({"epoch": epoch, "scores": {c.name: c.scores[epoch] for c in ranked},
                                              "kept": [c.name for c in ranked[:keep]]})
                active[setting.name] = ranked[:keep]
                if progress:
                    shown = ", ".join(f"{c.name}: {c.scores[epoch]:.2f}" if c.scores[epoch] is not None else f"{c.name}: n/a"
                                      for c in ranked)
                    print(f"  {setting.name} at epoch {epoch}/{setting.epochs} ({metric}): {shown}; "
                          f"{'chosen' if epoch == setting.epochs else 'kept'} {', '.join(c.name for c in ranked[:keep])}")
        record = _record(study, store, settings, active, history, rungs, seeds, metric, goal)
    atomic_write_text(study.output / "tune.json", json.dumps(record, indent=1, default=str))
    return record


def _record(study: Study, store: Store, settings: list[Setting], active: dict, history: dict, rungs: dict,
            seeds: list[int], metric: str, goal: str) -> dict[str, Any]:
    """The choice of every setting, its scores, its cost and (with the grid finished in the store) its regret."""
    done = {r["run_id"]: r for r in store.runs(run.run_id for run in study.runs) if r["status"] == "done"}
    out = {"study": study.file.name, "metric": metric, "seeds": seeds, "eta": study.file.tune.eta, "settings": []}
    tune_cost = grid_cost = one_seed_cost = 0
    for setting in settings:
        chosen = active[setting.name][0]
        reached: dict[str, int] = {}
        for step in history[setting.name]:
            for name in step["scores"]:
                reached[name] = step["epoch"]
        cost = sum(reached[c.name] * len(c.runs) for c in setting.candidates)
        grid_runs = [run for run in study.runs if _same_setting(run, setting)]
        grid = sum(run.spec.student.epochs for run in grid_runs)
        one = setting.epochs * len(setting.candidates)
        tune_cost, grid_cost, one_seed_cost = tune_cost + cost, grid_cost + grid, one_seed_cost + one
        test = _mean([(done.get(r.run_id) or {}).get("final_primary") for r in chosen.runs])
        entry = {"setting": setting.name, "epochs": setting.epochs, "rungs": rungs[setting.name],
                 "candidates": [c.name for c in setting.candidates], "history": history[setting.name],
                 "chosen": chosen.name, "validation": chosen.scores.get(setting.epochs), "test": test,
                 "student_epochs": cost, "grid_student_epochs": grid, "cost_ratio": cost / grid if grid else None,
                 "cost_ratio_one_seed": cost / one if one else None}
        entry.update(_regret(setting, grid_runs, done, chosen.name, goal))
        out["settings"].append(entry)
    out["student_epochs"], out["grid_student_epochs"] = tune_cost, grid_cost
    out["cost_ratio"] = tune_cost / grid_cost if grid_cost else None
    out["cost_ratio_one_seed"] = tune_cost / one_seed_cost if one_seed_cost else None
    return out


def _same_setting(run: Run, setting: Setting) -> bool:
    return any(run.cell == c.runs[0].cell for c in setting.candidates)


def _regret(setting: Setting, grid_runs: list[Run], done: dict, chosen: str, goal: str) -> dict[str, Any]:
    """The regret of the choice on test against the grid's best cell (mean over its seeds), when every
    candidate has finished runs in the store; else nothing."""
    by_candidate: dict[str, list[float]] = {}
    names = {json.dumps(c.runs[0].cell, sort_keys=True, default=str): c.name for c in setting.candidates}
    for run in grid_runs:
        row = done.get(run.run_id)
        if row is not None and row.get("final_primary") is not None:
            by_candidate.setdefault(names[json.dumps(run.cell, sort_keys=True, default=str)], []).append(row["final_primary"])
    if len(by_candidate) < len(setting.candidates) or chosen not in by_candidate:
        return {"regret": None}
    means = {name: statistics.fmean(values) for name, values in by_candidate.items()}
    best = max(means, key=means.get) if goal == "max" else min(means, key=means.get)
    values = by_candidate[best]
    return {"grid_best": best, "grid_best_test": means[best], "grid_best_std": statistics.stdev(values) if len(values) > 1 else None,
            "grid_seeds": min(len(v) for v in by_candidate.values()), "chosen_grid_test": means[chosen],
            "regret": means[best] - means[chosen] if goal == "max" else means[chosen] - means[best]}


def tune_text(record: dict[str, Any]) -> str:
    """What ``kdtemp tune`` prints."""
    lines = [f"tune {record['study']}: chosen on {record['metric']} (seeds {record['seeds']}, eta {record['eta']})"]
    for s in record["settings"]:
        test = "n/a" if s["test"] is None else f"{s['test']:.2f}"
        validation = "n/a" if s["validation"] is None else f"{s['validation']:.2f}"
        line = (f"  {s['setting']}: T {s['chosen']} (validation {validation}, test {test}); rungs at epochs "
                f"{s['rungs']} of {s['epochs']}; {s['student_epochs']} student-epochs, {s['cost_ratio']:.2f} of the grid "
                f"({s['cost_ratio_one_seed']:.2f} of a one-seed grid)")
        if s.get("regret") is not None:
            spread = "one seed: no spread known" if s["grid_best_std"] is None else f"the best cell's seed std {s['grid_best_std']:.2f}"
            line += (f"; the grid's best: T {s['grid_best']} ({s['grid_best_test']:.2f} over {s['grid_seeds']} seeds), "
                     f"regret {s['regret']:.2f} points ({spread})")
        else:
            line += "; regret: the full grid is not finished in the store (run the study to measure it)"
        lines.append(line)
    lines.append(f"cost: {record['student_epochs']} student-epochs, {record['cost_ratio']:.2f} of the full grid's "
                 f"{record['grid_student_epochs']}")
    return "\n".join(lines)

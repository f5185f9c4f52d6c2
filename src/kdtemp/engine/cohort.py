"""The cohort engine: members step in lockstep over one data stream and one teacher pass.

Each batch is loaded and augmented once and the teacher runs once (eval mode, no gradient);
every member then takes its own forward, loss, backward and optimizer step on that batch. A
single run is a cohort of one. Members are checkpointed at every epoch end; restarting the same
cohort with the same output folder continues each member from its last finished epoch (the
stream of epoch ``e`` depends only on ``(data_seed, e)``, so the result is as if uninterrupted).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..config import to_dict
from ..tasks import get_task
from ..tasks.base import ModelAdapter, Task, TaskData
from .config import CohortConfig, run_id
from .diagnose import summarize
from ..tasks.validation import PREFIX as VALIDATION_PREFIX
from .fused import fused_groups
from .member import Member
from .results import RunResult
from .runtime import Runtime
from .storage import CheckpointError, RunFolder
from .tracking import RunLoggers, write_csv


def member_result(member: Member, task: Task, teacher: dict | None = None,
                  evaluation: dict | None = None) -> RunResult:
    """The result of ``member`` so far, its final and best metrics by the task's primary metric, measured
    under ``evaluation`` (the cohort's evaluation settings, :meth:`SharedConfig.evaluation`)."""
    state = member.state
    return RunResult.from_curve(
        state.curve, task.primary_metric, task.primary_goal,
        run_id=member.run_id, label=member.config.label(), status=state.status, error=state.error,
        epochs_done=state.epochs_done, seconds=state.seconds, temperature_trace=list(state.temperature_trace),
        teacher=teacher, derived=dict(state.derived), warnings=list(member.warnings), evaluation=dict(evaluation or {}))


@dataclass
class TeacherDiagnosis:
    """A request for the teacher's diagnostics (entropies, sorted profiles at ``temperatures``,
    accuracy) on the un-augmented training split; :func:`run_cohort` fills ``result``."""

    temperatures: tuple[float, ...]
    top_k: int = 20
    result: dict | None = None


def run_cohort(
    config: CohortConfig,
    output: str | Path | None = None,
    progress: bool | str = True,
    step_callback: Callable[[int, int], None] | None = None,
    diagnosis: "TeacherDiagnosis | None" = None,
    member_done: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Train every member of ``config``; return one :class:`RunResult` per member, in order.

    ``progress``: a bar on a terminal and a line per epoch in a log file, or (a string) always a
    line per epoch prefixed with it. ``output``: folder for the per-run folders (``<output>/<run_id>/``); with it, finished members
    are skipped and unfinished ones resume from their last checkpoint (written every
    ``config.checkpoint_every`` epochs). ``step_callback(epoch,
    step)`` is called after every batch (used to inject faults in tests). ``diagnosis``: the
    teacher's diagnostics on the un-augmented training split are computed from the same teacher
    pass the members use and left in ``diagnosis.result``. ``member_done(result)`` is called for each
    member as soon as it finishes (done or failed) while the rest of its cohort trains on, after its
    run folder has its last checkpoint and metrics.
    """
    runtime = Runtime.create(config.device, config.precision)
    task = get_task(config.task)
    data = task.open(config, runtime, progress=progress)
    teacher = _teacher(config, task, data, runtime)
    members = []
    for member_config in config.members:
        member = Member(member_config, run_id(config, member_config), task, data, runtime)
        member.record_environment(torch.get_num_threads(), runtime.label)
        if output is not None:
            _resume(member, RunFolder(output, member.run_id), config)
        members.append(member)
    sourced = [m.config for m in members if m.active and task.batch_source(m.config) is not None]
    if sourced:  # what their batches come from (a language model's teacher-generated responses), made once
        task.prepare_sources(sourced, data, teacher, runtime, progress)

    # One teacher pass over the un-augmented training split, shared by everything that needs it:
    # the members' dataset-level constants (ls_global's coefficient, Energy KD's thresholds) and
    # the teacher diagnostics a study records.
    needing = [m for m in members if m.active and m.needs_training_logits()]
    if teacher is not None and (needing or diagnosis is not None):
        train_logits, train_labels = task.split_logits(teacher, data, "train", runtime, config.eval_batch_size)
        for member in needing:
            member.bind_training_logits(train_logits)
        if diagnosis is not None:
            scores = task.scores(train_logits, train_labels)
            diagnosis.result = {"split": "train", **summarize(train_logits, train_labels, scores, diagnosis.temperatures,
                                                              diagnosis.top_k)}

    teacher_metrics = None
    if teacher is not None:
        scores = task.evaluate(teacher, data, runtime, config.eval_batch_size)
        teacher_metrics = {**{k: float(v) for k, v in scores.items()}, **teacher.metadata()}
    cohort = _Cohort(config, task, data, runtime, members, teacher, teacher_metrics, output, member_done)
    cohort.train(progress, step_callback)
    return [member_result(m, task, teacher_metrics, config.evaluation()) for m in members]


def _teacher(config: CohortConfig, task: Task, data: TaskData, runtime: Runtime) -> ModelAdapter | None:
    """The cohort's teacher in eval mode without gradients (``None`` for a cohort that distils nothing)."""
    if config.teacher is None:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a randomly initialised teacher is the same in every run
        teacher = task.create_model(config.teacher, data, runtime, "teacher")
    teacher.module.eval()
    for parameter in teacher.module.parameters():
        parameter.requires_grad_(False)
    return teacher


def _resume(member: Member, folder: RunFolder, config: CohortConfig) -> None:
    """Write the run's resolved config and continue it from its checkpoint, if it has one (a
    damaged checkpoint is moved aside and only this run starts again)."""
    folder.write_config({**config.key(), "member": to_dict(member.config), "run_id": member.run_id})
    try:
        checkpoint = folder.load_checkpoint()
    except CheckpointError as error:  # only this run starts again; its cohort goes on
        moved = folder.discard_checkpoint(str(error))
        member.note(f"{error}; moved aside as {moved.name}, and the run started again from scratch")
        checkpoint = None
    if checkpoint is not None:
        member.restore(checkpoint)


class _Cohort:
    """The training loop of one cohort: epochs over the shared stream, one teacher pass per batch,
    each member's step, then evaluation, checkpoints and the run folders at each epoch's end."""

    def __init__(self, config: CohortConfig, task: Task, data: TaskData, runtime: Runtime, members: list[Member],
                 teacher: ModelAdapter | None, teacher_metrics: dict | None, output: str | Path | None,
                 member_done: Callable[[RunResult], None] | None = None) -> None:
        self.config, self.task, self.data, self.runtime = config, task, data, runtime
        self.members, self.teacher, self.teacher_metrics, self.output = members, teacher, teacher_metrics, output
        self.member_done = member_done
        self.keep_precision = task.keeps_logit_precision  # a vocabulary's logits: upcast per chunk
        self.loggers: dict[str, RunLoggers] = {}

    def folder(self, member: Member) -> RunFolder:
        return RunFolder(self.output, member.run_id)

    def result(self, member: Member) -> RunResult:
        return member_result(member, self.task, self.teacher_metrics, self.config.evaluation())

    def open_folders(self) -> None:
        """Bring the run folders in line with the checkpoints before training goes on."""
        for member in self.members:
            folder = self.folder(member)
            folder.reconcile(member.state.epochs_done, member.state.curve, member.state.status)
            if member.state.epochs_done:
                folder.write_metrics({**self.result(member).__dict__, "finished_at": time.time()})
            write_csv(folder.path, member.state.curve)  # metrics.csv as the checkpoint has it
            if member.active:
                self.loggers[member.run_id] = RunLoggers(
                    self.config.logging, folder.path, member.run_id, member.config.label(),
                    {**self.config.key(), "member": to_dict(member.config)}, member.state.epochs_done + 1)

    def train(self, progress: bool | str, step_callback: Callable[[int, int], None] | None) -> None:
        """Train every active member to its last epoch. The trackers of every run are closed however
        training ends (a W&B run is finished, marked failed if training raised), so nothing logged
        waits on the process's exit."""
        interrupted = True
        try:
            if self.output is not None:
                self.open_folders()
            self._train(progress, step_callback)
            interrupted = False
        finally:
            loggers, self.loggers = self.loggers, {}
            for member in self.members:
                if member.run_id in loggers:
                    loggers[member.run_id].close(failed=interrupted or member.state.status == "failed")

    def _train(self, progress: bool | str, step_callback: Callable[[int, int], None] | None) -> None:
        members, stream = self.members, self.data.stream
        last_epoch = max((m.config.epochs for m in members), default=0)
        if self.config.until_epoch is not None:  # this call stops there (kdtemp tune's rung); the members go on later
            last_epoch = min(last_epoch, self.config.until_epoch)
        first_epoch = min((m.state.epochs_done + 1 for m in members if m.active), default=last_epoch + 1)
        total_steps = sum(stream.batches_per_epoch for e in range(first_epoch, last_epoch + 1)
                          if any(m.wants(e) for m in members))
        bar = _progress_bar(progress, total_steps, len(members))
        primary = self.task.primary_metric
        for epoch in range(first_epoch, last_epoch + 1):
            active = [m for m in members if m.wants(epoch)]
            if not active:
                continue
            for member in active:
                member.begin_epoch(epoch)
            sources = {m.run_id: self.task.batch_source(m.config) for m in active}
            shared = [m for m in active if sources[m.run_id] is None]  # the others train on batches of their own
            groups, alone = fused_groups(shared) if self.config.fuse else ([], shared)
            alone = [m for m in active if m in alone or sources[m.run_id] is not None]
            for group in groups:
                group.begin_epoch()
            for step, batch in enumerate(stream.epoch(epoch)):
                shared: list = []  # the one teacher pass on the shared batch, made when a member first needs it

                def teacher_logits(batch=batch, shared=shared):
                    if not shared:
                        logits = None
                        if self.teacher is not None:
                            with torch.no_grad(), self.runtime.autocast():
                                logits = self.teacher(batch)
                            if not self.keep_precision:
                                logits = self.runtime.upcast(logits)
                        shared.append(logits)
                    return shared[0]

                for group in groups:  # members of one architecture in one stacked pass
                    group.train_step(batch, teacher_logits(), epoch)
                variants: dict = {}  # source -> (batch, teacher logits) of this step, made once per source
                for member in alone:
                    source = sources[member.run_id]
                    own = None
                    if source is not None:
                        if source not in variants:
                            with member.own_rng():  # an on-policy member samples with its own streams
                                variants[source] = self.task.member_batch(
                                    source, batch, epoch, step, member.config, member.model, self.teacher, self.data,
                                    self.runtime)
                            if variants[source] is not None and variants[source][1] is not None \
                                    and not self.keep_precision:
                                variants[source] = (variants[source][0], self.runtime.upcast(variants[source][1]))
                        own = variants[source]
                    member.train_step(*(own or (batch, teacher_logits())), epoch)
                if bar is not None:
                    bar.update(1)
                if step_callback is not None:
                    step_callback(epoch, step)
            for group in groups:  # the stacked weights back into each member before evaluation and checkpoints
                group.end_epoch()
            self.finish_epoch(active, epoch)
            if bar is not None:
                bar.set_postfix(**{"epoch": epoch, f"best_{primary}": f"{self.best_so_far():.1f}"})
        if bar is not None:
            bar.close()

    def best_so_far(self) -> float:
        """The best primary metric any member reached in any finished epoch (by the task's goal; NaN
        before the first): what the progress bar shows, so it never goes down."""
        primary, goal = self.task.primary_metric, self.task.primary_goal
        values = [row[primary] for m in self.members for row in m.state.curve
                  if row.get(primary) is not None and row[primary] == row[primary]]
        if not values:
            return float("nan")
        return max(values) if goal == "max" else min(values)

    def finish_epoch(self, active: list[Member], epoch: int) -> None:
        """Evaluate every member that did not fail (one read of all training losses), record the
        epoch, checkpoint when due, and write each run folder."""
        losses = torch.stack([m.mean_train_loss_tensor() for m in active]).tolist()
        for member, train_loss in zip(active, losses):
            evaluation = {}
            if math.isfinite(train_loss):
                extra = {}
                if self.output is not None and self.task.writes_samples:  # its generations, beside the run
                    extra["samples"] = self.folder(member).write_samples
                scores = self.task.evaluate(member.model, self.data, self.runtime, self.config.eval_batch_size,
                                            **extra)
                held = self.task.validation_scores(member.model, self.data, self.runtime, self.config.eval_batch_size)
                evaluation = {k: float(v) for k, v in scores.items()}
                evaluation.update({f"{VALIDATION_PREFIX}{k}": float(v) for k, v in held.items()})
            member.end_epoch(epoch, evaluation, train_loss)
            if self.output is not None:
                folder = self.folder(member)
                due = (epoch % self.config.checkpoint_every == 0 or member.state.status == "done"
                       or epoch == self.config.until_epoch)
                if due and member.state.status != "failed":
                    folder.save_checkpoint(member.checkpoint())
                folder.write_metrics({**self.result(member).__dict__, "finished_at": time.time()})
                folder.append_event({"epoch": epoch, "status": member.state.status, "time": time.time()})
                if member.run_id in self.loggers:
                    self.loggers[member.run_id].log(member.state.curve)
            if self.member_done is not None and not member.active:  # finished now: known at once
                self.member_done(self.result(member))


def _progress_bar(progress: bool | str, total: int, members: int):
    """``True``: a bar on a terminal, a line per epoch in a log; a string: always a line per epoch,
    prefixed with it (a worker process among several, whose lines share one log)."""
    if not progress or total == 0:
        return None
    from ..progress import LineProgress, progress_bar

    if isinstance(progress, str):
        return LineProgress(total, f"{progress}: cohort of {members}", "batches")
    return progress_bar(total, f"cohort of {members}", "batches")

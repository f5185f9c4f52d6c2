"""The cohort engine: members step in lockstep over one data stream and one teacher pass.

Each batch is loaded and augmented once and the teacher runs once (eval mode, no gradient);
every member then takes its own forward, loss, backward and optimizer step on that batch. A
single run is a cohort of one. Members are checkpointed at every epoch end; restarting the same
cohort with the same output folder continues each member from its last finished epoch (the
stream of epoch ``e`` depends only on ``(data_seed, e)``, so the result is as if uninterrupted).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..config import to_dict
from ..tasks.image.data import TrainStream, eval_images
from ..tasks.image.models import create_model
from .config import CohortConfig, run_id
from ..tasks.image.evaluate import accuracy, predict
from .member import Member
from .storage import CheckpointError, RunFolder
from .tracking import RunLoggers, write_csv


@dataclass
class RunResult:
    """The outcome of one member (one run)."""

    run_id: str
    label: str
    status: str
    error: str | None
    epochs_done: int
    final_top1: float | None
    final_top5: float | None
    best_top1: float | None
    best_top5: float | None
    best_epoch: int | None
    seconds: float
    curve: list[dict] = field(default_factory=list)
    temperature_trace: list[float] = field(default_factory=list)
    teacher: dict | None = None
    derived: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_member(cls, member: Member, teacher: dict | None = None) -> "RunResult":
        state, curve = member.state, member.state.curve
        best = max(curve, key=lambda r: r["top1"]) if curve else None
        last = curve[-1] if curve else None
        return cls(
            run_id=member.run_id, label=member.config.label(), status=state.status, error=state.error,
            epochs_done=state.epochs_done,
            final_top1=last["top1"] if last else None, final_top5=last["top5"] if last else None,
            best_top1=best["top1"] if best else None, best_top5=best["top5"] if best else None,
            best_epoch=best["epoch"] if best else None, seconds=state.seconds, curve=list(curve),
            temperature_trace=list(state.temperature_trace), teacher=teacher, derived=dict(state.derived),
            warnings=list(member.warnings),
        )


@dataclass
class TeacherDiagnosis:
    """A request for the teacher's diagnostics (entropies, sorted profiles at ``temperatures``,
    accuracy) on the un-augmented training split; :func:`run_cohort` fills ``result``."""

    temperatures: tuple[float, ...]
    top_k: int = 20
    result: dict | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_label(device: torch.device) -> str:
    """``cpu``, or ``cuda (<GPU name>)``: what a run records about where it ran."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def autocast_for(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """bf16 autocast on CUDA (``auto`` or ``bf16``); plain float32 otherwise."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def run_cohort(
    config: CohortConfig,
    output: str | Path | None = None,
    progress: bool = True,
    step_callback: Callable[[int, int], None] | None = None,
    diagnosis: "TeacherDiagnosis | None" = None,
) -> list[RunResult]:
    """Train every member of ``config``; return one :class:`RunResult` per member, in order.

    ``output``: folder for the per-run folders (``<output>/<run_id>/``); with it, finished members
    are skipped and unfinished ones resume from their last checkpoint (written every
    ``config.checkpoint_every`` epochs). ``step_callback(epoch,
    step)`` is called after every batch (used to inject faults in tests). ``diagnosis``: the
    teacher's diagnostics on the un-augmented training split are computed from the same teacher
    pass the members use and left in ``diagnosis.result``.
    """
    device = resolve_device(config.device)
    channels_last = device.type == "cuda"
    autocast = autocast_for(device, config.precision)
    train = config.data.load("train", progress=progress).to(device)
    test = config.data.load("test", progress=progress).to(device)
    test_images = eval_images(test.images, config.data.resolution, config.augment.random_resized_crop)
    stream = TrainStream(train, config.batch_size, config.augment, config.data.resolution, config.data_seed, channels_last)

    teacher = None
    if config.teacher is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # a randomly initialised teacher is the same in every run
            teacher = create_model(config.teacher, train.num_classes, allow_new_head=False).to(device).eval()
        if channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)

    members = []
    for member_config in config.members:
        identifier = run_id(config, member_config)
        member = Member(member_config, identifier, train.num_classes, stream.batches_per_epoch, device, channels_last)
        member.record_environment(torch.get_num_threads(), device_label(device))
        if output is not None:
            folder = RunFolder(output, identifier)
            folder.write_config({**config.key(), "member": to_dict(member_config), "run_id": identifier})
            try:
                checkpoint = folder.load_checkpoint()
            except CheckpointError as error:  # only this run starts again; its cohort goes on
                moved = folder.discard_checkpoint(str(error))
                member.note(f"{error}; moved aside as {moved.name}, and the run started again from scratch")
                checkpoint = None
            if checkpoint is not None:
                member.restore(checkpoint)
        members.append(member)

    # One teacher pass over the un-augmented training split, shared by everything that needs it:
    # the members' dataset-level constants (ls_global's coefficient, Energy KD's thresholds) and
    # the teacher diagnostics a study records.
    needing = [m for m in members if m.active and m.needs_training_logits()]
    if teacher is not None and (needing or diagnosis is not None):
        from .diagnose import split_logits, summarize

        train_logits = split_logits(teacher, train, config.data.resolution, config.augment.random_resized_crop,
                                    config.eval_batch_size, config.precision)
        for member in needing:
            member.bind_training_logits(train_logits)
        if diagnosis is not None:
            diagnosis.result = {"split": "train", **summarize(train_logits, train.labels, diagnosis.temperatures,
                                                              diagnosis.top_k)}

    teacher_metrics = None
    if teacher is not None:
        scores = accuracy(predict(teacher, test_images, config.eval_batch_size, autocast, channels_last), test.labels)
        teacher_metrics = {**{k: float(v) for k, v in scores.items()}, "normalization": _plain(teacher.kdtemp_normalization)}

    loggers: dict[str, RunLoggers] = {}
    if output is not None:  # the run folders agree with the checkpoints before training goes on
        for member in members:
            folder = RunFolder(output, member.run_id)
            folder.reconcile(member.state.epochs_done, member.state.curve, member.state.status)
            if member.state.epochs_done:
                folder.write_metrics({**RunResult.from_member(member, teacher_metrics).__dict__, "finished_at": time.time()})
            write_csv(folder.path, member.state.curve)  # metrics.csv as the checkpoint has it
            if member.active:
                loggers[member.run_id] = RunLoggers(config.logging, folder.path, member.run_id, member.config.label(),
                                                    {**config.key(), "member": to_dict(member.config)},
                                                    member.state.epochs_done + 1)

    last_epoch = max((m.config.epochs for m in members), default=0)
    first_epoch = min((m.state.epochs_done + 1 for m in members if m.active), default=last_epoch + 1)
    total_steps = sum(stream.batches_per_epoch for e in range(first_epoch, last_epoch + 1) if any(m.wants(e) for m in members))
    bar = _progress_bar(progress, total_steps, len(members))
    for epoch in range(first_epoch, last_epoch + 1):
        active = [m for m in members if m.wants(epoch)]
        if not active:
            continue
        for member in active:
            member.begin_epoch(epoch)
        for step, batch in enumerate(stream.epoch(epoch)):
            teacher_logits = None
            if teacher is not None:
                with torch.no_grad(), autocast():
                    teacher_logits = teacher(batch.normalized(teacher.kdtemp_normalization)).float()
            for member in active:
                member.train_step(batch.normalized(member.normalization), batch.soft_labels, batch.dominant_labels, teacher_logits, epoch, autocast)
            if bar is not None:
                bar.update(1)
            if step_callback is not None:
                step_callback(epoch, step)
        _finish_epoch(active, epoch, test_images, test.labels, config, autocast, channels_last, output, teacher_metrics,
                      loggers)
        if bar is not None:
            best = max((m.state.curve[-1]["top1"] for m in active if m.state.curve), default=float("nan"))
            bar.set_postfix(epoch=epoch, best_top1=f"{best:.1f}")
    if bar is not None:
        bar.close()
    for run_loggers in loggers.values():
        run_loggers.close()
    return [RunResult.from_member(m, teacher_metrics) for m in members]


def _finish_epoch(active, epoch, test_images, test_labels, config, autocast, channels_last, output, teacher_metrics,
                  loggers=None):
    losses = torch.stack([m.mean_train_loss_tensor() for m in active]).tolist()
    for member, train_loss in zip(active, losses):
        evaluation = {"top1": math.nan, "top5": math.nan, "loss": math.nan}
        if math.isfinite(train_loss):
            logits = predict(member.student, test_images, config.eval_batch_size, autocast, channels_last)
            evaluation = {k: float(v) for k, v in accuracy(logits, test_labels).items()}
        member.end_epoch(epoch, evaluation, train_loss)
        if output is not None:
            folder = RunFolder(output, member.run_id)
            due = epoch % config.checkpoint_every == 0 or member.state.status == "done"
            if due and member.state.status != "failed":
                folder.save_checkpoint(member.checkpoint())
            result = RunResult.from_member(member, teacher_metrics)
            folder.write_metrics({**result.__dict__, "finished_at": time.time()})
            folder.append_event({"epoch": epoch, "status": member.state.status, "time": time.time()})
            if loggers and member.run_id in loggers:
                loggers[member.run_id].log(member.state.curve)


def _plain(normalization) -> dict[str, list[float]]:
    return {"mean": list(normalization[0]), "std": list(normalization[1])}


def _progress_bar(enabled: bool, total: int, members: int):
    if not enabled or total == 0:
        return None
    from ..progress import progress_bar

    return progress_bar(total, f"cohort of {members}", "batches")

"""What a study will cost before it runs: training steps of one sample each (the task's unit: image-steps,
input-steps, record-steps), model FLOPs and GPU-hours, per stage.

Sizes come from preflight (the data on disk) or, for a dataset kdtemp downloads and that is not
there yet, from its known size (the task's ``expected_sizes``). FLOPs come from each model's
forward pass as the task counts it (``forward_flops``; images: on the meta device): a training step
costs three forward passes (forward, and a backward of about twice that), a teacher pass or an
evaluation one. GPU-hours divide the FLOPs by a stated throughput:
:data:`REFERENCE_DEVICE` at :data:`UTILISATION` of its peak, an assumption printed with the figure,
not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..tasks import Task

REFERENCE_DEVICE = ("an H100 SXM", 989e12)
"""A device and its dense bf16 peak (FLOP/s)."""
UTILISATION = 0.4
"""The share of the peak a distillation step reaches (model-FLOPs utilisation), assumed."""


@dataclass
class Cost:
    """The work of a stage: training steps of one sample (``sample_steps``), teacher passes and FLOPs (``None`` parts are
    models whose FLOPs could not be counted)."""

    sample_steps: int = 0
    teacher_passes: int = 0
    solo_teacher_passes: int = 0
    flops: float = 0.0
    uncounted: set[str] = field(default_factory=set)
    unknown_data: set[str] = field(default_factory=set)

    def add(self, other: "Cost") -> None:
        self.sample_steps += other.sample_steps
        self.teacher_passes += other.teacher_passes
        self.solo_teacher_passes += other.solo_teacher_passes
        self.flops += other.flops
        self.uncounted |= other.uncounted
        self.unknown_data |= other.unknown_data

    @property
    def gpu_hours(self) -> float:
        return self.flops / (REFERENCE_DEVICE[1] * UTILISATION) / 3600.0

    def describe(self) -> str:
        """``~1.2e+15 FLOPs, ~0.8 GPU-hours (...)``, with what it could not count."""
        text = f"~{self.flops:.2g} FLOPs, ~{self.gpu_hours:,.1f} GPU-hours"
        if self.uncounted:
            text += f" (without {', '.join(sorted(self.uncounted))}, whose FLOPs could not be counted)"
        return text


def assumption() -> str:
    name, peak = REFERENCE_DEVICE
    return f"GPU-hours at {UTILISATION:.0%} of {name}'s dense bf16 peak ({peak / 1e12:.0f} TFLOP/s), an assumption"


def split_sizes(task: Task, data: Any, facts) -> tuple[int, int, int] | None:
    """(train, test, classes) from preflight's facts, else the dataset's known size, else ``None``."""
    if facts is not None:
        return facts.train, facts.test, len(facts.classes)
    return task.expected_sizes(data)


def _flops(task: Task, model, data: Any, classes: int, cost: Cost) -> float:
    counted = task.forward_flops(model, data, classes)
    if counted is None:
        cost.uncounted.add(task.model_label(model))
        return 0.0
    return float(counted)


def training_cost(task: Task, data: Any, facts, batch_size: int, students: list[tuple[object, int]],
                  teacher=None, members: list | None = None) -> Cost:
    """One cohort: ``students`` as ``(model config, epochs)``, sharing one data stream and, when
    ``teacher`` is given, one teacher pass per batch (or, with the cohort's ``members``, as many as
    the task says they need: :meth:`~kdtemp.tasks.base.Task.teacher_passes`); each member is
    evaluated on the test split every epoch."""
    cost = Cost()
    sizes = split_sizes(task, data, facts)
    if sizes is None or not students:
        cost.unknown_data.add(data.dataset)
        return cost
    train, test, classes = sizes
    steps = train // batch_size * batch_size
    longest = max(epochs for _, epochs in students)
    for model, epochs in students:
        forward = _flops(task, model, data, classes, cost)
        cost.sample_steps += steps * epochs
        cost.flops += forward * (3 * steps + test) * epochs
    if teacher is not None:
        forward = _flops(task, teacher, data, classes, cost)
        per_step = task.teacher_passes(members, data) if members else 1.0
        solo = [task.teacher_passes([m], data) for m in members] if members else [1.0] * len(students)
        passes = round(steps * longest * per_step)
        cost.teacher_passes += passes
        cost.solo_teacher_passes += round(sum(steps * epochs * n for (_, epochs), n in zip(students, solo)))
        # the stream, one training-split pass and its test; a teacher that makes no live pass (its outputs
        # read from a cache) makes the training-split pass to write the cache and is not evaluated
        cost.flops += forward * (passes + train + (test if per_step > 0 else 0))
    return cost

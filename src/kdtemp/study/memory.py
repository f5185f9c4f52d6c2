"""Cohorts sized to the device: a memory budget, each cohort's estimate, and cohorts packed under it.

A cohort holds its data on the device, its teacher (weights and an inference pass at the batch size)
and, per member, parameters, gradients and optimizer state, plus the activations a member's forward
pass saves for backward (:class:`kdtemp.tasks.base.MemoryEstimate`, measured by the task's probe) and
one evaluation pass at a time. Unfused members train one after another on each batch, each freeing
its activations with its backward pass, so a cohort holds the largest member's activations; fused
members (``executor.fuse``) run one stacked pass, so it holds the sum. Runs of one cohort key are packed in order into cohorts whose estimate
stays under the budget (``executor.memory``; by default 90 % of the smallest GPU's memory, or on a CPU
the available RAM less a tenth); ``max_cohort_size`` caps them too. A member that cannot fit even
alone is one line before any work. Estimates count activations in float32: under bf16 autocast they
are an upper bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..config import ConfigError

UNITS = {"": 1, "b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
         "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_memory(value: Any, path: str = "executor.memory") -> int:
    """Bytes from ``80GB`` (10^9), ``80GiB`` (2^30), ``512MB`` or a number of bytes; one line otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    match = _SIZE.match(str(value)) if isinstance(value, str) else None
    if match is None or match.group(2).lower() not in UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f"{path}: {value!r} is not a memory size; allowed: a positive number of bytes or a size "
                          "such as 80GB, 24GiB, 512MB")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


def gigabytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB"


def available_ram() -> int:
    """The memory this machine has free for new work (``MemAvailable``), else its total."""
    try:
        with open("/proc/meminfo") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_budget(device: str) -> tuple[int, str]:
    """The budget when ``executor.memory`` is not set, and where it comes from."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        indexes = [int(device.split(":")[1])] if device.startswith("cuda:") else range(torch.cuda.device_count())
        smallest = min(torch.cuda.get_device_properties(i).total_memory for i in indexes)
        return int(0.9 * smallest), "90% of the GPU's memory"
    return int(0.9 * available_ram()), "the available RAM less a tenth (CPU)"


@dataclass
class CohortMemory:
    """A cohort's estimate: what it holds once (data, teacher, one evaluation pass) and per member."""

    fixed: int
    members: list[int]
    activations: list[int] = field(default_factory=list)
    fused: bool = False

    @property
    def total(self) -> int:
        return self.fixed + sum(self.members) + held_activations(self.activations, self.fused)

    def describe(self) -> str:
        low, high = gigabytes(min(self.members)), gigabytes(max(self.members))
        each = low if low == high else f"{low}-{high}"
        active = held_activations(self.activations, self.fused)
        return (f"~{gigabytes(self.total)} (members {each} each, " + (f"activations {gigabytes(active)} "
                f"({'all members at once, fused' if self.fused else 'one member at a time'}), " if active else "")
                + f"teacher, data and evaluation {gigabytes(self.fixed)})")


def held_activations(activations: list[int], fused: bool) -> int:
    """The activations a cohort holds at once: every member's when fused, else the largest one's."""
    return sum(activations) if fused else max(activations, default=0)


Estimator = Callable[[Any], "tuple[int, int, int, int] | None"]
"""``estimate(run) -> (member bytes but its activations, fixed bytes of its cohort, evaluation bytes,
its activations)`` or None."""


def pack(runs: list, estimate: Estimator, budget: int, max_size: int | None,
         source: str = "executor.memory", fused: bool = False) -> tuple[list[list], list[CohortMemory | None]]:
    """``runs`` (of one cohort key, in order) cut into consecutive cohorts under ``budget`` (from
    ``source``) and ``max_size``; each with its estimate (None when the task gives none for a run of
    it; ``fused``: its members' activations are held at once). ``ConfigError`` for a run that cannot
    fit even alone."""
    chunks: list[list] = []
    memories: list[CohortMemory | None] = []
    current: list = []
    members: list[int] = []
    activations: list[int] = []
    fixed, unknown = 0, False

    def close() -> None:
        nonlocal current, members, activations, fixed, unknown
        chunks.append(current)
        memories.append(None if unknown or not members else CohortMemory(fixed, members, activations, fused))
        current, members, activations, fixed, unknown = [], [], [], 0, False

    for run in runs:
        measured = estimate(run)
        if measured is None:
            unknown = True
        else:
            member, shared, evaluation, active = measured
            if shared + evaluation + member + active > budget:
                raise ConfigError(
                    f"student.model: {run.spec.student.model.name} at batch {run.spec.batch_size} needs "
                    f"~{gigabytes(shared + evaluation + member + active)} with its teacher, data and an evaluation "
                    f"pass ({gigabytes(member + active)} for itself), over the memory budget of {gigabytes(budget)} "
                    f"({source}); lower batch_size, or raise executor.memory")
            if current and (max(fixed, shared + evaluation) + sum(members) + member
                            + held_activations(activations + [active], fused)) > budget:
                close()
            fixed = max(fixed, shared + evaluation)
            members.append(member)
            activations.append(active)
        current.append(run)
        if max_size is not None and len(current) >= max_size:
            close()
    if current:
        close()
    return chunks, memories


@dataclass
class Packing:
    """A study's cohorts packed under a memory budget: each cohort's ``(cohort id, runs)`` and its
    estimate."""

    cohorts: list[tuple[str, list]]
    memories: list[CohortMemory | None]
    budget: int
    source: str

    def lines(self) -> list[str]:
        """What ``plan`` prints about memory."""
        known = [m for m in self.memories if m is not None]
        lines = [f"memory: budget {gigabytes(self.budget)} per cohort ({self.source}); "
                 + (f"the largest cohort ~{gigabytes(max(m.total for m in known))}" if known else "no estimate")
                 + "; on CUDA a cohort that still runs out of memory is split in two and retried, its finished "
                   "members kept"]
        missing = sorted({runs[0].spec.task for (_, runs), m in zip(self.cohorts, self.memories) if m is None})
        if missing:
            lines.append(f"memory: not estimated for {', '.join(missing)} (packed by max_cohort_size alone)")
        return lines


def cohort_runs(runs: list, cut: Callable[[list], tuple[list[list], list]]) -> list[tuple[str, list, Any]]:
    """The one grouping of runs into cohorts: runs of one cohort key, in order, cut by ``cut(runs) ->
    (chunks, their estimates)``; each ``(cohort id, runs, estimate)``, the id the key, or the key and
    the chunk's index where the key's runs are cut in several."""
    groups: dict[str, list] = {}
    for run in runs:
        groups.setdefault(run.spec.cohort_key, []).append(run)
    cohorts = []
    for key, group in groups.items():
        chunks, estimates = cut(group)
        for index, (chunk, estimate) in enumerate(zip(chunks, estimates)):
            cohorts.append((key if len(chunks) == 1 else f"{key}-{index}", chunk, estimate))
    return cohorts


def by_size(max_size: int | None) -> Callable[[list], tuple[list[list], list]]:
    """Cut a cohort key's runs into chunks of at most ``max_size`` (:func:`pack` without estimates)."""
    return lambda runs: pack(runs, lambda run: None, 0, max_size)


def fit(study: Any, state: Any, executor: Any) -> Packing:
    """The study's cohorts under the budget of ``executor`` (see the module docstring), from the
    data facts preflight learned (``state``); the estimate of each distinct setting is made once."""
    from ..config import to_dict
    from ..tasks import get_task
    import json

    if executor.memory is not None:
        budget, source = parse_memory(executor.memory), "executor.memory"
    else:
        budget, source = default_budget(executor.device)
    cache: dict[str, tuple[int, int, int, int] | None] = {}

    def estimate(run) -> tuple[int, int, int, int] | None:
        spec = run.spec
        task = get_task(spec.task)
        key = json.dumps({"task": spec.task, "data": to_dict(spec.data), "batch": spec.batch_size,
                          "model": to_dict(spec.student.model), "optimizer": to_dict(spec.student.optimizer),
                          "teacher": to_dict(spec.teacher) if spec.teacher is not None else None}, sort_keys=True,
                         default=str)
        if key not in cache:
            cache[key] = _measure(task, spec, state)
        return cache[key]

    packed = cohort_runs(study.runs, lambda runs: pack(runs, estimate, budget, study.file.max_cohort_size, source,
                                                       executor.fuse))
    return Packing([(cohort_id, runs) for cohort_id, runs, _ in packed], [memory for *_, memory in packed], budget,
                   source)


def _measure(task: Any, spec: Any, state: Any) -> tuple[int, int, int, int] | None:
    try:
        facts = state.facts(spec.data)
    except KeyError:  # not on disk yet: estimated once it is
        return None
    member = task.memory(spec, spec.student.model, "student", spec.student.optimizer, facts)
    evaluation = task.memory(spec, spec.student.model, "evaluation", None, facts)
    data = task.data_memory(spec, facts)
    if member is None or evaluation is None or data is None:
        return None
    shared = data
    if spec.teacher is not None:
        teacher = task.memory(spec, spec.teacher, "teacher", None, facts)
        teacher_eval = task.memory(spec, spec.teacher, "evaluation", None, facts)
        if teacher is None or teacher_eval is None:
            return None
        shared += teacher.parameters + max(teacher.activations, teacher_eval.activations)
    return member.total - member.activations, shared, evaluation.activations, member.activations

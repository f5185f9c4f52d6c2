"""What one run produced, whatever the task: its curve, its metrics by name and its primary metric.

A run's **curve** is one dict per finished epoch: ``epoch``, ``train_loss``, the evaluation's
metrics by name (images: ``top1``, ``top5``, ``test_loss``), ``temperature`` (``None`` for a
cross-entropy-only run) and ``lr``; instance-wise DTS adds ``temperature_distribution``, the
per-sample temperatures' mean, quartiles, minimum and maximum at the epoch's end. Every task
declares one **primary metric** and whether higher is better; a run's *final* metrics are those of its last epoch, its *best* ones those of
the epoch with the best primary metric (the first such epoch on ties). Stores, exports, reports and
the advisor read the primary metric; they never assume which one it is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..tasks.validation import PREFIX as VALIDATION_PREFIX

NOT_METRICS = ("epoch", "temperature", "lr", "temperature_distribution")
"""Curve fields that are not metrics of a split."""

DEFAULT_PRIMARY = ("top1", "max")
"""The primary metric of results written before tasks declared one (image classification's)."""


def metric_key(split: str, metric: str) -> str:
    """The curve field of ``metric`` on ``split``: ``train_loss``, ``test_loss``, or the bare name
    of an evaluation metric (``top1``)."""
    if metric == "loss":
        return f"{split}_loss"
    return metric


def long_form(curve: Iterable[dict]) -> Iterator[tuple[int, str, str, float]]:
    """``(epoch, split, metric, value)`` for every metric of every epoch of ``curve``: the training
    loss as ``(train, loss)``, the evaluation loss as ``(test, loss)``, other metrics on ``test``."""
    for row in curve:
        for key, value in row.items():
            if key in NOT_METRICS or value is None:
                continue
            if key.startswith(VALIDATION_PREFIX):  # the validation split held out of training
                yield row["epoch"], "validation", key[len(VALIDATION_PREFIX):], float(value)
            elif key.endswith("_loss"):
                yield row["epoch"], key[: -len("_loss")], "loss", float(value)
            else:
                yield row["epoch"], "test", key, float(value)


def final_and_best(curve: list[dict], primary: str, goal: str = "max") -> tuple[dict, dict, int | None]:
    """The metrics of the last epoch, those of the best epoch by ``primary`` (``goal`` ``max`` or
    ``min``; the first best epoch on ties; a NaN epoch is never best unless all are), and the best
    epoch (``None`` for an empty curve)."""
    if not curve:
        return {}, {}, None

    def score(row: dict) -> float:
        value = row.get(primary)
        if value is None or value != value:
            return float("-inf")
        return value if goal == "max" else -value

    best = max(curve, key=score)  # max keeps the first of equal scores
    strip = lambda row: {k: v for k, v in row.items() if k not in NOT_METRICS}  # noqa: E731
    return strip(curve[-1]), strip(best), best["epoch"]


def evaluation_id(settings: dict[str, Any]) -> str:
    """The id of a set of evaluation settings (:meth:`~kdtemp.engine.config.SharedConfig.evaluation`):
    a digest, the name of a run's ``evaluations/<id>/`` folder."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class RunResult:
    """The outcome of one member (one run).

    ``final`` and ``best``: the evaluation's metrics (and the training loss) at the last epoch and at
    the best epoch by ``primary_metric``; ``primary_goal``: ``max`` or ``min``.
    """

    run_id: str
    label: str
    status: str
    error: str | None
    epochs_done: int
    primary_metric: str
    primary_goal: str
    final: dict = field(default_factory=dict)
    best: dict = field(default_factory=dict)
    best_epoch: int | None = None
    seconds: float = 0.0
    curve: list[dict] = field(default_factory=list)
    temperature_trace: list[float] = field(default_factory=list)
    teacher: dict | None = None
    derived: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    evaluation: dict = field(default_factory=dict)
    """The evaluation settings ``final``, ``best`` and the curve were measured under (empty for a task
    whose evaluation has none: :meth:`~kdtemp.engine.config.SharedConfig.evaluation`)."""

    @classmethod
    def from_curve(cls, curve: list[dict], primary: str, goal: str, **fields) -> "RunResult":
        final, best, best_epoch = final_and_best(curve, primary, goal)
        return cls(primary_metric=primary, primary_goal=goal, final=final, best=best, best_epoch=best_epoch,
                   curve=list(curve), **fields)

    @property
    def final_primary(self) -> float | None:
        return self.final.get(self.primary_metric)

    @property
    def best_primary(self) -> float | None:
        return self.best.get(self.primary_metric)

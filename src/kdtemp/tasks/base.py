"""The task interface: what a kind of problem gives the engine.

The engine (cohort, member, checkpoints) trains and evaluates through these few calls and knows
nothing of images, text or tokens. A task supplies:

* :meth:`Task.open`: the data of one cohort (:class:`TaskData`): the class (or vocabulary) count,
  a deterministic training stream whose epoch ``e`` depends only on ``(data seed, e)``, and what
  the evaluation and the teacher's training-split pass need;
* :meth:`Task.create_model`: a :class:`ModelAdapter` for a teacher or a student (how it is
  created, loaded, called and normalised; the normalisation belongs to the adapter and is saved
  with the weights as :meth:`ModelAdapter.metadata`);
* the training batch (:class:`TrainingBatch`): ``targets`` aligned with the rows of the logits
  the adapter returns (every sample of an image batch; the counted tokens of a sequence batch),
  and its cross-entropy;
* :meth:`Task.split_logits`: a model's logits on a split without augmentation (the teacher's
  pass over the training split, for dataset-level constants and diagnostics);
* :meth:`Task.evaluate`: named metrics on the evaluation split, with one declared **primary
  metric** (``primary_metric``, better when higher unless ``primary_goal`` is ``min``);
* :meth:`Task.preflight`: every mistake that depends on the data or on a file, found before any
  work (one line naming the field), with what it learned kept in a :class:`Preflight`;
* the dataclasses of its configuration: ``data_config``, ``augment_config``, ``model_config``
  (a run's ``task`` chooses them when its file is read).

Tasks are registered by name (:func:`register_task`) where they are defined.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np
from torch import Tensor, nn


def stream_seed(data_seed: int, epoch: int) -> int:
    """A 63-bit seed for epoch ``epoch`` of the stream with ``data_seed`` (every task's stream)."""
    return int(np.random.SeedSequence([data_seed, epoch]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


class TrainingBatch(Protocol):
    """One training batch as the engine sees it."""

    targets: Tensor
    """The class index per row of the logits (the dominant label under MixUp/CutMix)."""

    indices: Tensor | None
    """The training-set position of each row's sample (what per-sample state is keyed by)."""

    def cross_entropy(self, logits: Tensor, label_smoothing: float = 0.0) -> Tensor:
        """The mean cross-entropy of ``logits`` against the batch's labels (soft labels where
        mixing made them), in float32."""
        ...

    def per_sample_cross_entropy(self, logits: Tensor) -> Tensor:
        """Each row's cross-entropy ``[B]`` against its class index, in float32."""
        ...


class TrainStream(Protocol):
    batches_per_epoch: int

    def epoch(self, epoch: int) -> Iterator[TrainingBatch]:
        """The batches of 1-based ``epoch``: a function of the data seed and ``epoch`` only."""
        ...


class TaskData(Protocol):
    """The data of one cohort, on the training device."""

    num_classes: int
    train_size: int
    stream: TrainStream


class ModelAdapter(Protocol):
    """A teacher or a student as the engine uses it."""

    module: nn.Module

    def __call__(self, batch: TrainingBatch) -> Tensor:
        """Logits (rows aligned with ``batch.targets``) for a training batch, in the model's own
        precision (the engine upcasts)."""
        ...

    def metadata(self) -> dict[str, Any]:
        """What must be saved with the weights to use them again (e.g. the input normalisation)."""
        ...


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a model of a cohort holds on the training device: its weights, their gradients, its
    optimizer's state and its activations (a student's saved for backward at its batch size; a
    teacher's of one inference pass). A task that can estimate them answers the optional
    ``memory(shared, model, role, optimizer, facts)`` (``role``: ``student``, ``teacher`` or
    ``evaluation``, an inference pass at the evaluation batch size) and ``data_memory(shared,
    facts)`` (the data it keeps on the device); ``None`` where it cannot."""

    parameters: int = 0
    gradients: int = 0
    optimizer: int = 0
    activations: int = 0

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations


@dataclass
class Preflight:
    """What preflight learned, for ``plan`` and the cost estimate: each dataset's facts (its class
    names, ``train`` and ``test`` sizes and ``describe()``) by its config, and the models checked."""

    datasets: dict[str, Any] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)

    @staticmethod
    def key(data: Any) -> str:
        from ..config import to_dict

        return json.dumps({k: v for k, v in to_dict(data).items() if k not in ("download",)}, sort_keys=True)

    def facts(self, data: Any) -> Any:
        return self.datasets[self.key(data)]


class Task(Protocol):
    name: str
    primary_metric: str
    primary_goal: str
    precisions: tuple[str, ...]
    """The ``precision`` values it computes in (of :data:`kdtemp.engine.runtime.PRECISIONS`): ``fp64``
    only where its models and inputs follow the runtime's dtype."""
    data_config: type
    augment_config: type
    model_config: type

    def preflight(self, cohorts: Iterable[tuple[Any, list[Any]]], device: str = "auto", download: bool = True,
                  member_field: str = "student", state: Preflight | None = None) -> Preflight:
        """Check every ``(shared config, members)`` against its data and files; nothing is written."""
        ...

    def open(self, shared: Any, runtime: Any, progress: bool = False) -> TaskData: ...

    def create_model(self, config: Any, data: TaskData, runtime: Any, role: str) -> ModelAdapter: ...

    def evaluate(self, model: ModelAdapter, data: TaskData, runtime: Any, batch_size: int) -> dict[str, Tensor]: ...

    def split_logits(self, model: ModelAdapter, data: TaskData, split: str, runtime: Any,
                     batch_size: int) -> tuple[Tensor, Tensor]:
        """The model's logits on a split without augmentation (``train``: for dataset-level
        constants and teacher diagnostics), and the labels of their rows."""
        ...

    def scores(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """The evaluation's metrics of given logits and labels."""
        ...


TASKS: dict[str, Callable[[], Task]] = {}


def register_task(name: str) -> Callable:
    """Class decorator: register a task under ``name`` (created once per call to :func:`get_task`)."""

    def decorate(cls):
        TASKS[name] = cls
        return cls

    return decorate


def get_task(name: str) -> Task:
    """The task called ``name``; ``ValueError`` naming the registered ones otherwise."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; allowed: {', '.join(sorted(TASKS))}")
    return TASKS[name]()

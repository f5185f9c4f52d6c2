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
from typing import Any, Callable, Hashable, Iterable, Iterator, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from ..config import ConfigError
from ..files import warn


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


class ModelAdapter:
    """A teacher or a student as the engine uses it (a task's adapters derive from this class).

    ``fuses``: whether members of one architecture may train stacked in one vmapped pass
    (:mod:`kdtemp.engine.fused`): the adapter calls its module on one input tensor and the module
    has no stochastic layers of its own (stochastic depth). Off unless the adapter says so."""

    module: nn.Module
    fuses: bool = False

    def __call__(self, batch: TrainingBatch) -> Tensor:
        """Logits (rows aligned with ``batch.targets``) for a training batch, in the model's own
        precision (the engine upcasts)."""
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        """What must be saved with the weights to use them again (e.g. the input normalisation)."""
        raise NotImplementedError


@dataclass(frozen=True)
class MetricName:
    """How reports name one of a task's metrics: ``label`` in tables and figures (with its unit,
    ``top-1 (%)``), ``short`` in running text with its ``unit`` (``top-1`` and ``%``), and ``noun``,
    what it measures, for titles (``accuracy``). A metric on a named evaluation set
    (``rouge_l_selfinst``) is named as its metric on that set."""

    label: str
    short: str
    unit: str
    noun: str


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
    warned: set[str] = field(default_factory=set)

    def warn_once(self, message: str | None) -> None:
        """Print ``message`` as a warning unless it is None or was printed already (cohorts share data)."""
        if message is not None and message not in self.warned:
            self.warned.add(message)
            warn(message)

    @staticmethod
    def key(data: Any) -> str:
        from ..config import to_dict

        return json.dumps({k: v for k, v in to_dict(data).items() if k not in ("download",)}, sort_keys=True)

    def facts(self, data: Any) -> Any:
        return self.datasets[self.key(data)]


SampleSink = Callable[[str, list[dict[str, Any]]], None]
"""``samples(name, rows)``: an evaluation's rows (JSON objects) under ``name`` (``dolly-seed10``),
written by the engine as ``samples/<name>.jsonl`` in the run's folder (the latest epoch's)."""


class Task:
    """A kind of problem, as the engine, the study, ``plan`` and the report ask it. A task derives from
    this class, sets the attributes without defaults and implements the methods that raise
    :class:`NotImplementedError`; every other behaviour is declared here with its default, so no
    layer above asks a task whether it has an attribute."""

    name: str
    primary_metric: str
    primary_goal: str = "max"
    """``max`` when a larger primary metric is better, else ``min``."""
    data_config: type
    """Its ``data`` section: a dataclass with a ``dataset`` name (what reports show), ``validate(path)``,
    ``unused_fields()``, ``split_file`` (None where it has none) and ``expected_sizes()``; a
    ``cache_dir`` field, where it has one, is filled in for workers in other processes."""
    augment_config: type
    """Its ``augment`` section: a dataclass with ``validate(path)`` and ``unused_fields()``."""
    model_config: type
    """Its model sections (teacher, student): a dataclass with ``name``, ``init``, ``weights`` and
    ``prepared`` (the preparation a study's stage trains it in), ``validate(path)`` and ``unused_fields()``."""
    precisions: tuple[str, ...] = ("auto", "fp32", "bf16")
    """The ``precision`` values it computes in (of :data:`kdtemp.engine.runtime.PRECISIONS`): ``fp64``
    only where its models and inputs follow the runtime's dtype."""
    keeps_logit_precision: bool = False
    """Whether its logits stay in the model's precision (a vocabulary's ``[N, V]``: every loss upcasts
    a chunk of rows at a time) instead of being upcast whole by the engine."""
    progress_unit: str = "epoch"
    """What a policy's progress counts (DTS's cosine): finished epochs (``epoch``) or optimizer steps (``step``)."""
    diagnoses_teacher: bool = True
    """Whether the study's teacher diagnostics (class profiles at each T) apply to its teachers."""
    evaluation_split: str = "test"
    """The split its ``evaluate`` scores (GLUE's: the validation split), as reports name it."""
    sample_noun: str = "inputs"
    """What one sample of its data is called in messages (``images``, ``records``)."""
    step_unit: str = "input-steps"
    """What ``plan`` counts a training step of one sample in (``image-steps``)."""
    metric_names: dict[str, MetricName] = {}
    """How reports name its metrics (:class:`MetricName`); a metric without one is named as stored."""
    member_sections: dict[str, type] = {}
    """Sections a member of this task has besides the engine's (a language model's ``responses``):
    name -> a dataclass with ``validate(path)`` and ``unused_fields()`` (``"*"`` among them: the whole
    section says nothing about the run, e.g. left at its default)."""
    validation_split: bool = False
    """Whether its ``data`` section has a ``validation`` field (a split held out of training,
    :mod:`kdtemp.tasks.validation`; a language model's: records of its data's own validation split) that
    :meth:`validation_scores` scores: what ``kdtemp tune`` chooses on."""
    evaluation_fields: frozenset[str] = frozenset()
    """Fields of its ``data`` section that only evaluation reads (a language model's generation settings
    and evaluation sets): they are not part of a run's identity, so changing them evaluates finished
    runs again (:mod:`kdtemp.engine.evaluation`) instead of training them again. A run whose training
    reads its own evaluation (Annealing KD's best phase-1 epoch) keeps them in its identity."""
    teacher_data_fields: frozenset[str] = frozenset()
    """Fields of its ``data`` section that concern a distillation cohort's teacher (a language model's
    ``teacher_cache``): a study's preparation stage, which trains a teacher without one, takes the study's
    ``data`` without them (they say nothing about the teacher it trains, nor change its id)."""
    writes_samples: bool = False
    """Whether its ``evaluate`` takes a ``samples`` sink (:data:`SampleSink`) and hands it what a person
    reads to judge the model (a language model's generations); the engine writes them beside the run."""

    def preflight(self, cohorts: Iterable[tuple[Any, list[Any]]], device: str = "auto", download: bool = True,
                  member_field: str = "student", state: Preflight | None = None) -> Preflight:
        """Check every ``(shared config, members)`` against its data and files; nothing is written."""
        raise NotImplementedError

    def open(self, shared: Any, runtime: Any, progress: bool = False) -> TaskData:
        raise NotImplementedError

    def create_model(self, config: Any, data: TaskData, runtime: Any, role: str) -> ModelAdapter:
        raise NotImplementedError

    def evaluate(self, model: ModelAdapter, data: TaskData, runtime: Any, batch_size: int) -> dict[str, Tensor]:
        """The evaluation's metrics by name (a task that ``writes_samples`` also takes ``samples=``)."""
        raise NotImplementedError

    def batch_source(self, member: Any) -> Hashable | None:
        """Where a member's training batches come from: None for the cohort's shared stream (and its
        one teacher pass); otherwise a key, equal for members that share their batches (a language
        model's teacher-generated responses) and unique to a member that makes its own (on-policy
        samples). Such a member is trained on :meth:`member_batch` and never fused."""
        return None

    def prepare_sources(self, members: list[Any], data: TaskData, teacher: ModelAdapter | None, runtime: Any,
                        progress: bool | str = False) -> None:
        """Before the first step: make what the members' batch sources need (a language model's
        teacher-generated responses, cached), given the cohort's teacher. Nothing by default."""

    def member_batch(self, source: Hashable, batch: Any, epoch: int, step: int, member: Any, model: ModelAdapter,
                     teacher: ModelAdapter | None, data: TaskData, runtime: Any) -> tuple[Any, Tensor | None] | None:
        """The batch and teacher logits a member with batch source ``source`` trains on at this step of
        the shared stream (called with the member's random streams), or None to use the shared batch."""
        raise NotImplementedError(f"task {self.name!r} declares no batch source {source!r}")

    def teacher_passes(self, members: list[Any], data: Any) -> float:
        """The live teacher passes a cohort of ``members`` on ``data`` (its data config) makes per batch
        of the shared stream, expected (``plan``'s cost): one, shared by all, by default; more where
        members train on batches of their own (:meth:`batch_source`); none where the data serves the
        teacher's outputs from a cache."""
        return 1.0

    def plan_notes(self, shared: Any, members: list[Any]) -> list[str]:
        """Lines ``plan`` prints under a cohort: work the cohort does besides training (a language model's
        teacher responses, generated once and cached); none by default."""
        return []

    def validation_scores(self, model: ModelAdapter, data: TaskData, runtime: Any, batch_size: int) -> dict[str, Tensor]:
        """The evaluation's metrics on the validation split held out of training (``data.validation``,
        :mod:`kdtemp.tasks.validation`), recorded as ``val_<metric>``; empty without one (the default)."""
        return {}

    def degenerate(self, metrics: dict[str, float], every_set: bool = False) -> str | None:
        """Why a model with these evaluation ``metrics`` is unusable as a teacher (its outputs are
        noise: empty, one token repeated), or None. A study stops before distilling from such a
        prepared teacher (its first evaluation set's); reports flag a model degenerate on any set
        (``every_set``). None by default: a classifier's accuracy says what it says."""
        return None

    def split_logits(self, model: ModelAdapter, data: TaskData, split: str, runtime: Any,
                     batch_size: int) -> tuple[Tensor, Tensor]:
        """The model's logits on a split without augmentation (``train``: for dataset-level
        constants and teacher diagnostics), and the labels of their rows."""
        raise NotImplementedError

    def scores(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """The evaluation's metrics of given logits and labels."""
        raise NotImplementedError

    def prepare_objective(self, objective: Any, data: TaskData) -> Any:
        """The objective as this task's batches need it (a language model's applies it to token
        rows a chunk at a time); unchanged by default."""
        return objective

    def memory(self, shared: Any, model: Any, role: str, optimizer: Any, facts: Any) -> MemoryEstimate | None:
        """A model's bytes on the training device (:class:`MemoryEstimate`); None where the task
        cannot estimate them (its cohorts are then sized by ``max_cohort_size`` alone)."""
        return None

    def data_memory(self, shared: Any, facts: Any) -> int | None:
        """The bytes of the data the task keeps on the device; None where unknown."""
        return None

    def data_classes(self, data: Any) -> list[str] | None:
        """The class names of ``data`` read without loading it (an index on disk), for a checkpoint
        made by an earlier version that recorded none; None where the task cannot."""
        return None

    def teacher_view(self, augment: Any) -> dict[str, Any]:
        """What of the augmentation settings changes the inputs a teacher is evaluated on (part of a
        teacher's identity for its diagnostics); nothing by default."""
        return {}

    def expected_sizes(self, data: Any) -> tuple[int, int, int] | None:
        """``(train, test, classes)`` of a dataset not on disk yet (one kdtemp downloads), for
        ``plan``'s cost; None where unknown."""
        return None

    def model_label(self, model: Any) -> str:
        """How ``plan`` and reports name a model config: its ``name`` by default."""
        return model.name

    def forward_flops(self, model: Any, data: Any, classes: int) -> float | None:
        """The FLOPs of one forward pass of ``model`` on one input of ``data``; None where they
        cannot be counted."""
        return None


def check_device(device: str, field_name: str) -> None:
    """A CUDA device that this machine does not have is an error (``auto`` falls back to the CPU)."""
    if not device.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"{field_name}: {device!r} requested, but no CUDA device is visible here; allowed: auto or cpu")
    if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise ConfigError(f"{field_name}: {device!r} requested, but this machine has {torch.cuda.device_count()} "
                          f"CUDA device(s); allowed: cuda:0 to cuda:{torch.cuda.device_count() - 1}")


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

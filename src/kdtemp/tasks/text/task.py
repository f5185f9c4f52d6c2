"""Text classification on the task interface: GLUE and your own labelled text, Hugging Face models.

The cohort's data is tokenised once (the teacher's tokenizer unless ``data.tokenizer`` names one) and
lives on the training device; the stream is a seeded permutation per epoch of dynamically padded
batches. Evaluation is on GLUE's validation split(s) with the task's metrics (MNLI's mismatched split
with the suffix ``_mm``); each dataset declares its primary metric (SST-2, QNLI, RTE, MNLI and your
own data: accuracy; MRPC and QQP: F1; CoLA: Matthews' correlation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..base import Task, register_task
from .config import TextAugmentConfig, TextDataConfig, TextModelConfig
from .data import TextSplit, TextStream, load_splits, test_splits
from .glue import ACCURACY, GLUE, MISMATCHED_SUFFIX
from .metrics import scores
from ..validation import carve
from ..hf import forward_flops, load_tokenizer, model_label, tokenizer_source
from .models import TextModel, load_text_model


def metrics_of(data: TextDataConfig) -> tuple[tuple[str, ...], str]:
    """The dataset's metrics and its primary one."""
    if data.dataset in GLUE:
        return GLUE[data.dataset].metrics, GLUE[data.dataset].primary
    return (ACCURACY,), ACCURACY


@dataclass
class TextData:
    """The data of one text cohort on its device."""

    train: TextSplit
    tests: dict[str, TextSplit]  # evaluation split name -> split, the primary one first
    stream: TextStream
    metrics: tuple[str, ...]
    tokenizer: str
    vocabulary: int
    validation: TextSplit | None = None  # held out of the training split (``data.validation``)

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def train_size(self) -> int:
        return len(self.train)

    @property
    def classes(self) -> list[str]:
        return self.train.classes


@register_task("text_classification")
class TextClassification(Task):
    """Text classification with Hugging Face models; the primary metric is the dataset's."""
    evaluation_split = "validation"  # GLUE reports its development results

    name = "text_classification"
    primary_metric = ACCURACY
    primary_goal = "max"
    precisions = ("auto", "fp32", "bf16")  # Hugging Face models in float32 or under bf16 autocast
    validation_split = True  # data.validation
    data_config = TextDataConfig
    augment_config = TextAugmentConfig
    model_config = TextModelConfig

    def open(self, shared: Any, runtime: Any, progress: bool = False) -> TextData:
        """Tokenise (or read from the cache) every split onto ``runtime.device``; the dataset's
        primary metric becomes this task's."""
        from ...paths import default_cache_dir  # one cache folder for every task's data

        name = tokenizer_source(shared)
        tokenizer = load_tokenizer(name)
        cache = Path(shared.data.cache_dir).expanduser() if shared.data.cache_dir else default_cache_dir()
        splits = load_splits(shared.data, tokenizer, name, cache, progress)
        metrics, self.primary_metric = metrics_of(shared.data)
        train, validation = splits["train"], None
        if shared.data.validation is not None:  # held out before anything trains on it
            kept, held = carve(len(train), shared.data.validation)
            train, validation = train.subset(torch.as_tensor(kept)), train.subset(torch.as_tensor(held)).to(runtime.device)
        train = train.to(runtime.device)
        tests = {split: splits[split].to(runtime.device) for split in test_splits(shared.data)}
        return TextData(train, tests, TextStream(train, shared.batch_size, shared.data_seed), metrics, name,
                        len(tokenizer), validation)

    def create_model(self, config: TextModelConfig, data: TextData, runtime: Any, role: str) -> TextModel:
        module = load_text_model(config, data.classes, role, "teacher" if role == "teacher" else "student.model")
        return TextModel(module.to(runtime.device), data.classes, data.tokenizer)

    def evaluate(self, model: TextModel, data: TextData, runtime: Any, batch_size: int) -> dict[str, Tensor]:
        """The dataset's metrics and ``loss`` on each evaluation split (the second with ``_mm``)."""
        out: dict[str, Tensor] = {}
        for index, split in enumerate(data.tests.values()):
            out.update(scores(model.predict(split, batch_size, runtime), split.labels, data.metrics,
                              MISMATCHED_SUFFIX if index else ""))
        return out

    def validation_scores(self, model: TextModel, data: TextData, runtime: Any, batch_size: int) -> dict[str, Tensor]:
        """The dataset's metrics and ``loss`` on the validation split held out of training (none without one)."""
        if data.validation is None:
            return {}
        return scores(model.predict(data.validation, batch_size, runtime), data.validation.labels, data.metrics, "")

    def split_logits(self, model: TextModel, data: TextData, split: str, runtime: Any,
                     batch_size: int) -> tuple[Tensor, Tensor]:
        chosen = data.train if split == "train" else next(iter(data.tests.values()))
        return model.predict(chosen, batch_size, runtime), chosen.labels

    def scores(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        return scores(logits, labels, (ACCURACY,))

    def forward_flops(self, model: Any, data: Any, classes: int) -> float | None:
        """At ``max_length`` tokens an input, an upper bound of the padded batches' length
        (:func:`~kdtemp.tasks.hf.forward_flops`)."""
        return forward_flops(model, "AutoModelForSequenceClassification", data.max_length, {"num_labels": classes})

    def model_label(self, model: Any) -> str:
        """A model built from a config by its shape (:func:`~kdtemp.tasks.hf.model_label`)."""
        return model_label(model)

    def preflight(self, cohorts, device: str = "auto", download: bool = True, member_field: str = "student",
                  state=None):
        """:func:`kdtemp.tasks.text.preflight.preflight`."""
        from .preflight import preflight

        return preflight(cohorts, device=device, download=download, member_field=member_field, state=state)

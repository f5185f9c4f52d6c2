"""What a text-classification study file says about its data and models (dataclasses are the schema).

``data`` names a GLUE task (``sst2``, ``mrpc``, ``cola``, ``qnli``, ``rte``, ``qqp``, ``mnli``) or the
generic ``text_classification`` format; ``teacher`` and ``student.model`` name Hugging Face models.
Nothing here imports Transformers: a study file is checked without it, and the image path never
loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...config import ConfigError, require
from ..validation import check_validation
from ..hf import FileFreeData, NotAugmented, source_unused_fields, validate_source
from .glue import GLUE, REFUSED

GENERIC = "text_classification"
FORMATS = (".tsv", ".csv", ".jsonl")


@dataclass
class TextDataConfig(FileFreeData):
    """A text-classification dataset, tokenised once and cached as integer tensors.

    ``dataset``: a GLUE task, read through ``datasets`` (``nyu-mll/glue``; with ``download: true``
    where the machine is online, else from the ``datasets`` cache) unless ``root`` names a folder of
    GLUE's own TSV files; or ``text_classification``: a folder ``root`` with ``train`` and ``test``
    files (``.tsv``, ``.csv`` or ``.jsonl``; ``test`` may be called ``validation`` or ``dev``), whose
    ``text_column`` (and ``text_pair_column`` for pairs) and ``label_column`` are read.
    ``tokenizer``: a Hugging Face tokenizer (hub name or local folder); ``null`` takes the teacher's.
    ``max_length``: longer inputs are truncated (their count is reported); batches are padded to
    their longest input. ``train_per_class`` / ``test_per_class``: the first N of each class.
    ``validation``: a fraction or count of the training split held out as a validation split
    (:mod:`kdtemp.tasks.validation`).
    """

    dataset: str = "sst2"
    root: str | None = None
    download: bool = False
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    tokenizer: str | None = None
    max_length: int = 128
    train_per_class: int | None = None
    test_per_class: int | None = None
    cache_dir: str | None = None
    validation: int | float | None = None

    def validate(self, path: str = "data") -> None:
        check_validation(self.validation, f"{path}.validation")
        if self.dataset in REFUSED:
            raise ConfigError(f"{path}.dataset: {REFUSED[self.dataset]}")
        require(self.dataset in GLUE or self.dataset == GENERIC, f"{path}.dataset",
                f"unknown text dataset {self.dataset!r}; allowed: the GLUE tasks {', '.join(GLUE)}, or {GENERIC} "
                "(your own files)")
        if self.dataset == GENERIC:
            require(bool(self.root), f"{path}.root", f"{GENERIC} reads a folder of train and test files; give its path")
        else:  # GLUE's columns are GLUE's: a column setting would be ignored
            for name, default in (("text_column", "text"), ("text_pair_column", None), ("label_column", "label")):
                value = getattr(self, name)
                require(value == default, f"{path}.{name}",
                        f"applies to {GENERIC} files; GLUE {self.dataset}'s columns are GLUE's (remove it); got {value!r}")
        if self.root is not None:
            require(Path(self.root).expanduser().is_dir(), f"{path}.root", f"{self.root!r} is not a folder")
        require(16 <= self.max_length <= 1_000_000, f"{path}.max_length", f"must be in [16, 1000000]; got {self.max_length}")
        for name in ("train_per_class", "test_per_class"):
            value = getattr(self, name)
            require(value is None or value >= 1, f"{path}.{name}", f"must be >= 1 or null; got {value}")

    def unused_fields(self) -> set[str]:
        """Fields that cannot change a result: where the cache lives, whether downloading is allowed,
        and a GLUE task's column settings (its columns are GLUE's)."""
        unused = {"cache_dir", "download"} | ({"validation"} if self.validation is None else set())
        if self.dataset != GENERIC:
            unused |= {"text_column", "text_pair_column", "label_column"}
        return unused


@dataclass
class TextAugmentConfig(NotAugmented):
    """Text is not augmented: the stream is a seeded permutation of the tokenised training split."""


@dataclass
class TextModelConfig:
    """A Hugging Face sequence classifier (``AutoModelForSequenceClassification``).

    ``init``: ``pretrained`` (``name`` is a hub name, from the local cache when offline, or a local
    ``save_pretrained`` folder; a student may get a new classification head, a teacher never),
    ``checkpoint`` (``weights``: a kdtemp checkpoint of this data, e.g. a prepared teacher's
    ``teacher.pt``, or a ``save_pretrained`` folder whose head fits the labels) or ``random``
    (``config``: the architecture, e.g. ``{model_type: bert, hidden_size: 256, num_hidden_layers: 4,
    num_attention_heads: 4, intermediate_size: 1024}``; ``name`` is then only a label).
    Weights load as safetensors or with ``weights_only``; ``trust_remote_code`` stays off unless set.
    """

    name: str = "bert-base-uncased"
    init: Literal["pretrained", "checkpoint", "random"] = "pretrained"
    weights: str | None = None
    config: dict[str, Any] | None = None
    trust_remote_code: bool = False
    prepared: str | None = None  # set by a study: the id of the preparation that writes ``weights``

    def validate(self, path: str = "model") -> None:
        validate_source(self, path, "bert")

    def unused_fields(self) -> set[str]:
        return source_unused_fields(self)

"""Preflight of text cohorts: every mistake that depends on the data, the tokenizer or a model file,
found before any work, as one line naming the field.

It reads each dataset's rows once (columns, labels; nothing is tokenised), loads the tokenizer once,
and checks each model without building it: a pretrained name is found in the local Hugging Face
cache or asked of the hub once (a name neither has is one line, e.g. offline); a kdtemp checkpoint's
recorded labels must be the data's, in order; a model's vocabulary must hold every id the tokenizer
gives and its positions the inputs' ``max_length``. A GLUE task read through ``datasets`` that is not
cached yet while ``plan`` may not download is checked when the study runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..validation import noise_note, validation_count
from ...config import ConfigError
from ...weights import WeightsError, read_weights
from ..base import Preflight, check_device
from ..hf import (SAMPLE_TEXTS, build_on_meta, check_tokenizer_reads, hf_config, load_tokenizer, model_limits, recorded_tokenizer,
                  tokenizer_identity, tokenizer_source)
from .config import TextDataConfig, TextModelConfig
from .data import read_rows, test_splits


@dataclass
class TextFacts:
    """What preflight learned about one text dataset (after the per-class subsets)."""

    data: TextDataConfig
    classes: list[str]
    train: int
    test: int
    sample: list[str] = field(default_factory=list)  # the first training texts, for the tokenizer check

    def describe(self) -> str:
        where = f" {self.data.root}" if self.data.root else " (datasets: nyu-mll/glue)"
        return f"{self.data.dataset}{where}: {len(self.classes)} classes, {self.train:,} train / {self.test:,} test inputs"


def _count(labels: list[int], classes: int, per_class: int | None) -> int:
    if per_class is None:
        return len(labels)
    return sum(min(per_class, labels.count(c)) for c in range(classes))


def _sample(texts: list[str], pairs: list[str] | None) -> list[str]:
    """The first :data:`~kdtemp.tasks.hf.SAMPLE_TEXTS` inputs as the tokenizer check reads them (a
    pair's two texts joined)."""
    texts = texts[:SAMPLE_TEXTS]
    return [f"{text} {pair}" for text, pair in zip(texts, pairs[:SAMPLE_TEXTS])] if pairs else texts


def _dataset(data: TextDataConfig, download: bool, state: Preflight) -> TextFacts | None:
    key = Preflight.key(data)
    if key in state.datasets:
        return state.datasets[key]
    try:
        train = read_rows(data, "train")
        tests = [read_rows(data, split, train.classes) for split in test_splits(data)]
    except ConfigError as error:
        if data.root is None and not download and str(error).startswith("data.dataset: GLUE"):
            return None  # not cached yet: the run reads it (downloading with data.download) and checks it then
        raise
    facts = TextFacts(data, train.classes, _count(train.labels, len(train.classes), data.train_per_class),
                      _count(tests[0].labels, len(train.classes), data.test_per_class),
                      _sample(train.texts, train.pairs))
    state.datasets[key] = facts
    return facts


def check_model(config: TextModelConfig, facts: TextFacts, tokenizer: Any, tokenizer_name: str, max_length: int,
                field: str) -> None:
    """The labels a checkpoint records, and whether the tokenizer's ids and the inputs' length fit."""
    if config.init == "checkpoint" and Path(config.weights).expanduser().is_file():
        try:
            meta = read_weights(config.weights)[1]
        except WeightsError as error:
            raise ConfigError(f"{field}.weights: {error}") from None
        recorded = meta.get("classes")
        if recorded is not None and list(recorded) != list(facts.classes):
            raise ConfigError(f"{field}.weights: its labels ({', '.join(map(str, recorded))}) differ from the data's "
                              f"({', '.join(facts.classes)})")
    hf = hf_config(config, field)
    if hf is None:
        return
    build_on_meta(config, hf, field, "AutoModelForSequenceClassification", {"num_labels": len(facts.classes)})
    source = recorded_tokenizer(config, field)
    if source is not None and source != tokenizer_name:
        other = load_tokenizer(source, f"{field}.name")
        if tokenizer_identity(other, "") != tokenizer_identity(tokenizer, ""):
            raise ConfigError(f"{field}: {config.name!r} uses the tokenizer {source!r}, which differs from the data's "
                              f"{tokenizer_name!r} (its vocabulary or rules): it would read ids of another vocabulary; "
                              "set data.tokenizer to the model's, or use models of one tokenizer")
    vocabulary, positions = model_limits(hf)
    if isinstance(vocabulary, int) and len(tokenizer) > vocabulary:
        raise ConfigError(f"data.tokenizer: {tokenizer_name!r} gives ids up to {len(tokenizer) - 1}, but {field} "
                          f"{config.name!r} has embeddings for {vocabulary} tokens; use the model's own tokenizer or "
                          "one that fits it")
    if isinstance(positions, int) and max_length > positions:
        raise ConfigError(f"data.max_length: {max_length} exceeds the {positions} positions of {field} "
                          f"{config.name!r}; allowed: at most {positions}")


def preflight(cohorts: Iterable[tuple[Any, list[Any]]], device: str = "auto", download: bool = True,
              member_field: str = "student", state: Preflight | None = None) -> Preflight:
    """Check every text cohort (its shared config and members) against its data, tokenizer and models."""
    state = state or Preflight()
    check_device(device, "executor.device" if member_field == "student" else "device")
    for shared, members in cohorts:
        facts = _dataset(shared.data, download, state)
        if facts is not None and shared.data.validation is not None:  # one line now, not when the cohort opens
            state.warn_once(noise_note(validation_count(shared.data.validation, facts.train)))
        prefix = f"{member_field}." if member_field else ""
        models = ([(shared.teacher, "teacher")] if shared.teacher is not None else []) + \
            [(member.model, f"{prefix}model") for member in members]
        if facts is None:  # the data is read when the run starts; the models can be found now
            for model, where in models:
                hf_config(model, where)
            continue
        if shared.batch_size > facts.train:
            raise ConfigError(f"batch_size: {shared.batch_size} exceeds the {facts.train} training inputs of this data "
                              f"({facts.describe()}); allowed: at most {facts.train}")
        name = tokenizer_source(shared, members)
        tokenizer = load_tokenizer(name)
        check_tokenizer_reads(tokenizer, name, facts.sample)
        for model, where in models:
            check_model(model, facts, tokenizer, name, shared.data.max_length, where)
    return state

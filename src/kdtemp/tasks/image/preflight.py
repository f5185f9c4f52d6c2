"""Preflight of image cohorts: every mistake that depends on the data or on a file, found before any work.

``kdtemp study plan``, ``study run``, ``distill`` and ``teacher`` call :func:`preflight` before they
write anything. It opens each distinct dataset once (class names, images per class, image size,
from the cache's index or the dataset's listing: nothing is decoded), loads each distinct weights
file once (``weights_only=True``) into its model and checks it against the data's class count,
and checks every constraint that needs the data: class names, subset sizes, batch size, the
device. Each failure is a ``ConfigError`` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import torch

from kdtemp.config import ConfigError, to_dict
from .data import DataConfig, SplitIndex
from .models import ModelConfig, WeightsError, hub_pretrained_cfg, load_model

if TYPE_CHECKING:  # the run descriptions of the engine, read here as plain data
    from kdtemp.engine.config import MemberConfig, SharedConfig


@dataclass
class DatasetFacts:
    """What preflight learned about one dataset (after the subset builder)."""

    data: DataConfig
    classes: list[str]
    train: int
    test: int
    image_size: tuple[int, int] | None

    def describe(self) -> str:
        size = f", stored at {self.image_size[1]}x{self.image_size[0]}" if self.image_size else ""
        where = f" {self.data.root}" if self.data.root else ""
        return (f"{self.data.dataset}{where}: {len(self.classes)} classes, {self.train:,} train / {self.test:,} test "
                f"images{size}")


@dataclass
class Preflight:
    """The facts preflight gathered, for ``plan`` and the cost estimate."""

    datasets: dict[str, DatasetFacts] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)

    def facts(self, data: DataConfig) -> DatasetFacts:
        return self.datasets[_data_key(data)]


def _data_key(data: DataConfig) -> str:
    return json.dumps({k: v for k, v in to_dict(data).items() if k not in ("download",)}, sort_keys=True)


def preflight(cohorts: Iterable[tuple[SharedConfig, list[MemberConfig]]], device: str = "auto",
              download: bool = True, member_field: str = "student", state: Preflight | None = None) -> Preflight:
    """Check every cohort (its shared config and members) against its data and files.

    ``download``: whether datasets with ``data.download: true`` may be fetched now (``plan``
    passes False and then checks only what is on disk). ``member_field``: how members' fields are
    named in messages (``student`` in studies and distill configs, ``model``'s parent in teacher
    configs is the top level, pass ``""``).
    """
    state = state or Preflight()
    check_device(device, "executor.device" if member_field == "student" else "device")
    for shared, members in cohorts:
        facts = _dataset(shared.data, download, state)
        if facts is None:
            continue
        count = len(facts.classes)
        if shared.batch_size > facts.train:
            raise ConfigError(f"batch_size: {shared.batch_size} exceeds the {facts.train} training images of this data "
                              f"({facts.describe()}); allowed: at most {facts.train}")
        if shared.teacher is not None:
            check_model(shared.teacher, count, "teacher", "teacher", state)
        prefix = f"{member_field}." if member_field else ""
        for member in members:
            check_model(member.model, count, "student", f"{prefix}model", state)
            keep_top = member.objective_params.get("keep_top")
            if keep_top is not None and keep_top > count:
                raise ConfigError(f"{prefix}objective_params.keep_top: {keep_top} exceeds the {count} classes of "
                                  f"this data; allowed: 0 to {count}")
    return state


def check_device(device: str, field_name: str) -> None:
    """A CUDA device that this machine does not have is an error (``auto`` falls back to the CPU)."""
    if not device.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"{field_name}: {device!r} requested, but no CUDA device is visible here; allowed: auto or cpu")
    if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise ConfigError(f"{field_name}: {device!r} requested, but this machine has {torch.cuda.device_count()} "
                          f"CUDA device(s); allowed: cuda:0 to cuda:{torch.cuda.device_count() - 1}")


def _dataset(data: DataConfig, download: bool, state: Preflight) -> DatasetFacts | None:
    key = _data_key(data)
    if key in state.datasets:
        return state.datasets[key]
    try:
        train = data.index("train", download=data.download and download)
        test = data.index("test", download=data.download and download)
    except ConfigError as error:
        if data.download and not download and str(error).startswith("data.root"):
            return None  # not on disk yet: ``run`` downloads it and checks it then
        raise
    _check_splits(data, train, test)
    facts = DatasetFacts(data, train.classes, len(train), len(test), train.image_size)
    state.datasets[key] = facts
    return facts


def _check_splits(data: DataConfig, train: SplitIndex, test: SplitIndex) -> None:
    if len(train.classes) < 2:
        raise ConfigError(f"data.root: {data.root!r} has {len(train.classes)} class(es); a classification task needs at least 2")
    if train.classes != test.classes:
        only_train = sorted(set(train.classes) - set(test.classes))
        only_test = sorted(set(test.classes) - set(train.classes))
        detail = (f"only in train: {only_train[:3]}" if only_train else "") + \
                 (f" only in test: {only_test[:3]}" if only_test else "") or "the same names in another order"
        raise ConfigError(f"data.root: the training and test splits of {data.root!r} have different classes "
                          f"({detail.strip()}); labels would not match")
    if len(test) == 0:
        raise ConfigError(f"data.root: the test split of {data.root!r} has no images")
    empty = [name for name, n in zip(train.classes, train.counts) if n == 0]
    if empty:
        raise ConfigError(f"data.root: class {empty[0]!r} has no training images")


def check_model(config: ModelConfig, num_classes: int, role: str, field_name: str, state: Preflight) -> None:
    """Load ``config``'s weights (once per distinct config) and check they fit the model and the data.

    A teacher must already fit the data's class count; a student with ``init: pretrained`` may get
    a new classifier (fine-tuning). A normalisation given in the config must agree with the one a
    kdtemp checkpoint recorded.
    """
    key = json.dumps([to_dict(config), num_classes, role], sort_keys=True)
    if key in state.models:
        return
    if config.init == "pretrained" and not config.weights:
        hub_classes = getattr(hub_pretrained_cfg(config.name), "num_classes", None)
        if role == "teacher" and hub_classes is not None and hub_classes != num_classes:
            raise ConfigError(f"{field_name}.init: timm's pretrained {config.name!r} has {hub_classes} classes and the "
                              f"data has {num_classes}; a teacher must already fit the data (fine-tune it first with "
                              "`kdtemp teacher`, then use init: checkpoint)")
    elif config.prepared and not Path(config.weights).expanduser().is_file():
        pass  # prepared by the study's first stage, whose own preflight checked it
    elif config.weights:
        try:
            with torch.random.fork_rng(devices=[]):
                loaded = load_model(config, num_classes, allow_new_head=role == "student" and config.init == "pretrained")
        except WeightsError as error:
            hint = ""
            if role == "student" and config.init == "checkpoint" and "classifier has" in str(error):
                hint = " (init: pretrained fine-tunes general weights with a new classifier)"
            raise ConfigError(f"{field_name}.weights: {error}{hint}") from None
        recorded = loaded.recorded
        if config.normalization is not None and recorded:
            wanted = (tuple(recorded["mean"]), tuple(recorded["std"]))
            if tuple(map(tuple, config.normalization)) != tuple(map(tuple, wanted)):
                raise ConfigError(f"{field_name}.mean: the config normalises with mean {list(config.normalization[0])}, "
                                  f"std {list(config.normalization[1])}, but {config.weights!r} was trained with mean "
                                  f"{list(wanted[0])}, std {list(wanted[1])}; remove mean/std to use the checkpoint's")
    state.models.add(key)

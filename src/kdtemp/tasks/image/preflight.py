"""Preflight of image cohorts: every mistake that depends on the data or on a file, found before any work.

``kdtemp study plan``, ``study run``, ``distill`` and ``teacher`` call :func:`preflight` before they
write anything. It opens each distinct dataset once (class names, images per class, image size,
from the cache's index or the dataset's listing: nothing is decoded), loads each distinct weights
file once (``weights_only=True``) into its model and checks it against the data's class count
and class names in order (a checkpoint that records other names, or the same in another order, is
refused unless the model asks for ``remap_classes``; one that records none is assumed to be in the
data's order, with a warning), finds each pretrained name in the local caches timm uses, or
reaches its hub once with a short timeout (never with ``HF_HUB_OFFLINE=1``), and checks every
constraint that needs the data: class names, subset sizes, batch size, the device. Each failure is
a ``ConfigError`` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from kdtemp.config import ConfigError, to_dict
from kdtemp.files import warn
from ..validation import noise_note, validation_count
from ..base import Preflight, check_device
from .data import DataConfig, SplitIndex
from .models import (LoadedModel, ModelConfig, WeightsError, find_pretrained, hub_offline, hub_pretrained_cfg,
                     load_model, reach, read_weights, recorded_classes, shown_classes)

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


def _data_key(data: DataConfig) -> str:
    return Preflight.key(data)


def preflight(cohorts: Iterable[tuple[Any, list[Any]]], device: str = "auto",
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
        if shared.data.validation is not None:  # one line now, not when the cohort opens
            state.warn_once(noise_note(validation_count(shared.data.validation, facts.train)))
        if shared.batch_size > facts.train:
            raise ConfigError(f"batch_size: {shared.batch_size} exceeds the {facts.train} training images of this data "
                              f"({facts.describe()}); allowed: at most {facts.train}")
        if shared.teacher is not None:
            check_model(shared.teacher, count, "teacher", "teacher", state, classes=facts.classes)
        prefix = f"{member_field}." if member_field else ""
        for member in members:
            check_model(member.model, count, "student", f"{prefix}model", state, classes=facts.classes)
            keep_top = member.objective_params.get("keep_top")
            if keep_top is not None and keep_top > count:
                raise ConfigError(f"{prefix}objective_params.keep_top: {keep_top} exceeds the {count} classes of "
                                  f"this data; allowed: 0 to {count}")
    return state


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


def check_model(config: ModelConfig, num_classes: int, role: str, field_name: str, state: Preflight,
                classes: list[str] | None = None) -> None:
    """Load ``config``'s weights (once per distinct config) and check they fit the model and the data.

    A teacher must already fit the data's class count; a student with ``init: pretrained`` may get
    a new classifier (fine-tuning). Weights that record class names must record the data's
    ``classes`` in the same order (see :func:`check_classes`). Pretrained weights by name must be
    in a local cache or on a hub that answers (see :func:`check_pretrained`). A normalisation given
    in the config must agree with the one a kdtemp checkpoint recorded.
    """
    key = json.dumps([to_dict(config), num_classes, role, classes], sort_keys=True)
    if key in state.models:
        return
    if config.init == "pretrained" and not config.weights:
        hub_classes = getattr(hub_pretrained_cfg(config.name), "num_classes", None)
        if role == "teacher" and hub_classes is not None and hub_classes != num_classes:
            raise ConfigError(f"{field_name}.init: timm's pretrained {config.name!r} has {hub_classes} classes and the "
                              f"data has {num_classes}; a teacher must already fit the data (fine-tune it first with "
                              "`kdtemp teacher`, then use init: checkpoint)")
        check_pretrained(config.name, field_name)
    elif config.prepared and not Path(config.weights).expanduser().is_file():
        pass  # prepared by the study's first stage, whose own preflight checked it
    elif config.weights:
        try:
            with torch.random.fork_rng(devices=[]):
                loaded = load_model(config, num_classes, allow_new_head=role == "student" and config.init == "pretrained",
                                    classes=classes)
        except WeightsError as error:
            hint = ""
            if role == "student" and config.init == "checkpoint" and "classifier has" in str(error):
                hint = " (init: pretrained fine-tunes general weights with a new classifier)"
            elif "classifier has" in str(error) and classes and not config.remap_classes:
                names = recorded_classes(read_weights(config.weights)[1])
                if names and set(classes) <= set(names):
                    hint = (f" (it records the data's classes among its {len(names)}: {field_name}.remap_classes: true "
                            "keeps their outputs)")
            raise ConfigError(f"{field_name}.weights: {error}{hint}") from None
        recorded = loaded.recorded
        if config.normalization is not None and recorded:
            wanted = (tuple(recorded["mean"]), tuple(recorded["std"]))
            if tuple(map(tuple, config.normalization)) != tuple(map(tuple, wanted)):
                raise ConfigError(f"{field_name}.mean: the config normalises with mean {list(config.normalization[0])}, "
                                  f"std {list(config.normalization[1])}, but {config.weights!r} was trained with mean "
                                  f"{list(wanted[0])}, std {list(wanted[1])}; remove mean/std to use the checkpoint's")
        if classes is not None:
            check_classes(config, loaded, classes, role, field_name)
    state.models.add(key)


def check_classes(config: ModelConfig, loaded: LoadedModel, classes: list[str], role: str, field_name: str) -> None:
    """The class names a weights file recorded (in label order) must be the data's ``classes`` in
    the same order, where its classifier is used as it is: a teacher, or ``init: checkpoint``. (A
    student with ``init: pretrained`` fine-tunes its classifier: only the data's own names in
    another order are refused there.) A remapped classifier (``remap_classes``) fits by
    construction; a file that records no names is assumed to be in the data's order, with a
    warning."""
    if loaded.remapped:
        return
    names, kept = loaded.classes, role == "teacher" or config.init == "checkpoint"
    if names is None:
        if kept:
            warn(f"{field_name}.weights: {config.weights!r} records no class names; its classifier's order is assumed "
                 f"to be the data's: {shown_classes(classes)}")
        return
    if names == classes or (not kept and sorted(names) != sorted(classes)):
        return
    if sorted(names) == sorted(classes):
        detail = f"the same {len(names)} names in another order"
    else:
        parts = [(label, [n for n in first if n not in second]) for label, first, second in
                 (("only in the checkpoint", names, classes), ("only in the data", classes, names))]
        detail = "; ".join(f"{label}: {shown_classes(only, 5)}" for label, only in parts if only)
    allowed = (f"data.classes in the checkpoint's order, or {field_name}.remap_classes: true to reorder its classifier "
               "by name") if set(classes) <= set(names) else "weights trained on these classes, in this order"
    raise ConfigError(f"{field_name}.weights: {config.weights!r} was trained on the classes {shown_classes(names)} in this "
                      f"order, but the data's are {shown_classes(classes)} ({detail}): its outputs would be scored "
                      f"against the wrong labels; allowed: {allowed}")


def check_pretrained(name: str, field_name: str) -> None:
    """timm's pretrained weights for ``name`` must be in a local cache (the Hugging Face hub
    cache, or torch.hub's ``checkpoints`` for weights timm fetches by URL), or their hub must
    serve them, asked once per file with a short timeout and never with ``HF_HUB_OFFLINE=1``
    (:func:`~.models.reach`): otherwise ``run`` would retry the download in every cohort and fail
    them all."""
    found = find_pretrained(name)
    if found.cached:
        return
    instead = (f"download them where there is internet and copy the cache here, or give {field_name}.weights a local "
               "weights file")
    if found.source is None:
        raise ConfigError(f"{field_name}.init: timm has no pretrained weights for {name!r} ({found.what}); allowed: a "
                          f"model with published weights (timm.list_models(pretrained=True)), init: random, or a local "
                          f"weights file in {field_name}.weights")
    if found.source == "file":
        raise ConfigError(f"{field_name}.init: timm's pretrained weights for {name!r} are the file {found.what!r}, which "
                          f"does not exist; give {field_name}.weights a local weights file")
    from urllib.parse import urlparse

    host = urlparse(found.remote[0]).netloc
    where = f"{found.what} on the Hugging Face hub" if found.source == "hf-hub" else f"{found.what} from {host}"
    if found.source == "hf-hub" and hub_offline():
        why = "HF_HUB_OFFLINE=1 forbids downloading them"
    else:
        why = reach(found.remote)
        if why is None:
            return  # the hub serves them: ``run`` downloads them
    raise ConfigError(f"{field_name}.init: timm's pretrained weights for {name!r} ({where}) are not in the local cache "
                      f"({found.cache}) and {why}; {instead}")

"""Hugging Face sequence classifiers and tokenizers for the text task, created without running code
from files: weights load as safetensors or ``torch.load(weights_only=True)``, and ``trust_remote_code``
is off unless a model config turns it on.

A model named ``init: pretrained`` is looked for in the local Hugging Face cache first and asked of
the hub only when that fails (a machine offline gets one line naming the field). A kdtemp checkpoint
of a text model records its Transformers config (``hf_config``), its class names and its tokenizer,
so it is rebuilt exactly and refused when its labels differ from the data's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...config import ConfigError
from ..base import ModelAdapter
from ..hf import from_checkpoint, from_hub, from_settings, transformers_module
from .config import TextModelConfig
from .data import TextSplit


def _labels(classes: list[str]) -> dict[str, Any]:
    return {"num_labels": len(classes), "id2label": dict(enumerate(classes)),
            "label2id": {name: index for index, name in enumerate(classes)}}


def load_text_model(config: TextModelConfig, classes: list[str], role: str, where: str) -> nn.Module:
    """The model ``config`` describes for data of ``classes``; a teacher never gets a new head."""
    transformers = transformers_module()
    auto = transformers.AutoModelForSequenceClassification
    remote = {"trust_remote_code": True} if config.trust_remote_code else {}
    if config.init == "random":
        return from_settings(transformers, auto, config.config, where, _labels(classes), **remote)
    if config.init == "checkpoint" and Path(config.weights).expanduser().is_file():
        def same_labels(meta: dict[str, Any]) -> None:
            recorded = meta.get("classes")
            if recorded is not None and list(recorded) != list(classes):
                raise ConfigError(f"{where}.weights: its labels ({', '.join(map(str, recorded))}) differ from the "
                                  f"data's ({', '.join(classes)})")

        return from_checkpoint(transformers, auto, config.weights, where, "text model", _labels(classes), same_labels,
                               **remote)
    name = str(Path(config.weights).expanduser()) if config.init == "checkpoint" else config.name
    field = f"{where}.weights" if config.init == "checkpoint" else f"{where}.name"
    module, info = from_hub(auto.from_pretrained, name, field, output_loading_info=True,
                             ignore_mismatched_sizes=role == "student" and config.init == "pretrained",
                             **_labels(classes), **remote)
    fresh = [k for k in info.get("missing_keys", [])] + [k[0] if isinstance(k, tuple) else k
                                                         for k in info.get("mismatched_keys", [])]
    if fresh and (role == "teacher" or config.init == "checkpoint"):
        raise ConfigError(f"{field}: {name!r} has no trained classification head for these {len(classes)} labels "
                          f"(new: {', '.join(map(str, fresh[:3]))}); a {role} must be trained on the task first "
                          "(prepare it with `prepare:`)")
    return module


class TextModel(ModelAdapter):
    """A sequence classifier as the engine uses it: called on a batch, logits ``[B, C]``."""

    def __init__(self, module: nn.Module, classes: list[str], tokenizer: str) -> None:
        self.module, self.classes, self.tokenizer = module, list(classes), tokenizer

    def __call__(self, batch) -> Tensor:
        return self.module(**batch.inputs).logits

    def predict(self, split: TextSplit, batch_size: int, runtime: Any) -> Tensor:
        """Float32 logits in eval mode for every input of ``split``, in order."""
        was_training = self.module.training
        self.module.eval()
        out = []
        with torch.no_grad(), runtime.autocast():
            for start in range(0, len(split), batch_size):
                rows = torch.arange(start, min(start + batch_size, len(split)), device=split.labels.device)
                out.append(self.module(**split.inputs(rows)).logits.float())
        self.module.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, len(self.classes))

    def metadata(self) -> dict[str, Any]:
        """The class names, the Transformers config and the tokenizer, saved with the weights."""
        return {"classes": list(self.classes), "hf_config": json.loads(self.module.config.to_json_string()),
                "tokenizer": self.tokenizer}

"""Models by name: any timm model, plus the classic CIFAR ResNets, with the study's initialisations.

Initialisation (``ModelConfig.init``):

* ``random``: fresh weights;
* ``pretrained``: timm's pretrained weights (downloaded by timm), or a local weights file given in
  ``weights`` (a timm/torchvision state dict, possibly wrapped as ``{"state_dict": ...}`` with a
  ``module.`` prefix); the classifier is replaced when its size differs;
* ``checkpoint``: a kdtemp checkpoint (a trained teacher or student) from ``weights``; its
  classifier is kept when the class count matches, else replaced.

Together these express the study's student initialisations (random, target-trained, IN1K
pretrained, pretrained then fine-tuned) and teacher originations (scratch, fine-tuned).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ..config import ConfigError, require
from .cifar_resnet import CIFAR_MODELS, CifarResNet

InitMode = Literal["random", "pretrained", "checkpoint"]


@dataclass
class ModelConfig:
    """A model by name (timm or a CIFAR ResNet) and how it is initialised."""

    name: str = "resnet20"
    init: InitMode = "random"
    weights: str | None = None
    drop_path_rate: float = 0.0

    def validate(self, path: str = "model") -> None:
        require(model_exists(self.name), f"{path}.name",
                f"unknown model {self.name!r}; allowed: a timm model name or one of {', '.join(CIFAR_MODELS)}")
        if self.init == "checkpoint":
            require(bool(self.weights), f"{path}.weights", "init 'checkpoint' needs a weights path")
        if self.weights:
            require(Path(self.weights).expanduser().is_file(), f"{path}.weights", f"{self.weights!r} does not exist")
        if self.init == "pretrained" and not self.weights and self.name in CIFAR_MODELS:
            raise ConfigError(f"{path}.init: {self.name!r} has no published pretrained weights; give {path}.weights")
        require(0.0 <= self.drop_path_rate < 1.0, f"{path}.drop_path_rate", f"must be in [0, 1); got {self.drop_path_rate}")


def model_exists(name: str) -> bool:
    """Whether ``name`` is a CIFAR ResNet or a model timm can create."""
    if name in CIFAR_MODELS:
        return True
    import timm

    return timm.is_model(name)


def _strip(state: dict) -> dict:
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def classifier_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the model's final classifier."""
    if isinstance(model, CifarResNet):
        prefix = "linear"
    else:
        prefix = getattr(model, "pretrained_cfg", {}).get("classifier") or getattr(model, "default_cfg", {}).get("classifier", "fc")
    return [k for k in model.state_dict() if k == prefix or k.startswith(prefix + ".")]


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> list[str]:
    """Load a state dict from ``path`` into ``model``; return the keys of a replaced classifier.

    With ``strict`` every key must match, except that a classifier whose shape differs from the
    model's (another class count) is left at its fresh initialisation.
    """
    state = _strip(torch.load(Path(path).expanduser(), map_location="cpu", weights_only=False))
    if "kdtemp" in state and "model" in state:
        state = state["model"]
    own = model.state_dict()
    replaced = [k for k in classifier_keys(model) if k in state and state[k].shape != own[k].shape]
    for key in replaced:
        state.pop(key)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in replaced]
    if strict and (missing or unexpected):
        raise ValueError(f"weights {str(path)!r} do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return replaced


def create_model(config: ModelConfig, num_classes: int) -> nn.Module:
    """Create and initialise the model described by ``config`` with ``num_classes`` outputs."""
    if config.name in CIFAR_MODELS:
        model = CIFAR_MODELS[config.name](num_classes=num_classes)
    else:
        import timm

        kwargs = {"num_classes": num_classes}
        if config.drop_path_rate:
            kwargs["drop_path_rate"] = config.drop_path_rate
        use_hub = config.init == "pretrained" and not config.weights
        model = timm.create_model(config.name, pretrained=use_hub, **kwargs)
    if config.weights and config.init in ("pretrained", "checkpoint"):
        load_weights(model, config.weights)
    return model


__all__ = ["CIFAR_MODELS", "CifarResNet", "ModelConfig", "classifier_keys", "create_model", "load_weights", "model_exists"]

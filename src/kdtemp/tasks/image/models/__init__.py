"""Models by name: any timm model, plus the classic CIFAR ResNets, with the study's initialisations.

Initialisation (``ModelConfig.init``):

* ``random``: fresh weights;
* ``pretrained``: timm's pretrained weights (downloaded by timm), or a local weights file given in
  ``weights`` (a timm/torchvision state dict, possibly wrapped as ``{"state_dict": ...}`` with a
  ``module.`` prefix). This is the one mode that may **replace the classifier** (fine-tuning
  general weights on a target): a classifier of another class count is left at a fresh
  initialisation. A teacher never gets a new classifier (it would be a random-head teacher);
* ``checkpoint``: a trained model for *this* data (a kdtemp ``teacher.pt`` or run checkpoint,
  or any state dict) from ``weights``; every tensor must fit, the classifier included, so a
  checkpoint of another class count is an error, never a silently replaced head.

Weights files are data, not code: they are read with ``torch.load(..., weights_only=True)``.

Input normalisation (``mean``/``std``) is a property of the weights: each model sees its input
normalised the way its weights expect. Unless the config gives ``mean`` and ``std``, it is the
normalisation a kdtemp checkpoint recorded, else timm's ``pretrained_cfg`` (ViT-S augreg:
0.5/0.5; MobileViTv2: 0/1), else ImageNet's mean/std for the CIFAR ResNets (what the widely
used CIFAR-10 checkpoints expect; the classic CIFAR KD recipe's CIFAR statistics can be given
explicitly).

Together these express the study's student initialisations (random, target-trained, IN1K
pretrained, pretrained then fine-tuned) and teacher originations (scratch, fine-tuned).
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from kdtemp.config import ConfigError, require
from kdtemp.files import IntegrityError, load_verified
from ..normalization import IMAGENET_NORMALIZATION, Normalization
from .cifar_resnet import CIFAR_MODELS as CIFAR_RESNETS, CifarResNet
from .cifar_zoo import KD_ZOO_MODELS

# Models by name beside timm's: the CIFAR ResNets and the classic KD zoo (WRN, VGG, MobileNets, ShuffleNets).
CIFAR_MODELS = {**CIFAR_RESNETS, **KD_ZOO_MODELS}

InitMode = Literal["random", "pretrained", "checkpoint"]



class WeightsError(ValueError):
    """A weights file cannot be read safely or does not fit its model."""


@dataclass
class ModelConfig:
    """A model by name (timm, a CIFAR model, or a plug-in ``package.module:make``), how it is initialised, and its input
    normalisation (``mean``/``std``: ``null`` takes the weights' own, see the module docstring)."""

    name: str = "resnet20"
    init: InitMode = "random"
    weights: str | None = None
    drop_path_rate: float = 0.0
    mean: list[float] | None = None
    std: list[float] | None = None
    prepared: str | None = None  # set by a study: the id of the preparation that writes ``weights``

    def validate(self, path: str = "model") -> None:
        if ":" in self.name:
            from kdtemp.plugins import load

            load(self.name, f"{path}.name", "model")  # a plug-in that does not import stops here, named
        require(model_exists(self.name), f"{path}.name",
                f"unknown model {self.name!r}; allowed: a timm model name, one of {', '.join(CIFAR_MODELS)}, or a "
                "plug-in package.module:make")
        if self.init == "checkpoint":
            require(bool(self.weights), f"{path}.weights", "init 'checkpoint' needs a weights path")
        if self.init == "random":
            require(not self.weights, f"{path}.weights",
                    f"{self.weights!r} is given but init is 'random'; set init: checkpoint (or pretrained) to use it")
        if self.weights and not self.prepared:  # a prepared model's file is written by the study's first stage
            require(Path(self.weights).expanduser().is_file(), f"{path}.weights", f"{self.weights!r} does not exist")
        if self.init == "pretrained" and not self.weights and (self.name in CIFAR_MODELS or ":" in self.name):
            raise ConfigError(f"{path}.init: {self.name!r} has no published pretrained weights; give {path}.weights")
        require(0.0 <= self.drop_path_rate < 1.0, f"{path}.drop_path_rate", f"must be in [0, 1); got {self.drop_path_rate}")
        require(not (self.drop_path_rate and self.name in CIFAR_MODELS), f"{path}.drop_path_rate",
                f"{self.name!r} has no stochastic depth; got {self.drop_path_rate}")
        require((self.mean is None) == (self.std is None), f"{path}.mean",
                "give both mean and std, or neither (then the weights' own normalisation is used)")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None:
                require(len(values) == 3, f"{path}.{name}", f"needs 3 values (R, G, B); got {values}")
                low = 0.0 if name == "mean" else 1e-6
                require(all(low <= v <= 1.0 for v in values), f"{path}.{name}",
                        f"values are on the 0..1 pixel scale ({'0' if name == 'mean' else '> 0'} to 1); got {values}")

    def unused_fields(self) -> set[str]:
        """Fields that do not identify the model (unused ones are rejected): an unset preparation
        id; for a prepared model, where its file lies (its preparation id says what it is)."""
        return {"prepared"} if self.prepared is None else {"weights"}

    @property
    def normalization(self) -> Normalization | None:
        """The explicitly configured normalisation, if any."""
        if self.mean is None or self.std is None:
            return None
        return tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)  # type: ignore[return-value]


def model_exists(name: str) -> bool:
    """Whether ``name`` is a CIFAR model, a model timm can create, or a plug-in
    ``package.module:make`` that imports (a failing import is a ``ConfigError`` of its own)."""
    from kdtemp.plugins import is_plugin, load

    if is_plugin(name):
        return callable(load(name, "model.name", "model"))
    if name in CIFAR_MODELS:
        return True
    import timm

    return timm.is_model(name)


def hub_pretrained_cfg(name: str) -> Any:
    """timm's pretrained config of ``name`` (no download), or None for the CIFAR models and plug-ins."""
    if name in CIFAR_MODELS or ":" in name:
        return None
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(name)


def _strip(state: dict) -> dict:
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state dict, kdtemp metadata)`` of a weights file, read without running code in it.

    Accepts a plain state dict, ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers (with
    ``module.`` prefixes) and kdtemp's own checkpoints. Anything else, including a file that
    holds Python objects other than tensors and plain data, is a :class:`WeightsError`.
    """
    path = Path(path).expanduser()
    try:
        loaded = load_verified(path)
    except pickle.UnpicklingError as error:
        raise WeightsError(f"{str(path)!r} holds Python objects, not just tensors ({_unsupported_global(str(error))});"
                           " kdtemp loads weights with weights_only=True and never runs code from a file: re-save "
                           "the model's state_dict()") from None
    except IntegrityError as error:
        detail = str(error).split(" is damaged or not a PyTorch file ", 1)[-1].split(" is damaged: ", 1)[-1]
        kind = "is damaged" if "checksum" in str(error) else "is not a PyTorch weights file (or is damaged)"
        raise WeightsError(f"{str(path)!r} {kind}: {detail.strip('()')}") from None
    if not isinstance(loaded, dict):
        raise WeightsError(f"{str(path)!r} holds a {type(loaded).__name__}, not a state dict")
    meta = loaded.get("kdtemp") if isinstance(loaded.get("kdtemp"), dict) else {}
    state = _strip(loaded)
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{str(path)!r} holds no tensors (not a state dict of model weights)")
    return tensors, meta


def _unsupported_global(message: str) -> str:
    for line in message.splitlines():
        if "global" in line.lower():
            return line.strip().rstrip(".")[:160]
    return "a pickled Python object"





def classifier_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the model's final classifier."""
    if isinstance(model, CifarResNet):
        prefix = "linear"
    elif getattr(model, "kdtemp_classifier", None):  # the KD zoo's models and plug-ins name their own
        prefix = model.kdtemp_classifier
    else:
        prefix = getattr(model, "pretrained_cfg", {}).get("classifier") or getattr(model, "default_cfg", {}).get("classifier", "fc")
    return [k for k in model.state_dict() if k == prefix or k.startswith(prefix + ".")]


def fit_state(model: nn.Module, state: dict[str, torch.Tensor], source: str, allow_new_head: bool) -> list[str]:
    """Check that ``state`` fits ``model``; return the classifier keys that will be left fresh.

    Every key and shape must match, except that with ``allow_new_head`` a classifier of another
    class count is replaced (fine-tuning). Raises :class:`WeightsError` naming what does not fit.
    """
    own = model.state_dict()
    head = classifier_keys(model)
    replaced = [k for k in head if k in state and state[k].shape != own[k].shape]
    if replaced and not allow_new_head:
        key = next(k for k in replaced if k.endswith("weight")) if any(k.endswith("weight") for k in replaced) else replaced[0]
        raise WeightsError(f"{source}: its classifier has {state[key].shape[0]} classes but the data has "
                           f"{own[key].shape[0]}; allowed: weights trained on these {own[key].shape[0]} classes")
    # BatchNorm's step counters (absent from older checkpoints) do not change the model's outputs.
    missing = [k for k in own if k not in state and k not in replaced and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and k not in replaced and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}")
        if wrong:
            parts.append(f"shape of {wrong[0]} is {tuple(state[wrong[0]].shape)}, the model needs {tuple(own[wrong[0]].shape)}")
        raise WeightsError(f"{source} does not fit the model ({'; '.join(parts)})")
    return replaced


def load_weights(model: nn.Module, path: str | Path, strict: bool = True, allow_new_head: bool = True) -> list[str]:
    """Load a weights file into ``model``; return the keys of a replaced classifier.

    With ``strict`` every key must match (see :func:`fit_state`); ``allow_new_head`` lets a
    classifier of another class count stay at its fresh initialisation.
    """
    return _load_into(model, path, allow_new_head, strict)[0]


def _load_into(model: nn.Module, path: str | Path, allow_new_head: bool, strict: bool = True
               ) -> tuple[list[str], dict[str, Any]]:
    """Read ``path`` (safely), check it fits ``model`` and load it; ``(replaced classifier keys,
    kdtemp metadata)``."""
    state, meta = read_weights(path)
    if strict:
        replaced = fit_state(model, state, repr(str(path)), allow_new_head)
    else:
        own = model.state_dict()
        replaced = [k for k in classifier_keys(model) if k in state and state[k].shape != own[k].shape]
    model.load_state_dict({k: v for k, v in state.items() if k not in replaced}, strict=False)
    return replaced, meta


def resolve_normalization(config: ModelConfig, model: nn.Module | None, meta: dict[str, Any] | None) -> Normalization:
    """The input normalisation a model's weights expect (see the module docstring)."""
    if config.normalization is not None:
        return config.normalization
    recorded = (meta or {}).get("normalization")
    if recorded:
        return tuple(recorded["mean"]), tuple(recorded["std"])  # type: ignore[return-value]
    cfg = getattr(model, "pretrained_cfg", None) if model is not None else hub_pretrained_cfg(config.name)
    if cfg is not None:
        get = cfg.get if isinstance(cfg, dict) else lambda key: getattr(cfg, key, None)
        if get("mean") is not None and get("std") is not None:
            return tuple(float(v) for v in get("mean")), tuple(float(v) for v in get("std"))  # type: ignore[return-value]
    return IMAGENET_NORMALIZATION


@dataclass
class LoadedModel:
    """A created and initialised model with the input normalisation its weights expect
    (``normalization``) and what a kdtemp checkpoint recorded of it (``recorded``, else ``None``)."""

    module: nn.Module
    normalization: Normalization
    recorded: dict | None = None


def create_model(config: ModelConfig, num_classes: int, allow_new_head: bool | None = None) -> nn.Module:
    """The model described by ``config`` with ``num_classes`` outputs, created and initialised
    (:func:`load_model` without its normalisation)."""
    return load_model(config, num_classes, allow_new_head).module


def load_model(config: ModelConfig, num_classes: int, allow_new_head: bool | None = None) -> LoadedModel:
    """Create and initialise the model described by ``config`` with ``num_classes`` outputs, and
    resolve the input normalisation its weights expect.

    ``allow_new_head`` (default: only for ``init: pretrained``) lets pretrained weights of another
    class count get a fresh classifier; pass ``False`` for teachers.
    """
    allow = config.init == "pretrained" if allow_new_head is None else allow_new_head
    meta: dict[str, Any] = {}
    from kdtemp.plugins import is_plugin, load

    if is_plugin(config.name):
        model = load(config.name, "model.name", "model")(num_classes=num_classes)
        if not isinstance(model, nn.Module):
            raise WeightsError(f"the plug-in model {config.name!r} returned a {type(model).__name__}, not a torch.nn.Module")
    elif config.name in CIFAR_MODELS:
        model = CIFAR_MODELS[config.name](num_classes=num_classes)
    else:
        import timm

        kwargs = {"num_classes": num_classes}
        if config.drop_path_rate:
            kwargs["drop_path_rate"] = config.drop_path_rate
        use_hub = config.init == "pretrained" and not config.weights
        if use_hub and not allow:
            hub_classes = getattr(hub_pretrained_cfg(config.name), "num_classes", None)
            if hub_classes is not None and hub_classes != num_classes:
                raise WeightsError(f"timm's pretrained {config.name!r} has {hub_classes} classes, the data has "
                                   f"{num_classes}; a teacher must fit the data (fine-tune it first)")
        try:
            model = timm.create_model(config.name, pretrained=use_hub, **kwargs)
        except (OSError, RuntimeError) as error:
            if not use_hub:
                raise
            raise WeightsError(f"could not download timm's pretrained weights for {config.name!r} "
                               f"({str(error).strip().splitlines()[0][:200]}); download them where there is "
                               "internet, or give a local weights file") from None
    if config.weights and config.init in ("pretrained", "checkpoint"):
        _, meta = _load_into(model, config.weights, allow)
    return LoadedModel(model, resolve_normalization(config, model, meta), meta.get("normalization"))


@functools.lru_cache(maxsize=256)
def forward_flops(name: str, num_classes: int, resolution: int) -> int | None:
    """FLOPs (2 per multiply-add) of one forward pass of model ``name`` on one image at
    ``resolution``, counted by ``torch.utils.flop_counter`` on the meta device (no weights are
    made or read); ``None`` for a model that cannot be traced there (some plug-ins)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.device("meta"):
            model = create_model(ModelConfig(name), num_classes).eval()
            images = torch.empty(2, 3, resolution, resolution)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(images)
    except Exception:  # a plan without this figure is still a plan
        return None
    return counter.get_total_flops() // 2


__all__ = ["CIFAR_MODELS", "CifarResNet", "IMAGENET_NORMALIZATION", "LoadedModel", "ModelConfig", "Normalization",
           "WeightsError", "classifier_keys", "create_model", "fit_state", "forward_flops", "load_model", "load_weights", "model_exists",
           "read_weights", "resolve_normalization"]

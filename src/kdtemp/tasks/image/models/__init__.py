"""Models by name: any timm model, plus the classic CIFAR ResNets, with the study's initialisations.

Initialisation (``ModelConfig.init``):

* ``random``: fresh weights;
* ``pretrained``: timm's pretrained weights (downloaded by timm; preflight first looks for them in
  timm's local caches, :func:`find_pretrained`, and asks the hub at most once, :func:`reach`), or a
  local weights file given in ``weights`` (a timm/torchvision state dict, possibly wrapped as
  ``{"state_dict": ...}`` with a ``module.`` prefix). This is the one mode that may **replace the classifier** (fine-tuning
  general weights on a target): a classifier of another class count is left at a fresh
  initialisation. A teacher never gets a new classifier (it would be a random-head teacher);
* ``checkpoint``: a trained model for *this* data (a kdtemp ``teacher.pt`` or run checkpoint,
  or any state dict) from ``weights``; every tensor must fit, the classifier included, so a
  checkpoint of another class count is an error, never a silently replaced head.

Weights files are data, not code: they are read with ``torch.load(..., weights_only=True)``.
kdtemp's own checkpoints record the class names of their outputs in label order (``classes``);
``remap_classes: true`` reorders such a file's classifier to the data's classes by name
(:func:`remap_classifier`), and preflight refuses a file whose names differ from the data's.

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
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from kdtemp.config import ConfigError, require
from kdtemp.weights import WeightsError, read_weights  # noqa: F401  (read_weights: re-exported)
from ...memory import largest_output, saved_for_backward  # noqa: F401  (saved_for_backward: re-exported)
from ..normalization import IMAGENET_NORMALIZATION, Normalization
from .cifar_resnet import CIFAR_MODELS as CIFAR_RESNETS, CifarResNet
from .cifar_zoo import KD_ZOO_MODELS

# Models by name beside timm's: the CIFAR ResNets and the classic KD zoo (WRN, VGG, MobileNets, ShuffleNets).
CIFAR_MODELS = {**CIFAR_RESNETS, **KD_ZOO_MODELS}

InitMode = Literal["random", "pretrained", "checkpoint"]



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
    remap_classes: bool = False  # reorder the weights' classifier to the data's classes, by the names they record

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
        require(not self.remap_classes or bool(self.weights or self.prepared), f"{path}.remap_classes",
                "reorders the classifier of a weights file by its recorded class names; give a weights file "
                "(init: checkpoint or pretrained)")
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
        id; for a prepared model, where its file lies (its preparation id says what it is); a remap
        that is not asked for (so that runs keep the ids they had before the field)."""
        unused = {"prepared"} if self.prepared is None else {"weights"}
        return unused if self.remap_classes else unused | {"remap_classes"}

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


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """Whether Hugging Face's offline mode is on: ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``)
    now, or when ``huggingface_hub`` was imported (what timm's downloads obey)."""
    try:
        from huggingface_hub import constants

        imported = bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        imported = False
    return imported or _is_true(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"))


def _hf_cache_dirs() -> list[str]:
    """The Hugging Face hub cache by the environment now (``HF_HUB_CACHE``, else ``HF_HOME/hub``,
    else ``~/.cache/huggingface/hub``), then the one ``huggingface_hub`` read at its import."""
    env = os.environ
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                                              "huggingface")
    now = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    dirs = [os.path.expandvars(os.path.expanduser(now))]
    try:
        from huggingface_hub import constants

        dirs.append(constants.HF_HUB_CACHE)
    except ImportError:
        pass
    return list(dict.fromkeys(dirs))


def _hf_endpoint() -> str:
    try:
        from huggingface_hub import constants

        imported = constants.ENDPOINT
    except ImportError:
        imported = "https://huggingface.co"
    return (os.environ.get("HF_ENDPOINT") or imported or "https://huggingface.co").rstrip("/")


@dataclass
class PretrainedWeights:
    """Where timm gets the pretrained weights of a model name (:func:`find_pretrained`).

    ``source``: ``hf-hub``, ``url`` (through torch.hub's cache), ``file``, or ``None`` when timm
    has none; ``what``: the repository or file, for messages; ``cached``: the local copy timm
    would load, if there is one; ``cache``: where it looks; ``remote``: the addresses it would
    download from (in the order it tries them)."""

    name: str
    source: str | None
    what: str
    cached: str | None = None
    cache: str = ""
    remote: list[str] = field(default_factory=list)


def find_pretrained(name: str) -> PretrainedWeights:
    """Where timm's ``create_model(name, pretrained=True)`` would take its weights from, and
    whether a copy is in the local cache, without any download (the same resolution as timm's
    ``_resolve_pretrained_source``: the Hugging Face hub cache for ``hf_hub_id`` weights, trying
    ``model.safetensors`` then ``pytorch_model.bin`` unless the config names a file;
    ``torch.hub.get_dir()/checkpoints`` for weights timm fetches by URL)."""
    cfg = hub_pretrained_cfg(name)
    get = (lambda key: getattr(cfg, key, None)) if cfg is not None else (lambda key: None)
    url, file, hub_id = get("url") or None, get("file") or None, get("hf_hub_id") or None
    torch_cache = os.path.join(torch.hub.get_dir(), "checkpoints")
    url_copy = os.path.join(torch_cache, os.path.basename(urllib.parse.urlparse(url).path)) if url else None
    old_cache = _is_true(os.environ.get("TIMM_USE_OLD_CACHE")) and url_copy is not None and os.path.isfile(url_copy)
    if get("state_dict") is not None:
        return PretrainedWeights(name, "file", "a state dict in timm's config", cached="config")
    if get("source") == "local-dir" or (get("source") != "hf-hub" and file):
        return PretrainedWeights(name, "file", str(file), cached=str(file) if file and os.path.exists(file) else None,
                                 cache=str(file))
    if hub_id and (get("source") == "hf-hub" or not old_cache):
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = hub_id.partition("@")
        filenames = [get("hf_hub_filename")] if get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
        caches = _hf_cache_dirs()
        for cache in caches:
            for filename in filenames:
                found = try_to_load_from_cache(repo, filename, cache_dir=cache, revision=revision or None)
                if isinstance(found, str) and os.path.isfile(found):
                    return PretrainedWeights(name, "hf-hub", hub_id, cached=found, cache=cache)
        return PretrainedWeights(name, "hf-hub", hub_id, cache=caches[0],
                                 remote=[f"{_hf_endpoint()}/{repo}/resolve/{revision or 'main'}/{f}" for f in filenames])
    if url:
        return PretrainedWeights(name, "url", os.path.basename(url_copy), cache=torch_cache,
                                 cached=url_copy if os.path.isfile(url_copy) else None, remote=[url])
    return PretrainedWeights(name, None, f"tag {get('tag')!r}" if get("tag") else "no pretrained config")


HUB_TIMEOUT = 5.0  # seconds for the one request that tells whether a hub serves a file
_REACHED: dict[str, tuple[bool, str | None]] = {}  # by URL, and a host that did not answer by host


def _head(url: str, timeout: float) -> tuple[bool, str | None]:
    """One ``HEAD`` request, redirects not followed, never retried: ``(the host answered, why
    the file cannot be had or None)``."""
    import urllib.error
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None  # a redirect (to the hub's file storage) is the hub serving the file

    try:
        with urllib.request.build_opener(_NoRedirect).open(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True, None
    except urllib.error.HTTPError as error:
        return True, None if 300 <= error.code < 400 else f"answered HTTP {error.code} {error.reason}".strip()
    except (OSError, ValueError) as error:
        detail = getattr(error, "reason", None) or error
        if isinstance(detail, TimeoutError):
            return False, f"no answer within {timeout:g} s"
        return False, str(detail).strip().splitlines()[0][:120] if str(detail).strip() else type(detail).__name__


def reach(urls: str | list[str], timeout: float = HUB_TIMEOUT) -> str | None:
    """``None`` when one of ``urls`` (tried in order) is served, i.e. answers a ``HEAD`` request
    with 2xx or 3xx within ``timeout`` seconds; else why not, as a clause (``<host> could not be
    reached (...)``, ``<host> answered HTTP 404 ... for <file>``). Each URL is asked once per
    process, a host that did not answer is not asked again, and nothing is retried."""
    why = None
    for url in [urls] if isinstance(urls, str) else urls:
        parts = urllib.parse.urlparse(url)
        host = parts.netloc or url
        if host in _REACHED:
            return f"{host} could not be reached ({_REACHED[host][1]})"
        answered, reason = _REACHED.get(url) or _head(url, timeout)
        _REACHED[url] = (answered, reason)
        if not answered:
            _REACHED[host] = (answered, reason)
            return f"{host} could not be reached ({reason})"
        if reason is None:
            return None
        why = f"{host} {reason} for {parts.path.rsplit('/', 1)[-1]}"
    return why


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


def recorded_classes(meta: dict[str, Any] | None) -> list[str] | None:
    """The class names, in label order, that a kdtemp checkpoint recorded (``classes``; a
    ``teacher.pt`` of an earlier version recorded only its dataset, whose ``classes`` list, when
    given, is that order), or ``None`` (a foreign checkpoint, or no list recorded)."""
    meta = meta or {}
    names = meta.get("classes")
    if names is None and isinstance(meta.get("dataset"), dict):
        names = meta["dataset"].get("classes")
    return [str(name) for name in names] if isinstance(names, (list, tuple)) else None


def shown_classes(names: list[str], limit: int = 10) -> str:
    """``['a', 'b', ...]`` for messages: the first ``limit`` names, and how many there are."""
    head = ", ".join(repr(name) for name in names[:limit])
    return f"[{head}]" if len(names) <= limit else f"[{head}, ... ({len(names)} in all)]"


def remap_classifier(model: nn.Module, state: dict[str, torch.Tensor], names: list[str], classes: list[str],
                     source: str) -> dict[str, torch.Tensor]:
    """``state`` with its classifier's rows reordered from the checkpoint's class ``names`` to the
    data's ``classes`` (which must all be among them: a subset keeps only their rows)."""
    missing = [name for name in classes if name not in names]
    if missing:
        raise WeightsError(f"{source} was trained on the classes {shown_classes(names)}; the data's {missing[0]!r} is "
                           "not among them, so its classifier cannot be remapped to the data's classes")
    order = torch.tensor([names.index(name) for name in classes])
    state = dict(state)
    for key in classifier_keys(model):
        if key in state and state[key].ndim >= 1 and state[key].shape[0] == len(names):
            state[key] = state[key].index_select(0, order)
    return state


def _load_into(model: nn.Module, path: str | Path, allow_new_head: bool, strict: bool = True,
               remap_to: list[str] | None = None) -> tuple[list[str], dict[str, Any]]:
    """Read ``path`` (safely), reorder its classifier to the classes ``remap_to`` (by the names it
    records) when given, check it fits ``model`` and load it; ``(replaced classifier keys, kdtemp
    metadata)``."""
    state, meta = read_weights(path)
    if remap_to is not None:
        names = recorded_classes(meta)
        if names is None:
            raise WeightsError(f"{str(path)!r} records no class names, so there is nothing to remap by; remove "
                               "remap_classes and give data.classes in the order it was trained on")
        state = remap_classifier(model, state, names, list(remap_to), repr(str(path)))
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
    classes: list[str] | None = None  # the class names (label order) its weights file recorded, if any
    remapped: bool = False  # its classifier was reordered to the data's classes (``remap_classes``)


def create_model(config: ModelConfig, num_classes: int, allow_new_head: bool | None = None,
                 classes: list[str] | None = None) -> nn.Module:
    """The model described by ``config`` with ``num_classes`` outputs, created and initialised
    (:func:`load_model` without its normalisation)."""
    return load_model(config, num_classes, allow_new_head, classes).module


def load_model(config: ModelConfig, num_classes: int, allow_new_head: bool | None = None,
               classes: list[str] | None = None) -> LoadedModel:
    """Create and initialise the model described by ``config`` with ``num_classes`` outputs, and
    resolve the input normalisation its weights expect.

    ``allow_new_head`` (default: only for ``init: pretrained``) lets pretrained weights of another
    class count get a fresh classifier; pass ``False`` for teachers. ``classes``: the data's class
    names in label order, which ``remap_classes`` reorders the weights' classifier to.
    """
    if config.remap_classes and classes is None:
        raise ValueError("remap_classes needs the data's class names (pass classes=)")
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
    remap = bool(config.remap_classes and config.weights and config.init in ("pretrained", "checkpoint"))
    if config.weights and config.init in ("pretrained", "checkpoint"):
        _, meta = _load_into(model, config.weights, allow, remap_to=classes if remap else None)
    return LoadedModel(model, resolve_normalization(config, model, meta), meta.get("normalization"),
                       classes=recorded_classes(meta), remapped=remap)


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


@dataclass(frozen=True)
class MemoryProfile:
    """What one model holds, measured on the meta device (no weights are made, nothing is computed):
    its parameters (count and bytes) and, per image at a resolution, the bytes its forward pass saves
    for the backward pass (``saved_fixed`` + ``saved_per_image`` x batch) and the largest output of any
    of its modules in an inference pass (``largest_output_per_image``)."""

    parameters: int
    parameter_bytes: int
    saved_fixed: int
    saved_per_image: int
    largest_output_per_image: int

    def saved(self, batch: int) -> int:
        return self.saved_fixed + self.saved_per_image * batch


@functools.lru_cache(maxsize=256)
def memory_profile(name: str, num_classes: int, resolution: int) -> MemoryProfile | None:
    """The :class:`MemoryProfile` of model ``name`` at ``resolution`` (float32, train mode), from two
    probes on the meta device (batches of 2 and 4 separate what grows with the batch); ``None`` for a
    model that cannot be built there (some plug-ins)."""
    try:
        with torch.device("meta"):
            model = create_model(ModelConfig(name), num_classes).train()
            two = saved_for_backward(model, torch.empty(2, 3, resolution, resolution))
            four = saved_for_backward(model, torch.empty(4, 3, resolution, resolution))
            largest = largest_output(model, torch.empty(1, 3, resolution, resolution))
    except Exception:  # a plan without this figure is still a plan
        return None
    per_image = max((four - two) // 2, 0)
    parameters = sum(p.numel() for p in model.parameters())
    return MemoryProfile(parameters, sum(p.numel() * p.element_size() for p in model.parameters()),
                         max(two - 2 * per_image, 0), per_image, largest)


__all__ = ["CIFAR_MODELS", "CifarResNet", "IMAGENET_NORMALIZATION", "LoadedModel", "ModelConfig", "Normalization",
           "WeightsError", "MemoryProfile", "classifier_keys", "create_model", "fit_state", "forward_flops", "memory_profile",
           "saved_for_backward", "load_model", "load_weights", "model_exists",
           "read_weights", "recorded_classes", "resolve_normalization", "find_pretrained", "hub_offline", "reach",
           "PretrainedWeights", "remap_classifier", "shown_classes"]

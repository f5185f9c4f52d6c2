"""Plug-ins: a user's own model, dataset or objective, named by import path in any config.

A name with a colon, ``package.module:callable``, is imported where it is used, in the driver and
in every spawned or Ray worker (the package must be importable there: installed, or on
``PYTHONPATH``). The callables' signatures:

* model: ``make(num_classes: int) -> torch.nn.Module`` (a ``kdtemp_classifier`` attribute naming
  its final layer's state-dict prefix lets ``init: pretrained`` replace the classifier; without
  it the classifier is searched under timm's conventions, then ``fc``);
* dataset: ``read(root: str | None, split: str, download: bool) -> kdtemp.tasks.image.data.RawSplit`` (uint8
  ``[N, H, W, 3]`` images or decodable items, int labels, class names), ``split`` is ``"train"``
  or ``"test"``;
* objective: ``loss(student, teacher, target, temperature, **params) -> scalar tensor``, with any
  hyper-parameters as keyword arguments with defaults; an optional ``official`` attribute (a
  :class:`kdtemp.objectives.Preset`) gives its authors' loss weighting.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import ConfigError


def is_plugin(name: str) -> bool:
    """Whether ``name`` is an import path ``package.module:callable``."""
    return isinstance(name, str) and ":" in name


def load(name: str, field: str, kind: str) -> Any:
    """The callable ``package.module:callable`` names; a ``ConfigError`` naming ``field`` when the
    import fails or the attribute is missing or not callable."""
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{field}: {name!r} is not an import path; a plug-in {kind} is written package.module:callable")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or anything the module raises while importing
        raise ConfigError(f"{field}: cannot import the plug-in {kind} {name!r} ({type(error).__name__}: "
                          f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}); is its package "
                          "installed or on PYTHONPATH?") from None
    target = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigError(f"{field}: module {module_name!r} has no {attribute!r} (the plug-in {kind} {name!r})")
    if not callable(target):
        raise ConfigError(f"{field}: {name!r} is not callable; a plug-in {kind} is a function or class")
    return target

"""Reading model weights from users' files as data, never code: ``torch.load(weights_only=True)`` through
:func:`kdtemp.files.load_verified`, one :class:`WeightsError` line for a file that holds Python objects
or is damaged. Every task reads weights files through :func:`read_weights`."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from .files import IntegrityError, load_verified


class WeightsError(ValueError):
    """A weights file cannot be read safely or does not fit its model."""


def strip_wrappers(state: dict) -> dict:
    """A state dict out of ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers, without ``module.`` prefixes."""
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
    state = strip_wrappers(loaded)
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{str(path)!r} holds no tensors (not a state dict of model weights)")
    return tensors, meta


def _unsupported_global(message: str) -> str:
    for line in message.splitlines():
        if "global" in line.lower():
            return line.strip().rstrip(".")[:160]
    return "a pickled Python object"

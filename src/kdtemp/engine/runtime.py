"""Where and how a cohort computes: its device, its precision and its memory format."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA where there is one, else the CPU; any other name as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_label(device: torch.device) -> str:
    """``cpu``, or ``cuda (<GPU name>)``: what a run records about where it ran."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


@dataclass(frozen=True)
class Runtime:
    """The device a cohort trains on, whether forward passes run under bf16 autocast (``auto``
    or ``bf16`` on CUDA; objectives upcast to float32 themselves), and whether image-like inputs
    and models use the channels-last memory format (on CUDA)."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False

    @classmethod
    def create(cls, device: str = "auto", precision: str = "auto") -> "Runtime":
        target = resolve_device(device)
        bf16 = precision == "bf16" or (precision == "auto" and target.type == "cuda")
        return cls(target, bf16, target.type == "cuda")

    def autocast(self) -> contextlib.AbstractContextManager:
        """A fresh autocast context (bf16) or a null one."""
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def label(self) -> str:
        return device_label(self.device)

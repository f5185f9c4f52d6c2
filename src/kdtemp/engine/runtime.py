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


PRECISIONS = ("auto", "fp32", "bf16", "fp64")
"""``auto``: bf16 autocast on CUDA, float32 elsewhere; ``fp64``: weights, inputs and logits in float64
(slow; for checks that must agree across CPUs, whose float32 kernels round differently)."""


@dataclass(frozen=True)
class Runtime:
    """The device a cohort trains on, whether forward passes run under bf16 autocast (``auto``
    or ``bf16`` on CUDA; objectives upcast to float32 themselves), the dtype of weights and
    inputs (float32, or float64 for ``fp64``), and whether image-like inputs and models use the
    channels-last memory format (on CUDA)."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False
    dtype: torch.dtype = torch.float32

    @classmethod
    def create(cls, device: str = "auto", precision: str = "auto") -> "Runtime":
        target = resolve_device(device)
        bf16 = precision == "bf16" or (precision == "auto" and target.type == "cuda")
        dtype = torch.float64 if precision == "fp64" else torch.float32
        return cls(target, bf16, target.type == "cuda", dtype)

    def autocast(self) -> contextlib.AbstractContextManager:
        """A fresh autocast context (bf16) or a null one."""
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def upcast(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` in at least the runtime's dtype (bf16 outputs to float32; float64 kept)."""
        return logits if logits.dtype == self.dtype else logits.to(torch.promote_types(logits.dtype, self.dtype))

    @property
    def label(self) -> str:
        return device_label(self.device)

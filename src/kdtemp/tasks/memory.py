"""What a model's forward pass holds, measured on whatever device its tensors are on (the meta device
for a plan: no weights made, nothing computed). Shared by the tasks' ``memory`` estimates."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def saved_for_backward(model: nn.Module, *args: Any, **kwargs: Any) -> int:
    """Bytes of every tensor ``model(*args, **kwargs)`` saves for its backward pass, each storage
    counted once, the parameters' own storages aside (they are counted as parameters)."""
    parameters = {p.untyped_storage()._cdata for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in parameters:
            saved[storage._cdata] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(*args, **kwargs)
    return sum(saved.values())


def largest_output(model: nn.Module, *args: Any, skip: tuple[nn.Module, ...] = (), **kwargs: Any) -> int:
    """Bytes of the largest tensor any leaf module (those in ``skip`` aside) returns in an inference
    pass ``model(*args, **kwargs)`` (in eval mode, without gradients; the model is left in eval mode)."""
    largest = [0]

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.numel() * output.element_size())

    handles = [m.register_forward_hook(record) for m in model.modules()
               if not list(m.children()) and not any(m is s for s in skip)]
    try:
        with torch.no_grad():
            model.eval()(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return largest[0]


def optimizer_states(optimizer: Any) -> int:
    """How many tensors the size of the parameters ``optimizer`` (an ``OptimizerConfig``) keeps: AdamW's two
    moments, SGD's momentum buffer (none without momentum)."""
    return 2 if optimizer.name == "adamw" else (1 if optimizer.momentum else 0)

"""Test-split evaluation: top-1, top-5 and mean cross-entropy."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...objectives import upcast
from .normalization import IMAGENET_NORMALIZATION, Normalization, normalization_tensors, normalize


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int, autocast: Any, channels_last: bool = False,
            normalization: Normalization = IMAGENET_NORMALIZATION, dtype: torch.dtype = torch.float32) -> Tensor:
    """Logits of ``model`` in eval mode for uint8 ``images``, batch by batch, each batch
    normalised with ``normalization`` (the one the model's weights expect), in ``dtype`` (float32,
    or float64 for a float64 model; logits are at least float32)."""
    was_training = model.training
    model.eval()
    outputs = []
    constants = normalization_tensors(normalization, images.device, dtype)  # once, not per batch
    for start in range(0, images.shape[0], batch_size):
        x = normalize(images[start:start + batch_size], constants, channels_last=channels_last, dtype=dtype)
        with autocast():
            outputs.append(upcast(model(x)))
    model.train(was_training)
    return torch.cat(outputs)


def accuracy(logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Top-1, top-5 (top-C when C < 5), in percent, and mean cross-entropy, as 0-dim tensors.

    Accuracies are ``100 * hits / n`` in float64 from the integer count of hits: the same count
    gives the same number (39 of 200 is exactly 19.5), so equal accuracies compare equal."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hits = top == labels.view(-1, 1)
    count = labels.shape[0]
    return {
        "top1": hits[:, 0].sum().double() * 100.0 / count,
        "top5": hits.any(dim=1).sum().double() * 100.0 / count,
        "loss": torch.nn.functional.cross_entropy(logits, labels),
    }

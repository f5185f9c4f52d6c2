"""Input normalisation of images: ``(x - mean) / std`` per channel, the one definition.

A normalisation is a property of a model's weights (see :mod:`.models`); batches and evaluation
normalise through these functions with the constants made once per stream on the device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .data.batched_augment import to_device

Normalization = tuple[tuple[float, float, float], tuple[float, float, float]]

IMAGENET_NORMALIZATION: Normalization = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""ImageNet's mean and std: what timm's ImageNet weights and the CIFAR ResNet checkpoints expect."""


def normalization_tensors(normalization, device: torch.device, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``(mean, std)`` (three numbers each, or tensors already made by this function) as
    ``[1, 3, 1, 1]`` tensors on ``device``, copied there without waiting for the device's queue."""
    mean, std = normalization
    if isinstance(mean, Tensor) and isinstance(std, Tensor):
        return mean, std
    made = to_device({"mean": torch.tensor(mean, dtype=dtype), "std": torch.tensor(std, dtype=dtype)}, device)
    return made["mean"].view(1, 3, 1, 1), made["std"].view(1, 3, 1, 1)


def normalize_float(images: Tensor, normalization, channels_last: bool = False) -> Tensor:
    """Float images on the 0..1 scale ``[B, 3, H, W]`` -> ``(x - mean) / std`` per channel
    (``normalization``: numbers, or :func:`normalization_tensors` made once for many batches)."""
    mean, std = normalization_tensors(normalization, images.device, images.dtype)
    out = (images - mean) / std
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def normalize(images: Tensor, normalization: Normalization = IMAGENET_NORMALIZATION, channels_last: bool = False,
              dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 ``[B, 3, H, W]`` -> ``dtype`` (float32 by default) normalised with ``normalization = (mean, std)``."""
    return normalize_float(images.to(dtype) / 255.0, normalization, channels_last)

"""MobileNetV1, the student of the KD benchmarks' ResNet50 -> MobileNetV1 pair, for Tiny-ImageNet (64x64).

The network of Howard et al. (2017) at width 1.0 as the KD code bases define it (Overhaul, CRD's
ImageNet runs, mdistiller's ``MobileNetV1``; the Dynamic Temperature Scheduler builds on
mdistiller): a 3x3 stride-2 convolution to 32 channels, then 13 depthwise-separable units (3x3
depthwise conv-BN-ReLU, 1x1 conv-BN-ReLU) to 64, 128, 128, 256, 256, 512 (x6) and 1024 (x2)
channels, with stride 2 at the units to 128, 256, 512 and the first 1024: a total stride of 32.
No width multiplier, no dropout.

The one change: global average pooling replaces the fixed 7x7 average pooling of the 224x224
original, so a 64x64 input (its 2x2 final map) works; at 224x224 the two are identical. The
classifier ``fc`` has ``num_classes`` outputs (mdistiller's is fixed at 1000).

Parameter names match mdistiller's (``model.{unit}.{i}``, ``fc``); initialisation is PyTorch's
default, as there.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (output channels, stride) of the 13 depthwise-separable units after the stem.
MOBILENETV1_UNITS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _depthwise_separable(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class MobileNetV1(nn.Module):
    """MobileNetV1 (width 1.0) with global average pooling and a linear classifier ``fc``."""

    kdtemp_classifier = "fc"

    def __init__(self, num_classes: int = 200, in_chans: int = 3,
                 units: tuple[tuple[int, int], ...] = MOBILENETV1_UNITS) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_chans, 32, 3, 2, 1, bias=False),
                                                 nn.BatchNorm2d(32), nn.ReLU(inplace=True))]
        channels = 32
        for out_channels, stride in units:
            layers.append(_depthwise_separable(channels, out_channels, stride))
            channels = out_channels
        self.model = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.model(x), 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.fc.in_features, num_classes)


def create_mobilenetv1(num_classes: int = 200, in_chans: int = 3) -> MobileNetV1:
    """MobileNetV1 for Tiny-ImageNet (200 classes by default; any input size with a total stride of 32)."""
    return MobileNetV1(num_classes, in_chans)


MOBILENETV1_MODELS: dict[str, Callable[..., MobileNetV1]] = {"mobilenetv1": create_mobilenetv1}

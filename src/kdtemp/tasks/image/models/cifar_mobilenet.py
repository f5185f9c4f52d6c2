"""MobileNetV2 for 32x32 images, the variant of the CIFAR KD benchmarks (CRD, RepDistiller, mdistiller).

This is the benchmarks' ``MobileNetV2`` (their factory ``mobile_half``; the implementation of
Jin et al.'s Route Constrained Optimization, 2019), not torchvision's or timm's:

* width multiplier **0.5** and expansion ratio 6: channel counts are ``int(c * 0.5)`` (no rounding
  to multiples of 8): stem 16, stages 8, 12, 16, 32, 48, 80, 160;
* the stem is a 3x3 convolution with **stride 2**; the stage strides are 1, 1, 2, 2, 1, 2, 1
  (the 24-channel stage keeps its resolution, unlike ImageNet's stride 2), so a 32x32 input ends
  at 2x2 (a total stride of 16);
* the last 1x1 convolution keeps **1280** channels (it is only widened for multipliers above 1);
* ReLU (not ReLU6) after every non-linear-bottleneck BN;
* every block, the first one (expansion 1) included, starts with a 1x1 expansion convolution.

Global average pooling then a linear classifier ``classifier.0`` (a one-layer ``Sequential`` in the
benchmarks; the names ``conv1``, ``blocks.{stage}.{block}.conv.{i}``, ``conv2`` and ``classifier.0``
match their checkpoints). Initialisation as there: He-normal convolutions (fan-out), BN at 1/0,
classifier weights from N(0, 0.01) with zero bias.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (expansion t, output channels c before the width multiplier, blocks n, stride of the first block s)
CIFAR_MOBILENETV2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expansion, 3x3 depthwise (carrying the stride), linear 1x1 projection; a residual when
    the stride is 1 and the channel count is kept."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class CifarMobileNetV2(nn.Module):
    """The CIFAR KD benchmarks' MobileNetV2 (see the module docstring for its conventions)."""

    kdtemp_classifier = "classifier"

    def __init__(self, num_classes: int = 100, in_chans: int = 3, width_mult: float = 0.5,
                 stages: tuple[tuple[int, int, int, int], ...] = CIFAR_MOBILENETV2_STAGES) -> None:
        super().__init__()
        self.num_classes = num_classes
        channels = int(32 * width_mult)
        self.conv1 = _conv_bn_relu(in_chans, channels, 3, 2)
        blocks = []
        for expansion, width, count, stride in stages:
            out_channels = int(width * width_mult)
            stage = []
            for index in range(count):
                stage.append(InvertedResidual(channels, out_channels, stride if index == 0 else 1, expansion))
                channels = out_channels
            blocks.append(nn.Sequential(*stage))
        self.blocks = nn.ModuleList(blocks)
        last = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = _conv_bn_relu(channels, last, 1, 1)
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        self._init_classifier()

    def _init_classifier(self) -> None:
        nn.init.normal_(self.classifier[0].weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier[0].bias)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        for stage in self.blocks:
            x = stage(x)
        return torch.flatten(F.adaptive_avg_pool2d(self.conv2(x), 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = nn.Sequential(nn.Linear(self.classifier[0].in_features, num_classes))
        self._init_classifier()


def create_mobilenetv2(num_classes: int = 100, in_chans: int = 3) -> CifarMobileNetV2:
    """The benchmarks' CIFAR MobileNetV2: width 0.5, expansion 6, stride-2 stem."""
    return CifarMobileNetV2(num_classes, in_chans)


MOBILENETV2_MODELS: dict[str, Callable[..., CifarMobileNetV2]] = {"mobilenetv2": create_mobilenetv2}

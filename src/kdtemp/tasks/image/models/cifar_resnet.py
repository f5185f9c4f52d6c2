"""The classic CIFAR ResNets (He et al., 2016), which timm does not provide.

* ``resnet20/32/44/56/110``: three stages of 16/32/64 channels, ``(depth - 2) / 6`` basic blocks
  each, **option-A** shortcuts (stride-2 subsampling plus zero channel padding, no parameters).
  Parameter names match the widely used CIFAR-10 checkpoints (``conv1``, ``bn1``, ``layer1..3``,
  ``linear``), so those load strictly.
* ``resnet8x4`` and ``resnet32x4``: the 4x-wide variants common in KD benchmarks (stem 32, stages
  64/128/256), with option-B (1x1 convolution) shortcuts as in those benchmarks.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = 0
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.pad = (planes - in_planes) // 2
                self.shortcut = _SubsamplePad(self.pad)
            else:
                self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _SubsamplePad(nn.Module):
    """Option-A shortcut: take every second pixel, pad channels with zeros on both sides."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class CifarResNet(nn.Module):
    """A CIFAR ResNet: 3x3 stem, three stages, global average pooling, linear classifier."""

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 10,
                 shortcut: str = "A", in_chans: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2; got {depth}")
        blocks = (depth - 2) // 6
        stem, *stages = widths
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        in_planes = stem
        layers = []
        for index, planes in enumerate(stages):
            stride = 1 if index == 0 else 2
            stage = []
            for block in range(blocks):
                stage.append(BasicBlock(in_planes, planes, stride if block == 0 else 1, shortcut))
                in_planes = planes
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(in_planes, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward_features(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.linear = nn.Linear(self.linear.in_features, num_classes)
        nn.init.kaiming_normal_(self.linear.weight)


def _factory(depth: int, widths: tuple[int, int, int, int], shortcut: str) -> Callable[..., CifarResNet]:
    def create(num_classes: int = 10, in_chans: int = 3) -> CifarResNet:
        return CifarResNet(depth, widths, num_classes, shortcut, in_chans)

    return create


CIFAR_MODELS: dict[str, Callable[..., CifarResNet]] = {
    **{f"resnet{d}": _factory(d, (16, 16, 32, 64), "A") for d in (20, 32, 44, 56, 110)},
    "resnet8x4": _factory(8, (32, 64, 128, 256), "B"),
    "resnet32x4": _factory(32, (32, 64, 128, 256), "B"),
}

"""Wide ResNets for 32x32 images, the variant of the CIFAR KD benchmarks (CRD, RepDistiller, mdistiller).

``wrn_{depth}_{k}`` (Zagoruyko & Komodakis, 2016): a 3x3 stem of 16 channels, three stages of
``(depth - 4) / 6`` **pre-activation** basic blocks with ``16k/32k/64k`` channels (strides 1, 2, 2),
then BN-ReLU, global average pooling and a linear classifier ``fc``. A block whose channel count
changes gets a 1x1 projection shortcut applied to the *pre-activated* input; otherwise the shortcut
is the identity. No dropout (the benchmarks train with a drop rate of 0).

Parameter names match the benchmarks' checkpoints (``conv1``, ``block1.layer.0.bn1``, ...,
``block1.layer.0.convShortcut``, ``bn1``, ``fc``), so their CIFAR-100 teachers (``wrn_40_2``) load
strictly. Initialisation as there: He-normal convolutions (fan-out), BN at 1/0, a zero classifier bias.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus the identity or a 1x1 projection of the pre-activation."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        # Named as in the benchmarks' checkpoints; absent (None) when the channel count is kept.
        self.convShortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False) if in_planes != planes else None

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.convShortcut is None else self.convShortcut(pre))


class WideStage(nn.Module):
    """``blocks`` pre-activation blocks; the first one changes channels and stride."""

    def __init__(self, blocks: int, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(*(PreActBlock(in_planes if i == 0 else planes, planes, stride if i == 0 else 1)
                                     for i in range(blocks)))

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class CifarWideResNet(nn.Module):
    """WRN-depth-k for CIFAR: stem, three pre-activation stages, BN-ReLU, pooling, ``fc``."""

    kdtemp_classifier = "fc"

    def __init__(self, depth: int, widen_factor: int, num_classes: int = 100, in_chans: int = 3) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"Wide ResNet depth must be 6n + 4; got {depth}")
        blocks = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        self.block1 = WideStage(blocks, 16, widths[0], 1)
        self.block2 = WideStage(blocks, widths[0], widths[1], 2)
        self.block3 = WideStage(blocks, widths[1], widths[2], 2)
        self.bn1 = nn.BatchNorm2d(widths[2])
        self.fc = nn.Linear(widths[2], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(F.relu(self.bn1(out)), 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.fc.in_features, num_classes)
        nn.init.zeros_(self.fc.bias)


def _factory(depth: int, widen_factor: int) -> Callable[..., CifarWideResNet]:
    def create(num_classes: int = 100, in_chans: int = 3) -> CifarWideResNet:
        return CifarWideResNet(depth, widen_factor, num_classes, in_chans)

    return create


WRN_MODELS: dict[str, Callable[..., CifarWideResNet]] = {
    "wrn_40_2": _factory(40, 2),
    "wrn_16_2": _factory(16, 2),
    "wrn_40_1": _factory(40, 1),
}

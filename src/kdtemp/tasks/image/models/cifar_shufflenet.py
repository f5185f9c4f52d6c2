"""ShuffleNetV1 and V2 for 32x32 images, the variants of the CIFAR KD benchmarks (CRD, RepDistiller, mdistiller).

Both start with a **1x1** convolution to 24 channels with BN-ReLU and *no* downsampling (no 3x3
stride-2 stem, no max-pooling); each of their three stages starts with a stride-2 unit, so a
32x32 input ends at 4x4, followed by global average pooling and a linear classifier ``linear``.

* ``shufflenetv1`` (Zhang et al., 2018), 3 groups: stages of 4, 8, 4 units with 240, 480, 960
  output channels and a bottleneck of a quarter of each unit's own output. A unit is grouped 1x1
  conv-BN-ReLU, channel shuffle, 3x3 depthwise conv-BN-ReLU (carrying the stride), grouped 1x1
  conv-BN; the stride-2 unit concatenates a 3x3 average-pooled shortcut (so it outputs the stage
  width minus its input width), the others add the identity; ReLU after the merge. The first
  1x1 of the first unit (24 input channels) is not grouped.
* ``shufflenetv2`` (Ma et al., 2018), width 1x: stages of 1 + 3, 1 + 7, 1 + 3 units with 116, 232,
  464 channels, then a 1x1 convolution to 1024 with BN-ReLU. A stride-2 unit runs both halves of
  its output from the whole input (left: 3x3 depthwise-BN, 1x1-BN-ReLU; right: 1x1-BN-ReLU, 3x3
  depthwise-BN, 1x1-BN-ReLU); a stride-1 unit passes the first half of the channels through and
  runs 1x1-BN-ReLU, 3x3 depthwise-BN, 1x1-BN-ReLU on the second; both end by concatenating and
  shuffling in 2 groups.

Parameter names match the benchmarks' checkpoints (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``linear``). Initialisation is PyTorch's default, as there.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` groups: ``[N, g*c, H, W] -> [N, c*g, H, W]``."""
    n, channels, h, w = x.shape
    return x.reshape(n, groups, channels // groups, h, w).transpose(1, 2).reshape(n, channels, h, w)


class ShuffleV1Unit(nn.Module):
    """A ShuffleNetV1 unit; with stride 2 it concatenates an average-pooled shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int) -> None:
        super().__init__()
        mid = out_channels // 4
        self.stride = stride
        self.first_groups = 1 if in_channels == 24 else groups  # the stem's 24 channels are not grouped
        self.conv1 = nn.Conv2d(in_channels, mid, 1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        out = channel_shuffle(F.relu(self.bn1(self.conv1(x))), self.first_groups)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            return F.relu(torch.cat([out, F.avg_pool2d(x, 3, 2, 1)], 1))
        return F.relu(out + x)


class ShuffleV2DownUnit(nn.Module):
    """A stride-2 ShuffleNetV2 unit: both branches read the whole input."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 2, 1, groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: Tensor) -> Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x)))))
        right = F.relu(self.bn5(self.conv5(right)))
        return channel_shuffle(torch.cat([left, right], 1), 2)


class ShuffleV2Unit(nn.Module):
    """A stride-1 ShuffleNetV2 unit: the first half of the channels passes through."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv1 = nn.Conv2d(half, half, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, half, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(half)

    def forward(self, x: Tensor) -> Tensor:
        kept, branch = x.chunk(2, dim=1)
        branch = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(branch)))))
        branch = F.relu(self.bn3(self.conv3(branch)))
        return channel_shuffle(torch.cat([kept, branch], 1), 2)


class _CifarShuffleNet(nn.Module):
    """Shared frame: 1x1 stem to 24 channels, three stages, ``_last`` (identity, or V2's 1x1
    conv-BN-ReLU), pooling, ``linear``."""

    kdtemp_classifier = "linear"

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)

    def _body(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def _last(self, x: Tensor) -> Tensor:
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self._last(self._body(x)), 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.linear = nn.Linear(self.linear.in_features, num_classes)


class CifarShuffleNetV1(_CifarShuffleNet):
    """The CIFAR KD benchmarks' ShuffleNetV1 (3 groups; see the module docstring)."""

    def __init__(self, num_classes: int = 100, in_chans: int = 3, widths: tuple[int, int, int] = (240, 480, 960),
                 units: tuple[int, int, int] = (4, 8, 4), groups: int = 3) -> None:
        super().__init__(num_classes, in_chans)
        channels = 24
        stages = []
        for width, count in zip(widths, units):
            stage = [ShuffleV1Unit(channels, width - channels, 2, groups)]
            stage += [ShuffleV1Unit(width, width, 1, groups) for _ in range(count - 1)]
            stages.append(nn.Sequential(*stage))
            channels = width
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(channels, num_classes)


class CifarShuffleNetV2(_CifarShuffleNet):
    """The CIFAR KD benchmarks' ShuffleNetV2 (width 1x; see the module docstring)."""

    def __init__(self, num_classes: int = 100, in_chans: int = 3, widths: tuple[int, int, int] = (116, 232, 464),
                 units: tuple[int, int, int] = (3, 7, 3), last: int = 1024) -> None:
        super().__init__(num_classes, in_chans)
        channels = 24
        stages = []
        for width, count in zip(widths, units):
            stage: list[nn.Module] = [ShuffleV2DownUnit(channels, width)]
            stage += [ShuffleV2Unit(width) for _ in range(count)]
            stages.append(nn.Sequential(*stage))
            channels = width
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = nn.Conv2d(channels, last, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(last)
        self.linear = nn.Linear(last, num_classes)

    def _last(self, x: Tensor) -> Tensor:
        return F.relu(self.bn2(self.conv2(x)))


def create_shufflenetv1(num_classes: int = 100, in_chans: int = 3) -> CifarShuffleNetV1:
    """The benchmarks' CIFAR ShuffleNetV1: 3 groups, 240/480/960 channels, 4/8/4 units."""
    return CifarShuffleNetV1(num_classes, in_chans)


def create_shufflenetv2(num_classes: int = 100, in_chans: int = 3) -> CifarShuffleNetV2:
    """The benchmarks' CIFAR ShuffleNetV2: width 1x, 116/232/464 channels, a 1024-channel last conv."""
    return CifarShuffleNetV2(num_classes, in_chans)


SHUFFLENET_MODELS: dict[str, Callable[..., nn.Module]] = {
    "shufflenetv1": create_shufflenetv1,
    "shufflenetv2": create_shufflenetv2,
}

"""VGG with batch norm for 32x32 images, the variant of the CIFAR KD benchmarks (CRD, RepDistiller, mdistiller).

Five blocks of 3x3 convolutions (with bias) each followed by BN, ReLU between and after them;
2x2 max-pooling after blocks 0, 1 and 2, then (only when the map is still larger than 4x4, i.e.
for 64x64 inputs such as Tiny-ImageNet) after block 3; global average pooling after block 4 and a
single linear classifier ``classifier`` on 512 features: the fully connected layers of ImageNet
VGG are gone. At 32x32, blocks 3 and 4 both run at 4x4.

* ``vgg8``: one convolution per block (64, 128, 256, 512, 512; the benchmarks' configuration "S");
* ``vgg13``: two per block (configuration "B" of Simonyan & Zisserman).

Parameter names match the benchmarks' checkpoints (``block0.0`` conv, ``block0.1`` BN, ``block0.3``
the second conv, ..., ``classifier``), so their CIFAR-100 teacher (``vgg13``) loads strictly.
Initialisation as there: He-normal convolutions (fan-out) with zero bias, BN at 1/0, classifier
weights from N(0, 0.01) with zero bias.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VGG_BLOCKS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


def _block(in_channels: int, widths: tuple[int, ...]) -> nn.Sequential:
    """Conv-BN pairs with a ReLU between them; the block's last ReLU is applied by the caller."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        in_channels = width
    return nn.Sequential(*layers[:-1])


class CifarVGG(nn.Module):
    """VGG-BN for CIFAR: five conv blocks, max-pooling between them, pooling, ``classifier``."""

    kdtemp_classifier = "classifier"

    def __init__(self, blocks: tuple[tuple[int, ...], ...], num_classes: int = 100, in_chans: int = 3) -> None:
        super().__init__()
        if len(blocks) != 5:
            raise ValueError(f"a CIFAR VGG has five blocks; got {len(blocks)}")
        self.num_classes = num_classes
        inputs = (in_chans, *(widths[-1] for widths in blocks[:-1]))
        self.block0, self.block1, self.block2, self.block3, self.block4 = (
            _block(channels, widths) for channels, widths in zip(inputs, blocks))
        self.classifier = nn.Linear(blocks[-1][-1], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        self._init_classifier()

    def _init_classifier(self) -> None:
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        for block in (self.block0, self.block1, self.block2):
            x = F.max_pool2d(F.relu(block(x)), 2)
        x = F.relu(self.block3(x))
        if x.shape[-2] > 4:  # 64x64 inputs: the fourth pooling brings block 4 to 4x4, as at 32x32
            x = F.max_pool2d(x, 2)
        x = F.relu(self.block4(x))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.classifier.in_features, num_classes)
        self._init_classifier()


def _factory(blocks: tuple[tuple[int, ...], ...]) -> Callable[..., CifarVGG]:
    def create(num_classes: int = 100, in_chans: int = 3) -> CifarVGG:
        return CifarVGG(blocks, num_classes, in_chans)

    return create


VGG_MODELS: dict[str, Callable[..., CifarVGG]] = {name: _factory(blocks) for name, blocks in VGG_BLOCKS.items()}

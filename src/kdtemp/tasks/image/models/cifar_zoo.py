"""The classic small-image KD model zoo by name, beside the CIFAR ResNets.

The students and teachers of the CIFAR-100 benchmarks of CRD (Tian et al., 2020) and the code
bases that follow it (RepDistiller, mdistiller), which timm does not provide at 32x32 (its ImageNet
variants reach a 1x1 map at 32 px), plus the MobileNetV1 of the ResNet50 -> MobileNetV1 pair on
Tiny-ImageNet:

* ``wrn_40_2``, ``wrn_16_2``, ``wrn_40_1`` (:mod:`.cifar_wrn`);
* ``vgg8``, ``vgg13`` (:mod:`.cifar_vgg`);
* ``mobilenetv2`` (:mod:`.cifar_mobilenet`, width 0.5);
* ``shufflenetv1``, ``shufflenetv2`` (:mod:`.cifar_shufflenet`);
* ``mobilenetv1`` (:mod:`.mobilenetv1`, for 64x64 inputs).

Each is created as ``create(num_classes=..., in_chans=3)`` and has ``forward_features`` (pooled
features), ``forward`` (logits), ``reset_classifier(num_classes)`` and a ``kdtemp_classifier``
attribute naming its final linear layer's state-dict prefix. Parameter counts: ``docs/models.md``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from .cifar_mobilenet import MOBILENETV2_MODELS
from .cifar_shufflenet import SHUFFLENET_MODELS
from .cifar_vgg import VGG_MODELS
from .cifar_wrn import WRN_MODELS
from .mobilenetv1 import MOBILENETV1_MODELS

KD_ZOO_MODELS: dict[str, Callable[..., nn.Module]] = {
    **WRN_MODELS, **VGG_MODELS, **MOBILENETV2_MODELS, **SHUFFLENET_MODELS, **MOBILENETV1_MODELS,
}

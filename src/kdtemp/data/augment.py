"""The study's augmentation recipe and the per-epoch training stream.

Per sample: optional inception-style random-resized crop, RandAugment(n, m) (torchvision's, on
the 0..30 magnitude scale of the RandAugment paper), horizontal flip; then per sample MixUp or
CutMix with probability 0.5 each and mixing ratio ~ U(0, 1) (Beta(1, 1)), partner drawn from a
random permutation of the batch. CutMix's ratio is corrected to the pasted box's area.

Determinism: the batches and augmentations of epoch ``e`` are a function of
``(data_seed, e)`` and the recipe alone, never of who consumes them. Per-sample transforms run
under a forked RNG seeded per sample, so the global RNG is left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..config import require
from .cache import ImageSplit

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AugmentConfig:
    """The augmentation recipe (shared by every member of a cohort)."""

    random_resized_crop: bool = False
    crop_scale_min: float = 0.08
    randaugment_ops: int = 2
    randaugment_magnitude: int = 14
    horizontal_flip: bool = True
    mix: bool = True

    def validate(self, path: str = "augment") -> None:
        require(0 < self.crop_scale_min <= 1, f"{path}.crop_scale_min", f"must be in (0, 1]; got {self.crop_scale_min}")
        require(0 <= self.randaugment_ops <= 14, f"{path}.randaugment_ops", f"must be in [0, 14]; got {self.randaugment_ops}")
        require(0 <= self.randaugment_magnitude <= 30, f"{path}.randaugment_magnitude",
                f"must be in [0, 30] (torchvision's scale); got {self.randaugment_magnitude}")

    def unused_fields(self) -> set[str]:
        """Parameters of augmentations that are switched off (they cannot change a run)."""
        unused = set()
        if not self.random_resized_crop:
            unused.add("crop_scale_min")
        if self.randaugment_ops == 0:
            unused.add("randaugment_magnitude")
        return unused


@dataclass
class Batch:
    """One training batch: float images on the 0..1 pixel scale (augmented and mixed, not yet
    normalised: each model normalises them its own way, see :meth:`normalized`), soft (mixed)
    labels and dominant labels."""

    images: Tensor
    soft_labels: Tensor
    dominant_labels: Tensor
    channels_last: bool = False
    constants: dict | None = None  # (mean, std) tensors on the device, shared by a stream's batches

    def __post_init__(self) -> None:
        self._normalized: dict = {}

    def normalized(self, normalization) -> Tensor:
        """The images normalised with ``(mean, std)``, computed once per distinct normalisation.

        Normalising after mixing equals mixing normalised images (both are affine and the
        mixing weights of a pixel sum to 1)."""
        key = (tuple(normalization[0]), tuple(normalization[1]))
        if key not in self._normalized:
            constants = self.constants if self.constants is not None else {}
            if key not in constants:  # made once per stream: no host-to-device copy per batch
                constants[key] = tuple(torch.tensor(v, device=self.images.device, dtype=self.images.dtype).view(1, 3, 1, 1)
                                       for v in key)
            mean, std = constants[key]
            out = (self.images - mean) / std
            self._normalized[key] = out.contiguous(memory_format=torch.channels_last) if self.channels_last else out
        return self._normalized[key]


def stream_seed(data_seed: int, epoch: int) -> int:
    """A 63-bit seed for epoch ``epoch`` of the stream with ``data_seed``."""
    return int(np.random.SeedSequence([data_seed, epoch]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def normalize_float(images: Tensor, normalization, channels_last: bool = False) -> Tensor:
    """Float images on the 0..1 scale ``[B, 3, H, W]`` -> ``(x - mean) / std`` per channel."""
    mean, std = normalization
    m = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    out = (images - m) / s
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def normalize(images: Tensor, normalization=(IMAGENET_MEAN, IMAGENET_STD), channels_last: bool = False) -> Tensor:
    """uint8 ``[B, 3, H, W]`` -> float32 normalised with ``normalization = (mean, std)``."""
    return normalize_float(images.float() / 255.0, normalization, channels_last)


def mix_batch(images: Tensor, labels: Tensor, num_classes: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample MixUp or CutMix (probability 0.5 each), ratio ~ U(0, 1).

    Returns ``(mixed images, soft labels [B, C], dominant labels [B])``; the dominant label is the
    one with the larger mixing weight (the sample's own label on a tie).
    """
    batch, _, height, width = images.shape
    device = images.device
    partner = torch.randperm(batch, generator=generator)
    ratio = torch.rand(batch, generator=generator, dtype=torch.float64)
    cutmix = torch.rand(batch, generator=generator) < 0.5
    centre_y = (torch.rand(batch, generator=generator) * height).long()
    centre_x = (torch.rand(batch, generator=generator) * width).long()
    cut = torch.sqrt(1.0 - ratio)
    half_h, half_w = (cut * height).long() // 2, (cut * width).long() // 2
    top, bottom = (centre_y - half_h).clamp(0, height), (centre_y + half_h).clamp(0, height)
    left, right = (centre_x - half_w).clamp(0, width), (centre_x + half_w).clamp(0, width)
    box_ratio = 1.0 - ((bottom - top) * (right - left)).double() / (height * width)
    weight = torch.where(cutmix, box_ratio, ratio).float().to(device)

    # Only the B box coordinates cross to the device; the [B, 1, H, W] mask is built there.
    top, bottom, left, right, cutmix_d = (v.to(device).view(-1, 1, 1) for v in (top, bottom, left, right, cutmix))
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    box = ((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right) & cutmix_d).unsqueeze(1)
    partner, cutmix_d = partner.to(device), cutmix_d.view(-1, 1, 1, 1)
    other = images[partner]
    blend = weight.view(-1, 1, 1, 1)
    mixed = torch.where(cutmix_d, torch.where(box, other, images), blend * images + (1 - blend) * other)

    onehot = torch.nn.functional.one_hot(labels, num_classes).float()
    soft = weight.view(-1, 1) * onehot + (1 - weight.view(-1, 1)) * onehot[partner]
    dominant = torch.where(weight >= 0.5, labels, labels[partner])
    return mixed, soft, dominant


class TrainStream:
    """The training stream: per epoch, a seeded permutation cut into full batches, augmented.

    ``split`` should already live on the training device (uint8): only batch indices and a few
    random parameters cross from the host.
    """

    def __init__(self, split: ImageSplit, batch_size: int, augment: AugmentConfig, resolution: int,
                 data_seed: int, channels_last: bool = False) -> None:
        if len(split) < batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the {len(split)} training images")
        self.split, self.batch_size, self.augment = split, batch_size, augment
        self.resolution, self.data_seed, self.channels_last = resolution, data_seed, channels_last
        self._constants: dict = {}
        ops = []
        if augment.random_resized_crop:
            ops.append(v2.RandomResizedCrop(resolution, scale=(augment.crop_scale_min, 1.0), antialias=True))
        if augment.randaugment_ops > 0:
            ops.append(v2.RandAugment(num_ops=augment.randaugment_ops, magnitude=augment.randaugment_magnitude))
        self.per_sample = v2.Compose(ops) if ops else None

    @property
    def batches_per_epoch(self) -> int:
        return len(self.split) // self.batch_size

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """The batches of 1-based ``epoch`` (the last partial batch is dropped)."""
        generator = torch.Generator().manual_seed(stream_seed(self.data_seed, epoch))
        order = torch.randperm(len(self.split), generator=generator)
        for index in range(self.batches_per_epoch):
            chosen = order[index * self.batch_size:(index + 1) * self.batch_size]
            sample_seeds = torch.randint(0, 2**62, (len(chosen),), generator=generator)
            flips = torch.rand(len(chosen), generator=generator) < 0.5
            mix_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            if index < start_batch:
                continue
            yield self._make_batch(chosen, sample_seeds, flips, mix_seed)

    def _make_batch(self, chosen: Tensor, sample_seeds: Tensor, flips: Tensor, mix_seed: int) -> Batch:
        device = self.split.images.device
        index = chosen.to(device)
        images, labels = self.split.images[index], self.split.labels[index]
        if self.per_sample is not None:
            transformed = []
            for image, seed in zip(images, sample_seeds.tolist()):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    transformed.append(self.per_sample(image))
            images = torch.stack(transformed)
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            images = F.resize(images, [self.resolution, self.resolution], antialias=True)
        if self.augment.horizontal_flip:
            images = torch.where(flips.to(device).view(-1, 1, 1, 1), images.flip(-1), images)
        images = images.float() / 255.0
        if self.augment.mix:
            images, soft, dominant = mix_batch(images, labels, self.split.num_classes, torch.Generator().manual_seed(mix_seed))
        else:
            soft = torch.nn.functional.one_hot(labels, self.split.num_classes).float()
            dominant = labels
        return Batch(images, soft, dominant, self.channels_last, self._constants)


def eval_images(images: Tensor, resolution: int, center_crop: bool) -> Tensor:
    """Test-time view: centre crop to ``resolution`` (after a random-resized-crop recipe, the
    stored images are larger) or resize to it; uint8 in, uint8 out."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    if center_crop and min(images.shape[-2:]) >= resolution:
        return F.center_crop(images, [resolution, resolution])
    return F.resize(images, [resolution, resolution], antialias=True)

"""The study's augmentation recipe and the per-epoch training stream.

Per image: optional inception-style random-resized crop, RandAugment(n, m) (torchvision's, on
the 0..30 magnitude scale of the RandAugment paper), horizontal flip; then per image MixUp or
CutMix with probability 0.5 each and mixing ratio ~ U(0, 1) (Beta(1, 1)), partner drawn from a
random permutation of the batch. CutMix's ratio is corrected to the pasted box's area.

Determinism: the batches and augmentations of epoch ``e`` are a function of
``(data_seed, e)`` and the recipe alone, never of who consumes them. Every per-image random
parameter (crop box, RandAugment ops and signs, flip) is drawn vectorised from the epoch's CPU
generator; the pixels are then transformed as one batch on the images' device
(:mod:`.batched_augment`), with no per-image loop and the global RNG untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from kdtemp.config import require
from kdtemp.objectives import upcast
from .batched_augment import (
    CropBoxes, RandAugmentDraw, draw_crop_boxes, draw_randaugment, rand_augment, random_resized_crop, to_device,
)
from .cache import ImageSplit
from ...base import stream_seed  # noqa: F401  (re-exported: every task's stream is seeded the same way)
from ..normalization import normalization_tensors, normalize, normalize_float  # noqa: F401  (re-exported)

EVAL_RESIZE_SLICE = 512  # images resized at once for the test-time view


@dataclass
class AugmentConfig:
    """The augmentation recipe (shared by every member of a cohort).

    ``pad_crop``: the classic CIFAR crop: the image is zero-padded by that many pixels on each
    side and a random window of its own size is cut out (0: off). It is an alternative to the
    inception-style ``random_resized_crop``.
    """

    random_resized_crop: bool = False
    crop_scale_min: float = 0.08
    randaugment_ops: int = 2
    randaugment_magnitude: int = 14
    horizontal_flip: bool = True
    mix: bool = True
    pad_crop: int = 0

    def validate(self, path: str = "augment") -> None:
        require(0 <= self.pad_crop <= 64, f"{path}.pad_crop", f"must be in [0, 64] pixels; got {self.pad_crop}")
        require(not (self.pad_crop and self.random_resized_crop), f"{path}.pad_crop",
                "is an alternative to random_resized_crop; use one of them")
        require(0 < self.crop_scale_min <= 1, f"{path}.crop_scale_min", f"must be in (0, 1]; got {self.crop_scale_min}")
        require(0 <= self.randaugment_ops <= 14, f"{path}.randaugment_ops", f"must be in [0, 14]; got {self.randaugment_ops}")
        require(0 <= self.randaugment_magnitude <= 30, f"{path}.randaugment_magnitude",
                f"must be in [0, 30] (torchvision's scale); got {self.randaugment_magnitude}")

    def unused_fields(self) -> set[str]:
        """Parameters of augmentations that are switched off (they cannot change a run)."""
        unused = set() if self.pad_crop else {"pad_crop"}
        if not self.random_resized_crop:
            unused.add("crop_scale_min")
        if self.randaugment_ops == 0:
            unused.add("randaugment_magnitude")
        return unused


def soft_cross_entropy(logits: Tensor, soft_labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean over samples of ``-sum_c y_c log softmax(s)_c`` (float32, or float64 for float64 logits)
    with optional label smoothing."""
    if label_smoothing:
        soft_labels = soft_labels * (1.0 - label_smoothing) + label_smoothing / soft_labels.shape[1]
    return -(soft_labels * torch.log_softmax(upcast(logits), dim=1)).sum(dim=1).mean()


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
    indices: Tensor | None = None  # each image's position in the training split (on the device)

    def __post_init__(self) -> None:
        self._normalized: dict = {}

    @property
    def targets(self) -> Tensor:
        """The class index per image that objectives use: the dominant label."""
        return self.dominant_labels

    def cross_entropy(self, logits: Tensor, label_smoothing: float = 0.0) -> Tensor:
        """Mean over images of the soft cross-entropy against the (mixed) soft labels."""
        return soft_cross_entropy(logits, self.soft_labels, label_smoothing)

    def per_sample_cross_entropy(self, logits: Tensor) -> Tensor:
        """Each image's cross-entropy ``[B]`` (float32) against its class index (the dominant label)."""
        return torch.nn.functional.cross_entropy(upcast(logits), self.dominant_labels, reduction="none")

    def normalized(self, normalization, dtype: torch.dtype = torch.float32) -> Tensor:
        """The images normalised with ``(mean, std)`` in ``dtype`` (float64 for a float64 model),
        computed once per distinct normalisation and dtype.

        Normalising after mixing equals mixing normalised images (both are affine and the
        mixing weights of a pixel sum to 1)."""
        key = (tuple(normalization[0]), tuple(normalization[1]), dtype)
        if key not in self._normalized:
            constants = self.constants if self.constants is not None else {}
            if key not in constants:  # made once per stream: no host-to-device copy per batch
                constants[key] = normalization_tensors(key[:2], self.images.device, dtype)
            images = self.images if self.images.dtype == dtype else self.images.to(dtype)
            self._normalized[key] = normalize_float(images, constants[key], self.channels_last)
        return self._normalized[key]


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
    weight = torch.where(cutmix, box_ratio, ratio).float()

    # Only the per-image draws cross to the device (one copy per dtype, never waiting for the
    # device's queue); the [B, 1, H, W] mask is built there.
    drawn = to_device({"weight": weight, "partner": partner, "top": top, "bottom": bottom, "left": left,
                       "right": right, "cutmix": cutmix}, device)
    weight, partner = drawn["weight"], drawn["partner"]
    top, bottom, left, right, cutmix_d = (drawn[k].view(-1, 1, 1) for k in ("top", "bottom", "left", "right", "cutmix"))
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    box = ((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right) & cutmix_d).unsqueeze(1)
    cutmix_d = cutmix_d.view(-1, 1, 1, 1)
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
    random parameters per image cross from the host.
    """

    def __init__(self, split: ImageSplit, batch_size: int, augment: AugmentConfig, resolution: int,
                 data_seed: int, channels_last: bool = False) -> None:
        if len(split) < batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the {len(split)} training images")
        self.split, self.batch_size, self.augment = split, batch_size, augment
        self.resolution, self.data_seed, self.channels_last = resolution, data_seed, channels_last
        self._constants: dict = {}

    @property
    def batches_per_epoch(self) -> int:
        return len(self.split) // self.batch_size

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """The batches of 1-based ``epoch`` (the last partial batch is dropped).

        Every batch draws the same amount from the epoch's generator, skipped or not, so
        ``start_batch`` resumes mid-epoch on exactly the batches an uninterrupted epoch yields."""
        generator = torch.Generator().manual_seed(stream_seed(self.data_seed, epoch))
        order = torch.randperm(len(self.split), generator=generator)
        for index in range(self.batches_per_epoch):
            chosen = order[index * self.batch_size:(index + 1) * self.batch_size]
            crop, randaugment = self._draw(len(chosen), generator)
            shifts = torch.randint(0, 2 * self.augment.pad_crop + 1, (len(chosen), 2), generator=generator) \
                if self.augment.pad_crop else None
            flips = torch.rand(len(chosen), generator=generator) < 0.5
            mix_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            if index < start_batch:
                continue
            yield self._make_batch(chosen, crop, randaugment, flips, mix_seed, shifts)

    def _draw(self, batch: int, generator: torch.Generator) -> tuple[CropBoxes | None, RandAugmentDraw | None]:
        """The per-image crop boxes and RandAugment choices of one batch (CPU; ``None`` when off)."""
        crop = randaugment = None
        if self.augment.random_resized_crop:
            height, width = self.split.images.shape[-2:]
            crop = draw_crop_boxes(batch, height, width, (self.augment.crop_scale_min, 1.0), generator)
        if self.augment.randaugment_ops > 0:
            randaugment = draw_randaugment(batch, self.augment.randaugment_ops, self.augment.randaugment_magnitude,
                                           generator)
        return crop, randaugment

    def _make_batch(self, chosen: Tensor, crop: CropBoxes | None, randaugment: RandAugmentDraw | None,
                    flips: Tensor, mix_seed: int, shifts: Tensor | None = None) -> Batch:
        device = self.split.images.device
        drawn = to_device({"index": chosen, "flips": flips} | ({"shifts": shifts} if shifts is not None else {}),
                          device)
        images, labels = self.split.images[drawn["index"]], self.split.labels[drawn["index"]]
        if crop is not None:
            images = random_resized_crop(images, crop, self.resolution)
        if shifts is not None:
            images = pad_crop(images, drawn["shifts"], self.augment.pad_crop)
        if randaugment is not None:
            images = rand_augment(images, randaugment)
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            images = F.resize(images, [self.resolution, self.resolution], antialias=True)
        if self.augment.horizontal_flip:
            images = torch.where(drawn["flips"].view(-1, 1, 1, 1), images.flip(-1), images)
        images = images.float() / 255.0
        if self.augment.mix:
            images, soft, dominant = mix_batch(images, labels, self.split.num_classes, torch.Generator().manual_seed(mix_seed))
        else:
            soft = torch.nn.functional.one_hot(labels, self.split.num_classes).float()
            dominant = labels
        return Batch(images, soft, dominant, self.channels_last, self._constants, drawn["index"])


def pad_crop(images: Tensor, shifts: Tensor, pad: int) -> Tensor:
    """The classic CIFAR crop, batched: zero-pad each image by ``pad`` pixels and cut out the
    window of the original size whose top-left corner is ``shifts[i] = (dy, dx)`` (each in
    ``[0, 2 * pad]``) in the padded image. One gather for the whole batch, exact (no resampling)."""
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    rows = (shifts[:, 0].view(-1, 1) + torch.arange(height, device=images.device)).view(batch, 1, height, 1)
    cols = (shifts[:, 1].view(-1, 1) + torch.arange(width, device=images.device)).view(batch, 1, 1, width)
    rows = rows.expand(batch, images.shape[1], height, width)
    cols = cols.expand(batch, images.shape[1], height, width)
    index = rows * (width + 2 * pad) + cols
    return padded.flatten(2).gather(2, index.reshape(batch, images.shape[1], -1)).view_as(images)


def eval_images(images: Tensor, resolution: int, center_crop: bool) -> Tensor:
    """Test-time view: centre crop to ``resolution`` (after a random-resized-crop recipe, the
    stored images are larger) or resize to it; uint8 in, uint8 out."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    if center_crop and min(images.shape[-2:]) >= resolution:
        return F.center_crop(images, [resolution, resolution])
    # in slices: on CUDA the resize works in float32, 4x the uint8 split, plus its output
    out = images.new_empty((images.shape[0], images.shape[1], resolution, resolution))
    for start in range(0, images.shape[0], EVAL_RESIZE_SLICE):
        stop = start + EVAL_RESIZE_SLICE
        out[start:stop] = F.resize(images[start:stop], [resolution, resolution], antialias=True)
    return out

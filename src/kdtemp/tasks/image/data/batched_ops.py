"""Image operations on a whole uint8 batch ``[B, C, H, W]``, one parameter per image.

Each function does what a ``torchvision.transforms.v2.functional`` op does to each image with
that image's parameter, as a few tensor operations for the whole batch, on the images' device
(no loop over images, no host synchronisation). Per-image parameters are tensors of length ``B``
on the images' device; they carry torchvision's argument as a Python float would (float64), and
are rounded to float32 where torchvision's kernel rounds them.

On the CPU the per-pixel ops run over chunks of a few images (:func:`chunked`), which keeps their
temporaries in the caches; a chunk's result is the whole batch's, image for image.

uint8 conventions, as torchvision's tensor kernels: arithmetic in float32, clamp to [0, 255],
then truncation (not rounding) to uint8 (:func:`to_uint8`). A blend ``x * r + y * (1 - r)``
rounds ``x * r`` to float32 and then adds ``y * (1 - r)`` with a single rounding (torch's
``add(..., alpha=...)`` is a fused multiply-add on CPU), emulated here exactly in float64.
Pointwise ops are per-image, per-channel lookup tables over the 256 pixel values, built with
torchvision's formulas and applied in one gather.

Agreement with torchvision (pinned by ``tests/tasks/image/test_augment.py``): the lookup-table ops
(brightness, contrast, posterize, solarize, autocontrast, equalize), saturation and sharpness are
bit-exact; shear, translation and rotation pick torchvision's source pixels (its float32 grid
steps are reproduced; at odd image sizes a rounding tie may still fall the other way); the
resized crop is bilinear without torchvision's antialiasing filter (equal up to rounding when the
crop is enlarged, close when it is shrunk).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as nnf
from torch import Tensor

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale
CPU_CHUNK_BYTES = 1 << 19
"""On the CPU a per-pixel op runs over chunks of images of at most this many input bytes (at
least one image): its float temporaries (up to 8x the chunk) then stay in the caches and in
memory the allocator reuses, where whole-batch temporaries of 10-80 MB are page-faulted afresh on
every call and cost more than the arithmetic. On other devices the whole batch is one chunk."""

_Op = TypeVar("_Op", bound=Callable[..., Tensor])


def chunked(op: _Op) -> _Op:
    """Run ``op(images, *per_image, **options)`` over chunks of the batch on the CPU (see
    :data:`CPU_CHUNK_BYTES`) and stack the results along the batch dimension, or write them into
    ``out=`` (which may be ``images`` itself: each chunk is read before it is written). Positional
    tensor arguments after ``images`` are per image (sliced with it); everything else is passed as
    is. Each image's result is the same whatever the chunking: the ops are per image."""
    @functools.wraps(op)
    def run(images: Tensor, *args, out: Tensor | None = None, **options) -> Tensor:
        batch = images.shape[0]
        image_bytes = max(1, images[:1].numel() * images.element_size())
        step = batch if images.device.type != "cpu" else max(1, CPU_CHUNK_BYTES // image_bytes)
        if out is None and step >= batch:  # one chunk (an empty batch too)
            return op(images, *args, **options)
        for start in range(0, batch, step):
            stop = min(start + step, batch)
            part = op(images[start:stop], *[a[start:stop] if isinstance(a, Tensor) else a for a in args], **options)
            if out is None:
                out = part.new_empty((batch, *part.shape[1:]))
            out[start:stop] = part
        return out

    return run  # type: ignore[return-value]


def _per_image(values: Tensor, ndim: int = 4) -> Tensor:
    """``[B]`` -> ``[B, 1, ..., 1]`` broadcastable against ``ndim``-dimensional batches."""
    return values.view(-1, *([1] * (ndim - 1)))


def grayscale(images: Tensor) -> Tensor:
    """torchvision's float32 luma of RGB ``[B, 3, H, W]`` (uint8, or float32 holding uint8
    values), floored -> ``[B, 1, H, W]`` (``rgb_to_grayscale`` with ``preserve_dtype=False``, as
    saturation and contrast use it: ``r * 0.2989``, then two fused multiply-adds, each rounded to
    float32). Images are RGB throughout this module."""
    red, green, blue = images.float().unbind(dim=-3)
    gray = red.mul(GRAY_WEIGHTS[0]).add_(green, alpha=GRAY_WEIGHTS[1]).add_(blue, alpha=GRAY_WEIGHTS[2])
    return gray.floor_().unsqueeze(-3)


def to_uint8(values: Tensor) -> Tensor:
    """Float values already clamped to [0, 255], truncated to uint8 (as ``.to(torch.uint8)``).
    On the CPU through int16: the same values, and several times faster than torch's direct
    float-to-uint8 copy."""
    if values.device.type == "cpu":
        return values.to(torch.int16).to(torch.uint8)
    return values.to(torch.uint8)


def _fused_blend(product: Tensor, other: Tensor, alpha: Tensor) -> Tensor:
    """``product + other * alpha`` rounded once to float32 (a fused multiply-add), clamped and
    truncated to uint8; ``product``, ``other`` and ``alpha`` hold float32 values. ``other * alpha``
    is exact in float64 (at most 48 significant bits) and so is its sum with ``product`` for the
    pixel ranges here, so rounding the float64 result to float32 is the fused result."""
    exact = product.double().addcmul_(other.double(), alpha.double())
    return to_uint8(exact.float().clamp_(0, 255))


# ---------------------------------------------------------------- pointwise: lookup tables

def _flat_index(images: Tensor) -> Tensor:
    """int32 ``[B * C * H * W]``: each pixel value offset by 256 per image and channel (the
    index of its table entry among ``[B, C, 256]`` tables, and of its histogram bin)."""
    batch, channels = images.shape[:2]
    offsets = torch.arange(0, batch * channels * 256, 256, dtype=torch.int32, device=images.device)
    return images.to(torch.int32).add_(offsets.view(batch, channels, 1, 1)).view(-1)


@chunked
def apply_lut(images: Tensor, lut: Tensor) -> Tensor:
    """Map every pixel through its image's and channel's table: ``lut`` uint8 ``[B, C, 256]``
    (or ``[B, 1, 256]`` for all channels). One gather with int32 indices."""
    batch, channels = images.shape[:2]
    table = lut.expand(batch, channels, 256).reshape(-1)
    return table.index_select(0, _flat_index(images)).view_as(images)


def _levels(count: int, device: torch.device) -> Tensor:
    """The 256 uint8 pixel values as float32, ``[count, 1, 256]`` (an expanded view)."""
    return torch.arange(256, dtype=torch.float32, device=device).view(1, 1, 256).expand(count, 1, 256)


def brightness_lut(factors: Tensor) -> Tensor:
    """``adjust_brightness``: ``x * factor`` (float32), clamped, truncated -> ``[B, 1, 256]``."""
    values = _levels(len(factors), factors.device) * _per_image(factors.float(), 3)
    return values.clamp_(0, 255).to(torch.uint8)


@chunked
def luma_mean(images: Tensor) -> Tensor:
    """Per image, ``torch.mean`` of its floored float32 luma (:func:`grayscale`) -> ``[B]``."""
    return torch.mean(grayscale(images), dim=(-3, -2, -1))


def contrast_lut(images: Tensor, factors: Tensor) -> Tensor:
    """``adjust_contrast``: blend with the mean of the image's floored luma -> ``[B, 1, 256]``.

    The mean is an exact float32 sum of integers (for images up to 65,793 pixels) scaled as
    ``torch.mean`` does, so it equals torchvision's per image."""
    mean = luma_mean(images).view(-1, 1, 1)
    product = _levels(len(factors), images.device) * _per_image(factors.float(), 3)
    return _fused_blend(product, mean, _per_image((1.0 - factors).float(), 3))


def posterize_lut(bits: Tensor) -> Tensor:
    """``posterize``: keep the ``bits`` high bits (0..8) -> ``[B, 1, 256]``."""
    mask = ((1 << bits) - 1) << (8 - bits)
    levels = torch.arange(256, dtype=torch.int64, device=bits.device).view(1, 1, 256)
    return (levels & _per_image(mask, 3)).to(torch.uint8)


def solarize_lut(thresholds: Tensor) -> Tensor:
    """``solarize``: invert values ``>= threshold`` (compared in float32) -> ``[B, 1, 256]``."""
    levels = _levels(len(thresholds), thresholds.device)
    values = torch.where(levels >= _per_image(thresholds.float(), 3), 255.0 - levels, levels)
    return values.to(torch.uint8)


def autocontrast_lut(images: Tensor) -> Tensor:
    """``autocontrast``: stretch each channel's [min, max] to [0, 255] -> ``[B, C, 256]``."""
    batch, channels = images.shape[:2]
    flat = images.reshape(batch, channels, -1)
    minimum, maximum = flat.amin(dim=2, keepdim=True).float(), flat.amax(dim=2, keepdim=True).float()
    flat_channel = maximum == minimum
    inverse_scale = torch.where(flat_channel, 1.0, (maximum - minimum).mul_(1.0 / 255))
    minimum = torch.where(flat_channel, 0.0, minimum)
    values = (_levels(batch, images.device) - minimum).div_(inverse_scale)
    return values.clamp_(0, 255).to(torch.uint8)


@chunked
def histogram(images: Tensor) -> Tensor:
    """Per image and channel, the count of each uint8 value -> int64 ``[B, C, 256]``."""
    batch, channels = images.shape[:2]
    index, bins = _flat_index(images), batch * channels * 256
    if images.device.type == "cpu":
        return torch.bincount(index, minlength=bins).view(batch, channels, 256)  # the fastest there
    # elsewhere bincount reads the largest value back to the host: count without waiting
    ones = torch.ones(1, dtype=torch.int64, device=images.device).expand(index.numel())
    return torch.zeros(bins, dtype=torch.int64, device=images.device).index_add_(0, index, ones).view(batch, channels, 256)


def equalize_lut(images: Tensor) -> Tensor:
    """``equalize``: torchvision's (PIL's) histogram equalisation per channel -> ``[B, C, 256]``.

    A channel whose histogram is one value plus fewer than 255 other pixels is left as is."""
    pixels = images[0, 0].numel()
    hist = histogram(images)
    cum = hist.cumsum(dim=2)
    last_value = cum.argmax(dim=2, keepdim=True)  # the largest value present
    step = torch.div(pixels - hist.gather(2, last_value), 255, rounding_mode="floor")
    lut = torch.div(cum[..., :-1] + step // 2, step.clamp(min=1), rounding_mode="floor").clamp_(0, 255)
    lut = torch.cat([torch.zeros_like(lut[..., :1]), lut], dim=2)
    identity = torch.arange(256, device=images.device).view(1, 1, 256)
    return torch.where(step > 0, lut, identity).to(torch.uint8)


# ---------------------------------------------------------------- per-pixel blends

@chunked
def adjust_saturation(images: Tensor, factors: Tensor) -> Tensor:
    """``adjust_saturation`` ("Color"): blend each RGB image with its floored luma."""
    values = images.float()
    gray = grayscale(values)
    product = values.mul_(_per_image(factors.float()))
    return _fused_blend(product, gray, _per_image((1.0 - factors).float()))


@chunked
def adjust_sharpness(images: Tensor, factors: Tensor) -> Tensor:
    """``adjust_sharpness``: blend the interior with a 3x3 smoothing (1s around a 5, over 13),
    border pixels unchanged.

    The smoothing is exact: sums of integers in float32, and ``floor((sum + 6.5) / 13)`` (a
    float multiplication never moves a value at least 1/26 from an integer across it) is
    torchvision's rounded convolution ``round(sum / 13)``. The blend ``centre + (1 - factor) *
    (smooth - centre)`` is torchvision's fused multiply-add, exact in float64."""
    height, width = images.shape[-2:]
    if height <= 2 or width <= 2:
        return images.clone()
    values = images.float()
    rows = values[..., :-2] + values[..., 1:-1]
    rows += values[..., 2:]
    box = rows[..., :-2, :] + rows[..., 1:-1, :]
    box += rows[..., 2:, :]
    centre = values[..., 1:-1, 1:-1]
    difference = box.add_(centre, alpha=4).add_(6.5).mul_(1.0 / 13).floor_().sub_(centre)
    interior = centre.double().addcmul_(difference.double(), _per_image((1.0 - factors).float().double()))
    out = images.clone()
    out[..., 1:-1, 1:-1] = to_uint8(interior.float().clamp_(0, 255))
    return out


# ---------------------------------------------------------------- geometry

def inverse_affine_matrix(angle: Tensor, translate_x: Tensor, translate_y: Tensor, shear_x: Tensor,
                          shear_y: Tensor, center_x: Tensor, center_y: Tensor) -> Tensor:
    """torchvision's ``_get_inverse_affine_matrix`` (scale 1) per image, in float64 ``[B, 6]``.

    Degrees for angle and shears; the centre is relative to the image centre. The matrix maps
    an output point to its source point, both relative to the image centre."""
    rotation, shear_xr, shear_yr = torch.deg2rad(angle), torch.deg2rad(shear_x), torch.deg2rad(shear_y)
    cos_sy, tan_sx = torch.cos(shear_yr), torch.tan(shear_xr)
    a = torch.cos(rotation - shear_yr) / cos_sy
    b = -(a * tan_sx + torch.sin(rotation))
    c = torch.sin(rotation - shear_yr) / cos_sy
    d = torch.cos(rotation) - c * tan_sx
    m0, m1, m3, m4 = d, -b, -c, a
    cx_tx, cy_ty = center_x + translate_x, center_y + translate_y
    m2 = center_x - m0 * cx_tx - m1 * cy_ty
    m5 = center_y - m3 * cx_tx - m4 * cy_ty
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=1)


@chunked
def affine_nearest(images: Tensor, matrices: Tensor, moves: str = "xy") -> Tensor:
    """``affine`` / ``rotate`` with nearest interpolation and fill 0, per image.

    ``matrices``: ``[B, 6]`` inverse matrices from :func:`inverse_affine_matrix`. The sampling
    grid is computed with torchvision's float32 steps (``_affine_grid``'s normalised grid, then
    ``grid_sample``'s unnormalisation and round-half-even), so the chosen source pixels are
    torchvision's, ties included; outside the image reads 0. Pixels are gathered as uint8
    (no float copy of the images). ``moves="x"`` (or ``"y"``): the matrices leave the other
    coordinate as it is (shears and translations along one axis: their other coordinate rounds
    back to the pixel's own), so only one coordinate is computed."""
    batch, channels, height, width = images.shape
    device = images.device
    theta = matrices.float().view(batch, 2, 3)
    theta = torch.stack([theta[:, 0] / (0.5 * width), theta[:, 1] / (0.5 * height)], dim=1)  # _affine_grid's
    base_x = torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, width, device=device).view(1, 1, width)
    base_y = torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, height, device=device).view(1, height, 1)

    def source(row: int, size: int) -> Tensor:
        """Source pixel index along one axis ``[B, H, W]``, clamped to [-1, size] (-1, size: outside)."""
        k = theta[:, row].reshape(batch, 3, 1, 1)
        normalised = (base_x * k[:, 0] + base_y * k[:, 1]).add_(k[:, 2])
        return normalised.add_(1.0).mul_(size * 0.5).sub_(0.5).round_().clamp_(-1, size)

    own_x = torch.arange(width, dtype=torch.float32, device=device).view(1, 1, width)
    own_y = torch.arange(height, dtype=torch.float32, device=device).view(1, height, 1)
    src_x = source(0, width) if "x" in moves else own_x
    src_y = source(1, height) if "y" in moves else own_y
    padded = nnf.pad(images, (1, 1, 1, 1))  # one zero border: outside coordinates were clamped onto it
    index = (src_x + (src_y + 1) * (width + 2)).add_(1).long().expand(batch, height, width)
    out = padded.view(batch, channels, -1).gather(2, index.reshape(batch, 1, -1).expand(batch, channels, -1))
    return out.view(batch, channels, height, width)


@chunked
def resized_crop(images: Tensor, top: Tensor, left: Tensor, height: Tensor, width: Tensor, size: int) -> Tensor:
    """``resized_crop(..., [size, size])`` per image (bilinear), in one ``grid_sample``.

    Sample points are torchvision's (``align_corners=False``) clamped to the crop, so an
    enlarged crop equals torchvision's bilinear resize up to float rounding; a shrunk crop has no
    antialiasing filter. Boxes are integer tensors ``[B]`` inside the image. uint8 in, uint8 out."""
    batch, _, in_h, in_w = images.shape
    device = images.device
    steps = torch.arange(size, dtype=torch.float32, device=device).add_(0.5).view(1, size)

    def axis(start: Tensor, length: Tensor, extent: int) -> Tensor:
        start, length = start.float().view(-1, 1), length.float().view(-1, 1)
        pixel = (steps * (length / size) - 0.5).clamp_(min=0).minimum(length - 1) + start
        return pixel.mul_(2.0 / extent).add_(1.0 / extent - 1.0)  # to grid_sample's [-1, 1]

    grid_x, grid_y = axis(left, width, in_w), axis(top, height, in_h)
    grid = torch.stack(torch.broadcast_tensors(grid_x.view(batch, 1, size), grid_y.view(batch, size, 1)), dim=-1)
    out = nnf.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return to_uint8(out.round_())

"""RandAugment and the random-resized crop for a whole batch: random draws on the host, pixels on
the device.

Randomness and pixels are separate. ``draw_*`` take a CPU ``torch.Generator`` and return small
CPU tensors (one row per image), drawn vectorised, so a stream stays a function of its seed.
``rand_augment`` and ``random_resized_crop`` take those draws and the uint8 batch, move the
per-image parameters to the batch's device once, and apply every op to all the images that drew
it at once (:mod:`.batched_ops`): no loop over images and no per-image RNG.

RandAugment follows torchvision's ``transforms.v2.RandAugment``: per image and per op slot, one
of the 14 ops of :data:`OPS` uniformly; magnitude bin ``m`` of ``num_bins`` (31: the paper's
0..30 scale) read from torchvision's magnitude table; signed ops negated with probability 1/2;
geometric ops use nearest interpolation and fill 0. The crop follows ``RandomResizedCrop``'s
``get_params``: 10 attempts of (area ~ U(scale) * H * W, log aspect ratio ~ U(log ratio)), the
first that fits, else the centre crop clipped to the ratio range.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from . import batched_ops as ops

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
       "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
SIGNED = frozenset({"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
                    "Contrast", "Sharpness"})
NUM_BINS = 31
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
CROP_ATTEMPTS = 10

_GEOMETRIC = ("ShearX", "TranslateX", "ShearY", "TranslateY", "Rotate")  # laid out by the axes they move
_MOVES = {"ShearX": "x", "TranslateX": "x", "ShearY": "y", "TranslateY": "y", "Rotate": "xy"}
_LOOKUP = ("Brightness", "Contrast", "Posterize", "Solarize", "AutoContrast", "Equalize")
_INDEX = {name: i for i, name in enumerate(OPS)}
# The op groups that run together, in the order their images are laid out within an op slot.
_GROUPS = (("Identity",), _GEOMETRIC, ("Color",), ("Sharpness",), _LOOKUP)
_LAYOUT = [name for group in _GROUPS for name in group]
_SORT_KEY = torch.tensor([_LAYOUT.index(name) for name in OPS])  # op index -> position in the layout
_IS_SIGNED = torch.tensor([name in SIGNED for name in OPS])
_IS_GEOMETRIC = torch.tensor([name in _GEOMETRIC for name in OPS])


@functools.lru_cache(maxsize=16)
def magnitude_table(height: int, width: int, num_bins: int = NUM_BINS) -> Tensor:
    """torchvision's RandAugment magnitudes ``[len(OPS), num_bins]`` for ``height x width`` images:
    float64 holding the float32 values torchvision reads (its ``_AUGMENTATION_SPACE``), 0 for ops
    without a magnitude. Cached: do not modify the result."""
    def linspace(start: float, end: float) -> Tensor:
        return torch.linspace(start, end, num_bins)  # float32, as torchvision's

    table = {
        "ShearX": linspace(0.0, 0.3), "ShearY": linspace(0.0, 0.3),
        "TranslateX": linspace(0.0, 150.0 / 331.0 * width), "TranslateY": linspace(0.0, 150.0 / 331.0 * height),
        "Rotate": linspace(0.0, 30.0), "Brightness": linspace(0.0, 0.9), "Color": linspace(0.0, 0.9),
        "Contrast": linspace(0.0, 0.9), "Sharpness": linspace(0.0, 0.9),
        "Posterize": (8 - (torch.arange(num_bins) / ((num_bins - 1) / 4))).round().int(),
        "Solarize": linspace(1.0, 0.0),
    }
    out = torch.zeros(len(OPS), num_bins, dtype=torch.float64)
    for name, values in table.items():
        out[_INDEX[name]] = values.double()
    return out


@dataclass(frozen=True)
class RandAugmentDraw:
    """Per image and op slot: the op (index into :data:`OPS`), its magnitude bin, and whether a
    signed op is negated. CPU tensors ``[B, num_ops]``."""

    ops: Tensor
    bins: Tensor
    negative: Tensor


@dataclass(frozen=True)
class CropBoxes:
    """Per image: the crop box in pixels (CPU int64 tensors ``[B]``)."""

    top: Tensor
    left: Tensor
    height: Tensor
    width: Tensor


def draw_randaugment(batch: int, num_ops: int, magnitude: int, generator: torch.Generator) -> RandAugmentDraw:
    """Uniform op per image and slot, the fixed magnitude bin, a fair sign (torchvision negates
    when ``U(0, 1) <= 0.5``). Draws the same amount for every call of the same shape."""
    chosen = torch.randint(0, len(OPS), (batch, num_ops), generator=generator)
    negative = torch.rand((batch, num_ops), generator=generator) <= 0.5
    return RandAugmentDraw(chosen, torch.full((batch, num_ops), magnitude, dtype=torch.int64), negative)


def draw_crop_boxes(batch: int, height: int, width: int, scale: tuple[float, float],
                    generator: torch.Generator, ratio: tuple[float, float] = CROP_RATIO) -> CropBoxes:
    """``RandomResizedCrop.get_params`` for ``batch`` images of ``height x width``, vectorised:
    all attempts drawn at once, the first that fits kept, the fallback where none does."""
    area = height * width
    target = area * (scale[0] + (scale[1] - scale[0]) * torch.rand((batch, CROP_ATTEMPTS), generator=generator,
                                                                   dtype=torch.float64))
    low, high = math.log(ratio[0]), math.log(ratio[1])
    log_aspect = low + (high - low) * torch.rand((batch, CROP_ATTEMPTS), generator=generator, dtype=torch.float64)
    aspect = torch.exp(log_aspect)
    w = torch.sqrt(target * aspect).round()  # half to even, as Python's round
    h = torch.sqrt(target / aspect).round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first attempt that fits
    w, h = w.gather(1, first).squeeze(1).long(), h.gather(1, first).squeeze(1).long()
    position = torch.rand((batch, 2), generator=generator, dtype=torch.float64)
    top = (position[:, 0] * (height - h + 1)).floor().long()
    left = (position[:, 1] * (width - w + 1)).floor().long()

    in_ratio = width / height  # fallback: the centre crop, clipped to the ratio range
    if in_ratio < min(ratio):
        fallback_w, fallback_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fallback_w, fallback_h = int(round(height * max(ratio))), height
    else:
        fallback_w, fallback_h = width, height
    found = fits.any(dim=1)
    return CropBoxes(
        top=torch.where(found, top, (height - fallback_h) // 2),
        left=torch.where(found, left, (width - fallback_w) // 2),
        height=torch.where(found, h, fallback_h),
        width=torch.where(found, w, fallback_w),
    )


def random_resized_crop(images: Tensor, boxes: CropBoxes, size: int) -> Tensor:
    """Crop each image to its box and resize it to ``size x size`` (uint8, one resampling call)."""
    box = to_device({"top": boxes.top, "left": boxes.left, "height": boxes.height, "width": boxes.width},
                     images.device)
    return ops.resized_crop(images, box["top"], box["left"], box["height"], box["width"], size)


def rand_augment(images: Tensor, draw: RandAugmentDraw, num_bins: int = NUM_BINS) -> Tensor:
    """Apply ``draw``'s op slots in order to uint8 ``[B, C, H, W]``; returns a new tensor.

    Per slot the batch is permuted (one gather) so that the images of each op group are
    contiguous, and each group runs once on its slice; the permutations are undone at the end.
    Every index and parameter is computed on the host first and crosses to the device in one
    copy per dtype."""
    batch, height, width = images.shape[0], images.shape[-2], images.shape[-1]
    table = magnitude_table(height, width, num_bins)
    order = torch.arange(batch)  # after a slot's permutation, row i holds the input image order[i]
    plan: dict[str, Tensor] = {}
    slots = []
    for slot in range(draw.ops.shape[1]):
        chosen = draw.ops[:, slot]
        magnitude = table[chosen, draw.bins[:, slot]]
        magnitude = torch.where(_IS_SIGNED[chosen] & draw.negative[:, slot], -magnitude, magnitude)
        permutation = torch.argsort(_SORT_KEY[chosen[order]], stable=True)
        order = order[permutation]
        plan[f"{slot}.permutation"] = permutation
        plan.update({f"{slot}.{k}": v for k, v in _slot_plan(chosen[order], magnitude[order], height, width).items()})
        slots.append(torch.bincount(chosen, minlength=len(OPS)).tolist())
    plan["inverse"] = torch.argsort(order)
    plan = to_device(plan, images.device)
    out = images
    for slot, counts in enumerate(slots):
        out = out.index_select(0, plan[f"{slot}.permutation"])
        _apply_slot(out, counts, {k.split(".", 1)[1]: v for k, v in plan.items() if k.startswith(f"{slot}.")})
    return out.index_select(0, plan["inverse"])


def _slot_plan(chosen: Tensor, magnitude: Tensor, height: int, width: int) -> dict[str, Tensor]:
    """Host-side parameters of one slot whose images are sorted by op group (CPU tensors)."""
    plan: dict[str, Tensor] = {}
    geometric = _IS_GEOMETRIC[chosen]
    if geometric.any():
        plan["matrices"] = _geometric_matrices(chosen[geometric], magnitude[geometric], height, width)
    for name in ("Color", "Sharpness", "Brightness", "Contrast"):
        plan[f"{name}.factor"] = 1.0 + magnitude[chosen == _INDEX[name]]
    plan["Posterize.bits"] = magnitude[chosen == _INDEX["Posterize"]].long()
    plan["Solarize.threshold"] = 255.0 * magnitude[chosen == _INDEX["Solarize"]]
    return plan


def _apply_slot(images: Tensor, counts: list[int], plan: dict[str, Tensor]) -> None:
    """Run each op group once, in place, on its contiguous slice of ``images`` (``counts``: the
    number of images per op, host ints that bound the slices)."""
    start = counts[_INDEX["Identity"]]
    for names in _GROUPS[1:]:
        stop = start + sum(counts[_INDEX[n]] for n in names)
        if stop == start:
            continue
        part = images[start:stop]
        if names == _GEOMETRIC:
            _geometric(part, counts, plan["matrices"])
        elif names == ("Color",):
            ops.adjust_saturation(part, plan["Color.factor"], out=part)
        elif names == ("Sharpness",):
            ops.adjust_sharpness(part, plan["Sharpness.factor"], out=part)
        else:
            ops.apply_lut(part, _lookup_tables(part, counts, plan), out=part)
        start = stop


def _geometric(images: Tensor, counts: list[int], matrices: Tensor) -> None:
    """The geometric slice, in place: one ``affine_nearest`` per set of moved axes (x, y, both)."""
    start = 0
    for moves in ("x", "y", "xy"):
        count = sum(counts[_INDEX[n]] for n in _GEOMETRIC if _MOVES[n] == moves)
        if count:
            part = images[start:start + count]
            ops.affine_nearest(part, matrices[start:start + count], moves, out=part)
            start += count


def _lookup_tables(images: Tensor, counts: list[int], plan: dict[str, Tensor]) -> Tensor:
    """Tables ``[k, C, 256]`` of the pointwise ops for the lookup slice (sorted as :data:`_LOOKUP`)."""
    channels = images.shape[1]
    tables, start = [], 0
    for name in _LOOKUP:
        count = counts[_INDEX[name]]
        if count == 0:
            continue
        part = images[start:start + count]
        if name == "Brightness":
            table = ops.brightness_lut(plan["Brightness.factor"])
        elif name == "Contrast":
            table = ops.contrast_lut(part, plan["Contrast.factor"])
        elif name == "Posterize":
            table = ops.posterize_lut(plan["Posterize.bits"])
        elif name == "Solarize":
            table = ops.solarize_lut(plan["Solarize.threshold"])
        elif name == "AutoContrast":
            table = ops.autocontrast_lut(part)
        else:
            table = ops.equalize_lut(part)
        tables.append(table.expand(count, channels, 256))
        start += count
    return torch.cat(tables)


def _geometric_matrices(op: Tensor, value: Tensor, height: int, width: int) -> Tensor:
    """Inverse affine matrices ``[k, 6]`` (float64) of the geometric ops, as torchvision's
    RandAugment calls ``affine``/``rotate``: shears about the top-left corner (``center=[0, 0]``)
    by ``degrees(atan(value))``, translations by ``int(value)`` pixels, rotation by ``value``
    degrees counter-clockwise about the centre (``rotate`` reduces the angle modulo 360 and
    negates it for the affine matrix)."""
    zero = torch.zeros_like(value)
    is_op = {name: op == _INDEX[name] for name in _GEOMETRIC}
    shear = torch.rad2deg(torch.atan(value))
    corner = is_op["ShearX"] | is_op["ShearY"]
    return ops.inverse_affine_matrix(
        angle=torch.where(is_op["Rotate"], -torch.remainder(value, 360.0), zero),
        translate_x=torch.where(is_op["TranslateX"], torch.trunc(value), zero),
        translate_y=torch.where(is_op["TranslateY"], torch.trunc(value), zero),
        shear_x=torch.where(is_op["ShearX"], shear, zero), shear_y=torch.where(is_op["ShearY"], shear, zero),
        center_x=torch.where(corner, -0.5 * width, zero), center_y=torch.where(corner, -0.5 * height, zero),
    )


def to_device(tensors: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Move small CPU tensors (per-image draws) to ``device``: one non-blocking copy per dtype,
    from pinned memory on CUDA, so that the host never waits for the device's queue (a blocking
    ``.to(device)`` synchronises with it). On the CPU they are returned as they are."""
    if device.type == "cpu":
        return tensors
    out: dict[str, Tensor] = {}
    by_dtype: dict[torch.dtype, list[str]] = {}
    for key, tensor in tensors.items():
        by_dtype.setdefault(tensor.dtype, []).append(key)
    for keys in by_dtype.values():
        packed = torch.cat([tensors[k].reshape(-1) for k in keys])
        if device.type == "cuda":
            packed = packed.pin_memory().to(device, non_blocking=True)
        else:
            packed = packed.to(device)
        for key, part in zip(keys, packed.split([tensors[k].numel() for k in keys])):
            out[key] = part.view(tensors[key].shape)
    return out

"""Augmentation time per batch: the old per-image loop against the batched path, in one process.

The old loop is the training stream's former ``_make_batch``: torchvision v2 ``RandomResizedCrop``
(when the recipe crops) and ``RandAugment(2, 14)`` image by image, each under
``torch.random.fork_rng`` re-seeded per image. The batched path is today's stream: crop boxes and
RandAugment choices drawn vectorised from one generator, the pixels transformed as one batch
(``kdtemp.tasks.image.data.batched_augment``). Both start from the same uint8 batch and stop at the augmented
uint8 batch (flip and MixUp/CutMix are the same in both and left out). Times are medians over
repeats that alternate the two arms.

    python bench/augment.py [--batch-size 64] [--repeats 7] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kdtemp.tasks.image.data.batched_augment import (  # noqa: E402
    draw_crop_boxes, draw_randaugment, rand_augment, random_resized_crop,
)

# (label, stored size, output size, random-resized crop)
CASES = [
    ("32 px, RandAugment (CIFAR recipe)", 32, 32, False),
    ("32 px, crop + RandAugment", 32, 32, True),
    ("224 px from 256, crop + RandAugment (ImageNet recipe)", 256, 224, True),
    ("224 px, RandAugment only", 224, 224, False),
]


def old_loop(resolution: int, crop: bool, ops: int, magnitude: int):
    """The former per-image path, as it was in ``TrainStream._make_batch`` (``ops=0``: the crop alone)."""
    steps = []
    if crop:
        steps.append(v2.RandomResizedCrop(resolution, scale=(0.08, 1.0), antialias=True))
    if ops > 0:
        steps.append(v2.RandAugment(num_ops=ops, magnitude=magnitude))
    per_sample = v2.Compose(steps)

    def run(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        sample_seeds = torch.randint(0, 2**62, (len(images),), generator=generator)
        transformed = []
        for image, seed in zip(images, sample_seeds.tolist()):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                transformed.append(per_sample(image))
        return torch.stack(transformed)

    return run


def batched(resolution: int, crop: bool, ops: int, magnitude: int):
    """Today's path: vectorised draws, one batch of tensor operations (``ops=0``: the crop alone)."""
    def run(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if crop:
            boxes = draw_crop_boxes(len(images), images.shape[-2], images.shape[-1], (0.08, 1.0), generator)
            images = random_resized_crop(images, boxes, resolution)
        if ops > 0:
            images = rand_augment(images, draw_randaugment(len(images), ops, magnitude, generator))
        return images

    return run


def seconds(fn, images: torch.Tensor, generator: torch.Generator, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn(images, generator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--ops", type=int, default=2)
    parser.add_argument("--magnitude", type=int, default=14)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", help="run only the cases whose label contains this text (e.g. '224')")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {device}, "
          f"{cpu_model()} ({os.cpu_count()} CPUs)")
    print(f"RandAugment({args.ops}, {args.magnitude}), batch {args.batch_size}, median of {args.repeats}")
    for label, stored, resolution, crop in CASES:
        if args.only and args.only not in label:
            continue
        images = torch.randint(0, 256, (args.batch_size, 3, stored, stored), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(0)).to(device)
        arms = {"old loop": old_loop(resolution, crop, args.ops, args.magnitude),
                "batched": batched(resolution, crop, args.ops, args.magnitude)}
        if crop:  # where the time goes: the crop alone, in both arms
            arms.update({"old crop": old_loop(resolution, crop, 0, 0), "batched crop": batched(resolution, crop, 0, 0)})
        generators = {name: torch.Generator().manual_seed(1) for name in arms}
        times: dict[str, list[float]] = {name: [] for name in arms}
        for name, fn in arms.items():  # warm-up
            fn(images, generators[name])
        for _ in range(args.repeats):
            for name, fn in arms.items():
                times[name].append(seconds(fn, images, generators[name], device))
        median = {name: statistics.median(values) for name, values in times.items()}
        old, new = median["old loop"], median["batched"]
        print(f"{label}: old loop {old * 1e3:.1f} ms, batched {new * 1e3:.1f} ms per batch "
              f"({old / args.batch_size * 1e6:.0f} vs {new / args.batch_size * 1e6:.0f} us per image), "
              f"speed-up {old / new:.1f}x")
        if crop:
            old_crop, new_crop = median["old crop"], median["batched crop"]
            print(f"  of which the crop: old loop {old_crop * 1e3:.1f} ms, batched {new_crop * 1e3:.1f} ms "
                  f"(speed-up {old_crop / new_crop:.1f}x)")


if __name__ == "__main__":
    main()

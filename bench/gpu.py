"""Training throughput of a solo run and of a cohort: images/s per member, the cohort's wall-clock
against that many solo runs, where each step's time goes, and the model-FLOPs utilisation.

The engine's own parts run exactly as ``run_cohort``'s inner loop runs them: the ``TrainStream``
(batched on-device augmentation, MixUp/CutMix), the teacher's forward pass (eval mode, no
gradient), then every ``Member.train_step`` (forward, loss, backward, optimizer) on the same
batch; bf16 autocast and channels-last on CUDA. Phases are timed with CUDA events on CUDA (no
synchronisation inside a step, so the timing does not change the overlap of host and device) and
with the wall clock on CPU. FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (teacher
forward; student forward and backward); the MFU is model FLOPs per second over the device's peak
dense bf16 rate (``--peak-tflops``, else a table of known GPUs).

    python bench/gpu.py --teacher resnet56 --student resnet20 --resolution 32 --batch-size 64 \\
        --steps 50 --members 9 --device auto
    python bench/gpu.py --teacher resnet50 --student resnet18 --resolution 224 --crop --steps 30
    python bench/gpu.py --data cifar100 --root ~/data --steps 50          # a dataset via DataConfig

It also runs on CPU with tiny sizes (``tests/bench/test_gpu.py``); the MFU is reported on CUDA only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kdtemp.tasks.image.data import AugmentConfig, DataConfig, ImageSplit, TrainStream  # noqa: E402
from kdtemp.engine.config import MemberConfig  # noqa: E402
from kdtemp.engine.fused import FusedGroup  # noqa: E402
from kdtemp.engine.member import Member  # noqa: E402
from kdtemp.engine.runtime import Runtime, device_label, resolve_device  # noqa: E402
from kdtemp.tasks import get_task  # noqa: E402
from kdtemp.tasks.image.models import ModelConfig  # noqa: E402

TEMPERATURES = [1, 2, 3, 4, 5, 7, 10, 20, 40]
PHASES = ("data", "teacher forward", "student forward+backward", "optimizer")
# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity), by a substring of the device name.
PEAK_BF16_TFLOPS = {"H200 NVL": 835.0, "H200": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0,  # H100: the SXM part
                    "H20": 148.0, "GH200": 989.0, "B200": 2250.0, "A100": 312.0, "A800": 312.0, "A10G": 70.0,
                    "A10": 125.0, "L40S": 362.0, "L40": 181.0, "L4": 121.0, "RTX 4090": 165.0, "RTX 3090": 71.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="resnet56")
    parser.add_argument("--student", default="resnet20")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each arm")
    parser.add_argument("--members", type=int, default=9, help="cohort size (temperatures 1..40)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--data", default="synthetic", help="'synthetic', or a kdtemp dataset name (with --root)")
    parser.add_argument("--root", default=None, help="dataset folder for --data <name>")
    parser.add_argument("--stored-size", type=int, default=None,
                        help="synthetic image size (default: the resolution; 8/7 of it with --crop, 256 for 224)")
    parser.add_argument("--num-classes", type=int, default=100, help="classes of the synthetic data")
    parser.add_argument("--images", type=int, default=None, help="synthetic images (default: 8 batches)")
    parser.add_argument("--crop", action="store_true", help="random-resized crop (the ImageNet recipe)")
    parser.add_argument("--randaugment-ops", type=int, default=2)
    parser.add_argument("--magnitude", type=int, default=14)
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak dense bf16 TFLOP/s")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    return parser.parse_args(argv)


def training_split(args: argparse.Namespace) -> ImageSplit:
    """Synthetic uint8 images with random labels, or a dataset through ``DataConfig``."""
    if args.data != "synthetic":
        config = DataConfig(dataset=args.data, root=args.root, resolution=args.resolution,
                            image_size=args.stored_size)
        config.validate()
        return config.load("train")
    stored = args.stored_size or (int(round(args.resolution * 8 / 7)) if args.crop else args.resolution)
    count = args.images or 8 * args.batch_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, stored, stored), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, args.num_classes, (count,), generator=generator)
    return ImageSplit(images, labels, [f"class{i}" for i in range(args.num_classes)])


class PhaseClock:
    """Accumulates the time of named phases: CUDA events on CUDA (read once at the end), the wall
    clock on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list[tuple[str, object, object]] = []
        self.seconds = {name: 0.0 for name in PHASES}

    def now(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def add(self, name: str, start, stop) -> None:
        if self.cuda:
            self.marks.append((name, start, stop))
        else:
            self.seconds[name] += stop - start

    def totals(self) -> dict[str, float]:
        if self.cuda:
            torch.cuda.synchronize()
            for name, start, stop in self.marks:
                self.seconds[name] += start.elapsed_time(stop) / 1e3
            self.marks.clear()
        return dict(self.seconds)


def instrument(member: Member, clock: PhaseClock) -> None:
    """Mark the student's forward start and the optimizer step's bounds inside ``train_step``
    (forward pre-hook, optimizer step pre- and post-hooks)."""
    marks: dict[str, object] = {}

    def before_step(optimizer, args, kwargs):
        marks["step"] = clock.now()
        clock.add("student forward+backward", marks["forward"], marks["step"])

    member.student.register_forward_pre_hook(lambda module, args: marks.__setitem__("forward", clock.now()))
    member.optimizer.register_step_pre_hook(before_step)
    member.optimizer.register_step_post_hook(lambda optimizer, args, kwargs: clock.add("optimizer", marks["step"],
                                                                                       clock.now()))


def model_flops(teacher, student, batch_size: int, resolution: int, device, autocast, channels_last: bool) -> dict:
    """FLOPs of one teacher forward and one student forward+backward on a batch."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch_size, 3, resolution, resolution, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with FlopCounterMode(display=False) as counter, torch.no_grad(), autocast():
        teacher(x)
    teacher_flops = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        with autocast():
            out = student(x)
        out.float().sum().backward()
    student.zero_grad(set_to_none=True)
    return {"teacher_forward": teacher_flops, "student_forward_backward": counter.get_total_flops()}


def run_arm(args, split: ImageSplit, members_count: int, device: torch.device, fuse: bool = False) -> dict:
    """Train ``members_count`` members for ``args.steps`` timed steps (``fuse``: as one stacked model,
    :mod:`kdtemp.engine.fused`); return wall time, phases and the peak memory allocated (CUDA)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    runtime = Runtime.create(str(device), "auto")
    channels_last, autocast = runtime.channels_last, runtime.autocast
    task = get_task("image_classification")
    augment = AugmentConfig(random_resized_crop=args.crop, randaugment_ops=args.randaugment_ops,
                            randaugment_magnitude=args.magnitude)
    stream = TrainStream(split, args.batch_size, augment, args.resolution, data_seed=0, channels_last=channels_last)
    data = SimpleNamespace(num_classes=split.num_classes, classes=split.classes, train_size=len(split),
                           stream=stream)  # what a member needs of the task's data
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        teacher = task.create_model(ModelConfig(args.teacher), data, runtime, "teacher")
    teacher.module.eval()
    for parameter in teacher.module.parameters():
        parameter.requires_grad_(False)
    epochs = 1 + (args.warmup + args.steps) // stream.batches_per_epoch
    members = []
    for i in range(members_count):
        config = MemberConfig(model=ModelConfig(args.student), temperature=float(TEMPERATURES[i % len(TEMPERATURES)]),
                              epochs=epochs, seed=i)
        members.append(Member(config, f"bench{i}", task, data, runtime))

    clock = PhaseClock(device)
    group = FusedGroup(members) if fuse else None
    if group is None:  # a fused step has no per-member optimizer to time: its arm gives the wall clock
        for member in members:
            instrument(member, clock)

    def batches():
        for epoch in range(1, epochs + 1):
            for member in members:
                member.begin_epoch(epoch)
            if group is not None:
                group.begin_epoch()
            for batch in stream.epoch(epoch):
                yield epoch, batch
            if group is not None:
                group.end_epoch()

    source = batches()
    host_data = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:  # the timed part starts here
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            clock.totals()
            clock.seconds = {name: 0.0 for name in PHASES}
            host_data, started = 0.0, time.perf_counter()
        host_start, start = time.perf_counter(), clock.now()
        epoch, batch = next(source)
        batch.normalized(teacher.normalization)  # the teacher's input, made once per batch
        loaded = clock.now()
        host_data += time.perf_counter() - host_start
        clock.add("data", start, loaded)
        with torch.no_grad(), autocast():
            teacher_logits = teacher(batch).float()
        clock.add("teacher forward", loaded, clock.now())
        if group is not None:
            group.train_step(batch, teacher_logits, epoch)
        else:
            for member in members:
                member.train_step(batch, teacher_logits, epoch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    flops = model_flops(teacher.module, members[0].student, args.batch_size, args.resolution, device, autocast, channels_last)
    return {"members": members_count, "wall_seconds": wall, "phases": clock.totals(), "host_data_seconds": host_data,
            "flops": flops, "peak_memory": peak, "estimated_memory": estimated_memory(args, split, members_count),
            "fused": fuse}


def estimated_memory(args, split: ImageSplit, members_count: int) -> int | None:
    """What the study's planner estimates for this arm (:mod:`kdtemp.study.memory`): the members, the
    teacher and its inference pass, and the training data on the device (float32 activations)."""
    task = get_task("image_classification")
    shared = SimpleNamespace(data=SimpleNamespace(resolution=args.resolution), batch_size=args.batch_size,
                             eval_batch_size=args.batch_size)
    facts = SimpleNamespace(classes=split.classes, train=len(split), test=0, image_size=tuple(split.images.shape[-2:]))
    member = task.memory(shared, ModelConfig(args.student), "student", MemberConfig().optimizer, facts)
    teacher = task.memory(shared, ModelConfig(args.teacher), "teacher", None, facts)
    data = task.data_memory(shared, facts)
    if member is None or teacher is None or data is None:
        return None
    return members_count * member.total + teacher.total + data


def peak_flops(args, device: torch.device) -> tuple[float | None, str]:
    if args.peak_tflops:
        return args.peak_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "not on CUDA"
    name = torch.cuda.get_device_name(device)
    for key, value in sorted(PEAK_BF16_TFLOPS.items(), key=lambda kv: -len(kv[0])):
        if key in name:
            return value * 1e12, f"table entry {key!r}"
    return None, f"unknown GPU {name!r}: pass --peak-tflops"


def summarise(arm: dict, args, peak: float | None) -> dict:
    steps, images = args.steps, args.steps * args.batch_size
    flops = arm["flops"]["teacher_forward"] + arm["members"] * arm["flops"]["student_forward_backward"]
    achieved = flops * steps / arm["wall_seconds"]
    return {
        "members": arm["members"],
        "peak_memory": arm["peak_memory"],
        "estimated_memory": arm["estimated_memory"],
        "wall_seconds": arm["wall_seconds"],
        "images_per_second_per_member": images / arm["wall_seconds"],
        "ms_per_step": 1e3 * arm["wall_seconds"] / steps,
        "split_ms_per_step": {name: 1e3 * arm["phases"][name] / steps for name in PHASES},
        "host_data_ms_per_step": 1e3 * arm["host_data_seconds"] / steps,
        "model_flops_per_step": flops,
        "achieved_tflops": achieved / 1e12,
        "mfu": achieved / peak if peak else None,
    }


def report(result: dict) -> str:
    lines = [result["header"]]
    flops = result["flops"]
    lines.append(f"model FLOPs per batch: teacher forward {flops['teacher_forward'] / 1e9:.2f} GFLOP, "
                 f"student forward+backward {flops['student_forward_backward'] / 1e9:.2f} GFLOP")
    timer = "CUDA events, device time" if result["device"].startswith("cuda") else "wall clock"
    for key in ("solo", "cohort", "fused"):
        arm = result[key]
        title = {"solo": "solo run", "cohort": f"cohort of {arm['members']}",
                 "fused": f"fused cohort of {arm['members']}"}[key]
        mfu = f"{100 * arm['mfu']:.1f}%" if arm["mfu"] is not None else f"n/a ({result['peak_source']})"
        lines.append(f"{title}: {arm['images_per_second_per_member']:.0f} images/s per member, "
                     f"{arm['ms_per_step']:.1f} ms per step, {arm['achieved_tflops']:.2f} TFLOP/s, MFU {mfu}")
        if key != "fused":
            split = ", ".join(f"{name} {ms:.2f}" for name, ms in arm["split_ms_per_step"].items())
            lines.append(f"  time split (ms per step, {timer}): {split}; "
                         f"data on the host {arm['host_data_ms_per_step']:.2f}")
        peak = f"{arm['peak_memory'] / 2 ** 30:.2f} GiB" if arm["peak_memory"] is not None else "n/a (not on CUDA)"
        estimate = f"{arm['estimated_memory'] / 2 ** 30:.2f} GiB" if arm["estimated_memory"] is not None else "n/a"
        lines.append(f"  peak memory allocated {peak}; the planner's estimate {estimate}")
    members = result["cohort"]["members"]
    lines.append(f"cohort / {members} solo runs wall-clock ratio: {result['cohort_to_solo_ratio']:.3f} "
                 f"(speed-up {1 / result['cohort_to_solo_ratio']:.2f}x)")
    lines.append(f"fused cohort / {members} solo runs wall-clock ratio: {result['fused_to_solo_ratio']:.3f} "
                 f"(speed-up {1 / result['fused_to_solo_ratio']:.2f}x); fused / unfused cohort "
                 f"{result['fused_to_cohort_ratio']:.3f}")
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> dict:
    """Measure both arms; return the figures (also printed)."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # CUDA events record on the current device's stream
    split = training_split(args).to(device)
    peak, peak_source = peak_flops(args, device)
    solo = run_arm(args, split, 1, device)
    cohort = run_arm(args, split, args.members, device)
    fused = run_arm(args, split, args.members, device, fuse=True)
    precision = "bf16 autocast, channels-last" if device.type == "cuda" else "float32"
    stored = tuple(split.images.shape[-2:])
    result = {
        "device": device_label(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "teacher": args.teacher, "student": args.student, "resolution": args.resolution,
        "batch_size": args.batch_size, "steps": args.steps, "data": args.data, "stored_size": list(stored),
        "peak_flops": peak, "peak_source": peak_source, "flops": solo["flops"],
        "solo": summarise(solo, args, peak), "cohort": summarise(cohort, args, peak),
        "fused": summarise(fused, args, peak),
    }
    result["cohort_to_solo_ratio"] = cohort["wall_seconds"] / (args.members * solo["wall_seconds"])
    result["fused_to_solo_ratio"] = fused["wall_seconds"] / (args.members * solo["wall_seconds"])
    result["fused_to_cohort_ratio"] = fused["wall_seconds"] / cohort["wall_seconds"]
    result["header"] = (
        f"{result['device']}, torch {torch.__version__}, {precision}, {torch.get_num_threads()} CPU threads; "
        f"{args.teacher} -> {args.student} at {args.resolution} px, batch {args.batch_size}, {args.steps} steps "
        f"(+{args.warmup} warm-up), {args.data} data stored at {stored[0]}x{stored[1]}, "
        f"{'crop + ' if args.crop else ''}RandAugment({args.randaugment_ops}, {args.magnitude}), flip, MixUp/CutMix")
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in result.items() if k != "header"}, indent=1))
    return result


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        run()

"""Wall-clock of a 9-temperature cohort against 9 solo runs, measured in one process on the same data.

The teacher (resnet110) costs several times the student (resnet20) per image, as in real
distillation. Both arms train the same 9 members for the same epochs on the same stream; the
cohort loads/augments each batch once and runs the teacher once, the solo runs each do both.

    python bench/cohort.py [--epochs 1] [--per-class 64] [--repeats 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kdtemp.tasks.image.data import AugmentConfig, DataConfig  # noqa: E402
from kdtemp.engine import CohortConfig, MemberConfig, run_cohort  # noqa: E402
from kdtemp.tasks.image.models import ModelConfig, create_model  # noqa: E402

TEMPERATURES = [1, 2, 3, 4, 5, 7, 10, 20, 40]


def cohort_config(members, args) -> CohortConfig:
    return CohortConfig(
        data=DataConfig(dataset="digits", resolution=args.resolution, train_per_class=args.per_class),
        augment=AugmentConfig(randaugment_ops=2, randaugment_magnitude=9, horizontal_flip=False, mix=True),
        teacher=ModelConfig(args.teacher), batch_size=64, members=members, device=args.device,
    )


def _median_seconds(step, warmup: int = 10, calls: int = 20) -> float:
    """Median seconds of ``step()`` after a real warm-up (oneDNN builds its kernels in the first calls)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def part_costs(args) -> dict[str, float]:
    """Seconds per batch of 64 of each part of a step, measured alone: the teacher's forward pass,
    the student's training step (forward, backward, optimizer) and loading + augmenting the batch."""
    teacher = create_model(ModelConfig(args.teacher), 10).to(args.device).eval()
    student = create_model(ModelConfig(args.student), 10).to(args.device).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    x = torch.randn(64, 3, args.resolution, args.resolution, device=args.device)
    y = torch.randint(0, 10, (64,), device=args.device)

    def teacher_pass():
        with torch.no_grad():
            teacher(x)

    def student_step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(student(x), y).backward()
        optimizer.step()

    from kdtemp.engine.runtime import Runtime
    from kdtemp.tasks import get_task

    data = get_task("image_classification").open(cohort_config([], args), Runtime.create(args.device, "auto"))
    batches = iter(())

    def load_batch():
        nonlocal batches
        try:
            next(batches)
        except StopIteration:
            batches = iter(data.stream.epoch(1))
            next(batches)

    return {"teacher": _median_seconds(teacher_pass), "student": _median_seconds(student_step),
            "data": _median_seconds(load_batch)}


def floor_ratio(costs: dict[str, float], members: int) -> float:
    """The cohort / solo ratio of the training steps alone, from these parts: a cohort pays the data
    and the teacher once per batch and every student's step; ``members`` solo runs pay all three
    each. Solo runs also repeat per-run work (opening the data, the teacher's evaluations), so a
    measured ratio may fall below it."""
    shared = costs["data"] + costs["teacher"]
    return (shared + members * costs["student"]) / (members * (shared + costs["student"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--per-class", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--teacher", default="resnet110")
    parser.add_argument("--student", default="resnet20")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    members = [MemberConfig(model=ModelConfig(args.student), temperature=float(t), epochs=args.epochs) for t in TEMPERATURES]
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    run_cohort(cohort_config(members[:1], args), progress=False)  # warm-up, fills the data cache
    costs = part_costs(args)
    print(f"per batch of 64 (median after warm-up): teacher {args.teacher} forward {costs['teacher'] * 1e3:.1f} ms, "
          f"student {args.student} training step {costs['student'] * 1e3:.1f} ms, data {costs['data'] * 1e3:.1f} ms "
          f"(teacher forward / student step {costs['teacher'] / costs['student']:.2f}x)")
    floor = floor_ratio(costs, len(members))

    cohort_times, solo_times = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            together = run_cohort(cohort_config(members, args), output=Path(out) / "cohort", progress=False)
            cohort_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            alone = [run_cohort(cohort_config([m], args), output=Path(out) / f"solo{i}", progress=False)[0]
                     for i, m in enumerate(members)]
            solo_times.append(time.perf_counter() - start)
        assert [r.curve for r in together] == [r.curve for r in alone], "cohort and solo runs disagree"
    cohort, solo = statistics.median(cohort_times), statistics.median(solo_times)
    print(f"9-temperature cohort: {cohort:.1f} s   9 solo runs: {solo:.1f} s   (median of {args.repeats})")
    print(f"cohort / solo wall-clock ratio: {cohort / solo:.3f}  (speed-up {solo / cohort:.2f}x; results identical)")
    print(f"training steps alone, from the measured parts: {floor:.3f}  (a cohort pays data and teacher once per "
          f"batch and {len(members)} student steps; solo runs also repeat per-run work, so the measured ratio can "
          "fall below it)")


if __name__ == "__main__":
    main()

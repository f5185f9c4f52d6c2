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


def forward_cost(name: str, resolution: int, device: str) -> float:
    """Seconds per forward pass of a batch of 64 (a rough check of the teacher/student ratio)."""
    model = create_model(ModelConfig(name), 10).to(device).eval()
    x = torch.randn(64, 3, resolution, resolution, device=device)
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(5):
            model(x)
    return (time.perf_counter() - start) / 5


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
    teacher_cost = forward_cost(args.teacher, args.resolution, args.device)
    student_cost = forward_cost(args.student, args.resolution, args.device)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"teacher {args.teacher} forward / student {args.student} forward: {teacher_cost / student_cost:.1f}x")
    run_cohort(cohort_config(members[:1], args), progress=False)  # warm-up, fills the data cache

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


if __name__ == "__main__":
    main()

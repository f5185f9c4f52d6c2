"""The reference runs: what the code before the task seam trained, and every later change must too.

``tests/fixtures/reference/`` keeps a digits study (a teacher prepared by the study, then KD at two
temperatures, DKD, DTS, CTKD, Energy KD, DTKD and two teacher-signal ablations, two seeds) and a
CIFAR-10 JPEG cohort (the shared resnet20 checkpoint as teacher, RandAugment, MixUp/CutMix, eight
members), as ``make.py`` wrote them with the code of commit 6443068. On the machine that wrote them
the code after the seam reproduces them bit for bit (``cmp`` of the two JSON files). Here they are
compared within a tolerance that another CPU passes too: the same run ids (the CIFAR-10 runs' ids
hash the paths of the data and the checkpoint, so those are matched by label), statuses and best
epochs; every loss, temperature and dataset constant within a relative 1e-3; every accuracy within
one test image.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reference"
RELATIVE = 1e-3


def _make():
    spec = importlib.util.spec_from_file_location("reference_make", FIXTURES / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _close(a, b, one_image: float, key: str) -> bool:
    if a is None or b is None:
        return a is b
    if key in ("top1", "top5"):
        return abs(a - b) <= one_image + 1e-9
    return math.isclose(a, b, rel_tol=RELATIVE, abs_tol=1e-6)


def by_label(runs: dict) -> dict:
    return {run["label"]: run for run in runs.values()}


def compare(produced: dict, kept: dict, test_images: int) -> list[str]:
    """Every difference beyond the tolerance, as lines (empty when they agree)."""
    one_image = 100.0 / test_images
    problems = []
    if set(produced) != set(kept):
        return [f"run ids differ: new {sorted(set(produced) - set(kept))}, missing {sorted(set(kept) - set(produced))}"]
    for run_id, old in kept.items():
        new = produced[run_id]
        for key in ("run_id", "label", "status", "epochs_done", "best_epoch"):
            if new[key] != old[key]:
                problems.append(f"{run_id} {key}: {new[key]!r} != {old[key]!r}")
        if len(new["curve"]) != len(old["curve"]) or len(new["temperature_trace"]) != len(old["temperature_trace"]):
            problems.append(f"{run_id}: curve or trace length differs")
            continue
        for epoch, (row, kept_row) in enumerate(zip(new["curve"], old["curve"]), 1):
            if set(row) != set(kept_row):
                problems.append(f"{run_id} epoch {epoch}: fields {sorted(row)} != {sorted(kept_row)}")
            for key, value in kept_row.items():
                if not _close(row.get(key), value, one_image, key):
                    problems.append(f"{run_id} epoch {epoch} {key}: {row.get(key)} != {value}")
        for step, (a, b) in enumerate(zip(new["temperature_trace"], old["temperature_trace"])):
            if not _close(a, b, one_image, "temperature"):
                problems.append(f"{run_id} step {step} temperature: {a} != {b}")
        for key, value in (old["dataset_constants"] or {}).items():
            if not _close((new["dataset_constants"] or {}).get(key), value, one_image, key):
                problems.append(f"{run_id} constant {key}: {new['dataset_constants']} != {old['dataset_constants']}")
        if not _close(new["teacher_top1"], old["teacher_top1"], one_image, "top1"):
            problems.append(f"{run_id} teacher top-1: {new['teacher_top1']} != {old['teacher_top1']}")
    return problems


@pytest.mark.slow
def test_the_digits_reference_study_trains_what_it_trained_before(tmp_path):
    produced = _make().digits(tmp_path)
    problems = compare(produced, json.loads((FIXTURES / "digits.json").read_text()), test_images=200)
    assert not problems, "\n".join(problems[:20])


@pytest.mark.slow
def test_the_cifar10_reference_cohort_trains_what_it_trained_before(tmp_path, cifar10_jpeg_root, resnet_checkpoints):
    data = tmp_path / "data"
    data.mkdir()
    (data / "cifar10-jpeg").symlink_to(cifar10_jpeg_root)
    (data / "resnet-cifar10").symlink_to(resnet_checkpoints["resnet20"].parent)
    produced = _make().cifar10(tmp_path / "work", data)
    kept = json.loads((FIXTURES / "cifar10.json").read_text())
    for run in [*produced.values(), *kept.values()]:  # their ids hash the data and weights paths
        run["run_id"] = None
    problems = compare(by_label(produced), by_label(kept), test_images=100)
    assert not problems, "\n".join(problems[:20])


def test_the_comparison_finds_a_changed_number():
    kept = json.loads((FIXTURES / "digits.json").read_text())
    changed = json.loads(json.dumps(kept))
    run = next(iter(changed.values()))
    run["curve"][-1]["train_loss"] *= 1.01
    assert compare(kept, kept, 200) == []
    assert any("train_loss" in line for line in compare(changed, kept, 200))

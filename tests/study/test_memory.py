"""Cohorts sized to the device (issue: cohorts sized to the device): memory estimates measured on the
meta device, cohorts packed under ``executor.memory``, a member that cannot fit refused in one line,
and a cohort that runs out of CUDA memory split and retried with its finished members kept."""

import json

import pytest
import torch

from kdtemp.cli import main
from kdtemp.config import ConfigError
from kdtemp.study.memory import CohortMemory, pack, parse_memory
from kdtemp.tasks.image.models import ModelConfig, create_model, memory_profile, saved_for_backward

from helpers.trust import write_yaml


def test_memory_sizes_are_read_in_both_units_and_a_bad_one_is_one_line():
    assert parse_memory("80GB") == 80 * 10 ** 9 and parse_memory("24GiB") == 24 * 2 ** 30
    assert parse_memory("512 MB") == 512 * 10 ** 6 and parse_memory(1000) == 1000
    for bad in ("lots", "-3GB", "0", "12 parsecs", True):
        with pytest.raises(ConfigError, match=r"executor.memory: .* is not a memory size"):
            parse_memory(bad)


@pytest.mark.parametrize("name,resolution,batch", [("resnet20", 32, 16), ("resnet18", 224, 4),
                                                   ("vit_tiny_patch16_224", 224, 4)])
def test_the_activation_estimate_is_within_a_fifth_of_what_backward_saves(name, resolution, batch):
    """The meta-device estimate against the bytes a real forward pass on the CPU saves for backward."""
    profile = memory_profile(name, 10, resolution)
    torch.manual_seed(0)
    model = create_model(ModelConfig(name), 10).train()
    actual = saved_for_backward(model, torch.randn(batch, 3, resolution, resolution))
    assert abs(profile.saved(batch) - actual) <= 0.2 * actual, (profile.saved(batch), actual)
    assert profile.parameters == sum(p.numel() for p in model.parameters())


class _Run:
    def __init__(self, name="resnet18", batch=64):
        self.spec = type("Spec", (), {"student": type("S", (), {"model": ModelConfig(name)})(), "batch_size": batch})()


def test_runs_are_packed_in_order_under_the_budget():
    runs = [_Run() for _ in range(10)]
    chunks, memories = pack(runs, lambda run: (3, 4, 1, 0), budget=20, max_size=None)
    assert [len(c) for c in chunks] == [5, 5] and all(m.total <= 20 for m in memories)
    assert memories[0] == CohortMemory(5, [3] * 5, [0] * 5)
    chunks, _ = pack(runs, lambda run: (3, 4, 1, 0), budget=20, max_size=3)
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    chunks, memories = pack(runs, lambda run: None, budget=20, max_size=4)  # no estimate: the count alone
    assert [len(c) for c in chunks] == [4, 4, 2] and memories == [None] * 3
    with pytest.raises(ConfigError, match=r"student.model: resnet18 at batch 64 needs ~0.0 GB .* over the memory "
                                          r"budget of 0.0 GB \(executor.memory\)"):
        pack(runs, lambda run: (30, 4, 1, 0), budget=20, max_size=None)


def test_unfused_members_hold_one_members_activations_at_a_time_and_fused_ones_all():
    """Unfused, each member's backward frees its activations before the next member's forward."""
    runs = [_Run() for _ in range(10)]
    chunks, memories = pack(runs, lambda run: (1, 4, 1, 3), budget=20, max_size=None)
    assert [len(c) for c in chunks] == [10] and memories[0].total == 5 + 10 + 3
    chunks, memories = pack(runs, lambda run: (1, 4, 1, 3), budget=20, max_size=None, fused=True)
    assert [len(c) for c in chunks] == [3, 3, 3, 1] and memories[0].total == 5 + 3 + 9
    assert "one member at a time" in CohortMemory(5, [1], [3]).describe()


def _grid_study(folder, model, teacher, resolution, memory):
    return write_yaml(folder / "study.yaml", {
        "name": "grid", "base": {"data": {"dataset": "digits", "resolution": resolution},
                                 "teacher": {"name": teacher}, "student": {"model": {"name": model}}},
        "presets": ["temperatures", "kd_approaches", "optimizers", "batch_sizes", "epochs_cifar100"],
        "seeds": [0, 1, 2], "executor": {"kind": "local", "memory": memory}})


def _cohort_lines(out):
    return [line for line in out.splitlines() if line.startswith("  cohort ")]


@pytest.mark.slow
def test_a_large_grid_of_resnet18_at_224_px_is_packed_under_80_gb(tmp_path, capsys):
    path = _grid_study(tmp_path, "resnet18", "resnet50", 224, "80GB")
    assert main(["study", "plan", path, "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    runs = int(out.split(" runs in ")[0].split()[-1])
    assert runs > 3000 and "memory: budget 80.0 GB per cohort (executor.memory)" in out
    lines = _cohort_lines(out)
    sizes = [float(line.split("memory ~")[1].split(" GB")[0]) for line in lines]
    assert len(lines) > 6 and max(sizes) <= 80.0 and all(" GB each" in line for line in lines)
    assert sum(int(line.split(": ")[1].split(" runs")[0]) for line in lines) == runs
    # the same grid of resnet20 students at 32 px: cohorts stay large
    path = _grid_study(tmp_path, "resnet20", "resnet56", 32, "80GB")
    assert main(["study", "plan", path, "--output", str(tmp_path / "out")]) == 0
    counts = [int(line.split(": ")[1].split(" runs")[0]) for line in _cohort_lines(capsys.readouterr().out)]
    assert max(counts) >= 500


def test_a_member_that_cannot_fit_even_alone_is_one_line_before_any_work(tmp_path, capsys):
    path = write_yaml(tmp_path / "study.yaml", {
        "name": "too-big", "base": {"data": {"dataset": "digits", "resolution": 224}, "teacher": {"name": "resnet50"},
                                    "batch_size": 256, "student": {"model": {"name": "resnet18"}, "epochs": 1}},
        "grid": {"student.temperature": [1, 4]}, "executor": {"memory": "2GB"}})
    assert main(["study", "plan", path, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()
    assert "student.model: resnet18 at batch 256 needs ~" in err and "over the memory budget of 2.0 GB" in err


def test_a_cohort_out_of_cuda_memory_is_split_and_retried_keeping_finished_members(tmp_path, monkeypatch, capsys):
    from kdtemp.engine import cohort as cohort_module
    from kdtemp.study.executors import train_cohort

    members = [{"model": {"name": "resnet20"}, "epochs": epochs, "temperature": t, "optimizer": {"lr": 3e-3}}
               for epochs, t in ((2, 1.0), (1, 2.0), (2, 4.0), (2, 8.0))]
    cohort = {"data": {"dataset": "digits", "resolution": 8, "train_per_class": 8, "test_per_class": 4},
              "teacher": {"name": "resnet20"}, "batch_size": 16, "members": members}
    reference = train_cohort(cohort, str(tmp_path / "reference"), "cpu", 1)["results"]

    finish = cohort_module._Cohort.finish_epoch

    def finish_then_run_out(self, active, epoch):  # a cohort of more than 2 runs out after its first epoch
        finish(self, active, epoch)
        if len(self.members) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(cohort_module._Cohort, "finish_epoch", finish_then_run_out)
    results = train_cohort(cohort, str(tmp_path / "split"), "cpu", 1)["results"]
    assert "a cohort of 4 members ran out of CUDA memory; split into 2 and 2 and retried" in capsys.readouterr().err
    assert [r["status"] for r in results] == ["done"] * 4
    assert [r["curve"] for r in results] == [r["curve"] for r in reference]  # resumed exactly where each stood
    short = results[1]["run_id"]  # finished in epoch 1, before the split: never trained again
    events = (tmp_path / "split" / short / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in events] == [1]

"""Executors (``kdtemp.study.executors``): inline, local and Ray give the same table, and one named
GPU gets one cohort at a time."""

import pytest

from kdtemp.config import from_dict
from kdtemp.study import ExecutorConfig, load_study, run_study

from helpers.study import DIGITS_STUDY, table, write_study


def test_inline_study_completes_with_one_row_per_run(inline_table):
    assert len(inline_table) == 36
    assert all(row["status"] == "done" and row["epochs_done"] == "2" for row in inline_table)
    assert len({row["final_top1"] for row in inline_table}) > 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "ray"])
def test_local_and_ray_executors_give_the_same_table(tmp_path, inline_table, kind):
    if kind == "ray":
        pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'kdtemp[ray]'")
    study_file = {**DIGITS_STUDY, "executor": {"kind": kind, "workers": 2, "threads": 1}}
    study = load_study(write_study(tmp_path / "s.yaml", study_file), output=tmp_path / "out")
    counts = run_study(study, progress=False)
    assert counts["done"] == 36
    assert table(study) == inline_table


def test_one_named_gpu_gets_one_cohort_at_a_time(monkeypatch):
    import torch

    from kdtemp.study.executors import LocalExecutor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert LocalExecutor(from_dict(ExecutorConfig, {"kind": "local", "device": "cuda:1"})).slots == ["cuda:1"]


def test_a_local_worker_hands_over_a_finished_member_while_its_cohort_trains(tmp_path, monkeypatch):
    """The cohort holds in the long member's second epoch until the driver has recorded the short
    one (the plug-in objective waits for a flag the driver's record sets), so its run folder then
    shows one epoch: the short member was recorded from the middle of its cohort's training."""
    from kdtemp.engine.storage import RunFolder
    from kdtemp.study import Store
    from helpers.trust import BASE

    flag = tmp_path / "flag"
    monkeypatch.setenv("KDTEMP_TEST_FLAG", str(flag))
    data = {"name": "handover", "base": BASE, "seeds": [0],
            "zip": [{"student.epochs": [1, 3], "student.objective": ["kd", "helpers.blocking:loss"]}],
            "executor": {"kind": "local", "workers": 1, "threads": 1}}
    study = load_study(write_study(tmp_path / "s.yaml", data), output=tmp_path / "out")
    short, long = sorted(study.runs, key=lambda run: run.spec.student.epochs)
    seen = {}
    real = Store.record

    def record(self, result):
        real(self, result)
        if result["run_id"] == short.run_id and "long" not in seen:  # the long member's folder at that moment
            seen["long"] = (RunFolder(study.output / "runs", long.run_id).read_metrics() or {}).get("epochs_done", 0)
            flag.touch()

    monkeypatch.setattr(Store, "record", record)
    assert run_study(study, progress=False)["done"] == 2
    assert seen["long"] <= 1  # recorded in the middle of the cohort (at most the long one's first epoch done)


def test_workers_times_threads_fit_the_cores_by_default(monkeypatch):
    import torch

    from kdtemp.study import executors
    from kdtemp.study.executors import LocalExecutor

    monkeypatch.setattr(executors, "available_cores", lambda: 16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = LocalExecutor(from_dict(ExecutorConfig, {"kind": "local"}))
    assert (len(cpu.slots), cpu.threads) == (8, 2)
    assert LocalExecutor(from_dict(ExecutorConfig, {"kind": "local", "workers": 3})).threads == 5
    gpu = LocalExecutor(from_dict(ExecutorConfig, {"kind": "local", "device": "cuda:0", "workers": 4}))
    assert (len(gpu.slots), gpu.threads) == (4, 4)  # GPU workers share the cores too
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert LocalExecutor(from_dict(ExecutorConfig, {"kind": "local"})).threads == 2

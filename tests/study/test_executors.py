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

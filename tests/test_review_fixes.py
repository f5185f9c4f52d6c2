"""Regressions found by a review of the trust and stage work: each would have been a silent
wrong result or a crash."""

import pytest

from kdtemp.config import from_dict
from kdtemp.tasks.image.data import DataConfig
from kdtemp.engine import run_cohort
from kdtemp.engine.config import run_id
from kdtemp.report import build_report
from kdtemp.study import ExecutorConfig, Store, load_study, run_study, store_path
from kdtemp.study.recipes import CIFAR100_MEAN

from engine_helpers import cohort, member
from test_folder_split import pool
from trust_helpers import BASE, image_folder, study, write_yaml


def test_a_recipe_fills_mappings_that_an_axis_replaces(tmp_path):
    base = {**BASE, "recipe": "classic_cifar", "student": {"model": {"name": "resnet20"}, "epochs": 3}}
    s = load_study(write_yaml(tmp_path / "s.yaml", study(base=base, grid={"student.model": [{"name": "resnet20"},
                                                                                              {"name": "resnet32"}]},
                                                         presets=["optimizers"])))
    for run in s.runs:  # the axis set whole mappings; the recipe still fills what they do not say
        assert run.spec.student.model.mean == CIFAR100_MEAN and run.spec.student.optimizer.schedule == "step"


def test_a_threshold_the_user_gave_is_kept(tmp_path):
    config = cohort([member(objective="energy_kd", objective_params={"low": -1e9}, epochs=1)])
    (result,) = run_cohort(config, output=tmp_path, progress=False)
    assert set(result.derived["dataset_constants"]) == {"high"}  # only the missing one was computed


def test_the_report_shows_only_the_runs_of_the_current_file(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", study(grid={"student.temperature": [1, 4]}))
    run_study(load_study(path, output=tmp_path / "out"), progress=False)
    path = write_yaml(tmp_path / "s.yaml", study(grid={"student.temperature": [2]}))  # the file was edited
    run_study(load_study(path, output=tmp_path / "out"), progress=False)
    report = build_report(tmp_path / "out")
    text = (report.folder / "heatmap_final.md").read_text()
    assert "T=2" in text and "T=1" not in text and "T=4" not in text
    with Store(tmp_path / "out" / "study.sqlite", readonly=True) as store:
        assert len(store.runs()) == 3  # the earlier runs are kept, not shown


def test_a_failed_preparation_never_marks_finished_runs_failed(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", study())
    s = load_study(path, output=tmp_path / "out")
    run_study(s, progress=False)
    with Store(store_path(s)) as store:
        store.record_failure([r.run_id for r in s.runs], "something failed later")
        assert {r["status"] for r in store.runs()} == {"done"}


def test_one_named_gpu_gets_one_cohort_at_a_time(monkeypatch):
    import torch

    from kdtemp.study.executors import LocalExecutor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert LocalExecutor(from_dict(ExecutorConfig, {"kind": "local", "device": "cuda:1"})).slots == ["cuda:1"]


def test_an_edited_split_file_is_other_data(tmp_path):
    root = pool(tmp_path / "pool", {"ant": 3, "bee": 3})
    split = tmp_path / "split.txt"
    split.write_text("ant/000.png train\nant/001.png train\nant/002.png test\n"
                     "bee/000.png train\nbee/001.png train\nbee/002.png test\n")
    data = from_dict(DataConfig, {"dataset": "folder", "root": str(root), "split_file": str(split), "resolution": 8})
    before_id = run_id(cohort([], data=data), member())
    first = data.load("test")
    split.write_text(split.read_text().replace("ant/002.png test", "ant/002.png train").replace(
        "ant/000.png train", "ant/000.png test"))
    assert run_id(cohort([], data=data), member()) != before_id
    assert not (first.images == data.load("test").images).all()  # not the stale cached split


def test_two_folders_of_one_name_are_two_rows(tmp_path):
    roots = [image_folder(tmp_path / "a" / "birds"), image_folder(tmp_path / "b" / "birds")]
    base = {**BASE, "data": {"dataset": "folder", "resolution": 8}, "batch_size": 6}
    s = load_study(write_yaml(tmp_path / "s.yaml", study(base=base, grid={"data.root": [str(r) for r in roots]})),
                   output=tmp_path / "out")
    run_study(s, progress=False)
    rows = [line for line in (build_report(s.output).folder / "heatmap_final.md").read_text().splitlines()
            if line.startswith("| data")]
    assert len(rows) == 2  # not averaged together as if they were seeds of one setting

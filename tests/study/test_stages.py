"""Preparation stages: a study that prepares its own teachers, from one file, killed and resumed."""

import csv
import io
import os

import pytest
import torch

from kdtemp.cli import main
from kdtemp.engine.storage import RunFolder
from kdtemp.tasks.image.models import ModelConfig, create_model
from kdtemp.study import Store, export, load_study, run_study, store_path

from helpers.study import epoch_events, kill_in_each_stage
from helpers.trust import BASE, write_yaml

EPOCHS = 3


def two_stage(general_weights: str) -> dict:
    """Teachers fine-tuned from general weights for 2 lengths plus one trained from scratch, then
    distillation from each at 3 temperatures."""
    return {
        "name": "two-stage",
        "prepare": {"teachers": [
            {"base": {"model": {"name": "resnet32", "init": "pretrained", "weights": general_weights},
                      "optimizer": {"lr": 3.0e-3}, "epochs": 3, "label_smoothing": 0.1},
             "grid": {"epochs": [2, 3]}},
            {"base": {"model": {"name": "resnet32", "init": "random"}, "optimizer": {"lr": 5.0e-3}, "epochs": 3}},
        ]},
        "base": {**BASE, "teacher": {"prepared": "teachers"}, "student": {**BASE["student"], "epochs": EPOCHS}},
        "grid": {"student.temperature": [1, 4, 10]},
        "seeds": [0],
        "executor": {"kind": "inline", "threads": 1},
    }


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stages")
    torch.save(create_model(ModelConfig("resnet32"), 10).state_dict(), folder / "general.pt")
    return write_yaml(folder / "study.yaml", two_stage(str(folder / "general.pt")))


def table(path, output):
    study = load_study(path, output=output)
    with Store(store_path(study), readonly=True) as store:
        rows = list(csv.DictReader(io.StringIO(export(study, store, "csv"))))
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.fixture(scope="module")
def reference(study_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("reference") / "study"
    s = load_study(study_file, output=output)
    assert run_study(s, progress=False)["done"] == 9
    return table(study_file, output), output


def test_plan_shows_the_stage_and_its_cost(study_file, tmp_path, capsys):
    assert main(["study", "plan", study_file, "--output", str(tmp_path / "study")]) == 0
    out = capsys.readouterr().out
    assert "9 runs in 3 cohorts" in out and "axes: student.temperature, teachers" in out
    assert "stage prepare: 3 models in 1 cohorts, 0 prepared already" in out
    assert "resnet32 ft 2 ep; resnet32 ft 3 ep; resnet32 scratch 3 ep" in out


def test_preparations_are_recorded_and_reused_by_another_study(study_file, reference, tmp_path, capsys):
    rows, output = reference
    with Store(output / "study.sqlite", readonly=True) as store:
        preparations = store.preparations()
    assert len(preparations) == 3 and {p["status"] for p in preparations} == {"done"}
    assert all(p["final_top1"] > 0 and len(p["curve"]) == p["epochs"] for p in preparations)
    study = load_study(study_file, output=output)
    for preparation in study.preparations:
        meta = torch.load(preparation.weights, weights_only=True)["kdtemp"]
        assert meta["run_id"] == preparation.prep_id and meta["epochs"] == preparation.config.epochs
    # another study (another output, the same prepare_output) that declares the same teachers reuses them
    before = prepared_events(output)
    other = tmp_path / "other"
    argv = [study_file, "--output", str(other), f"prepare_output={output.parent / 'prepared'}", "seeds=[1]"]
    assert main(["study", "plan", *argv]) == 0
    assert "3 prepared already" in capsys.readouterr().out
    assert main(["study", "run", *argv, "--quiet"]) == 0
    assert prepared_events(output) == before  # nothing trained again
    with Store(other / "study.sqlite", readonly=True) as store:
        assert {p["status"] for p in store.preparations()} == {"done"}


def events(output):
    return epoch_events(output / "runs")


def prepared_events(output):
    return epoch_events(output.parent / "prepared" / "runs")


@pytest.mark.slow
def test_killed_in_each_stage_and_resumed_to_the_same_table(study_file, reference, tmp_path):
    output = tmp_path / "study"
    kill_in_each_stage(study_file, output, (lambda: prepared_events(output) >= 2, lambda: events(output) >= 3))
    assert prepared_events(output) == 2 + 3 + 3  # the teacher stage finished once, after its kill
    assert main(["study", "resume", study_file, "--output", str(output), "--quiet"]) == 0
    assert table(study_file, output) == reference[0]
    for folder in (output / "runs").iterdir():
        epochs = [e["epoch"] for e in RunFolder(output / "runs", folder.name).read_events()]
        assert epochs == list(range(1, EPOCHS + 1))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "ray"])
def test_the_two_stage_study_runs_unchanged_on_other_executors(study_file, reference, tmp_path, kind):
    if kind == "ray":
        pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'kdtemp[ray]'")
    output = tmp_path / "study"
    argv = ["study", "run", study_file, "--output", str(output), "--executor", kind, "--workers", "2", "--quiet"]
    assert main(argv) == 0
    assert table(study_file, output) == reference[0]

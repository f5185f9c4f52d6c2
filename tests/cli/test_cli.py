"""The command line (``kdtemp.cli``): teacher preparation and distillation from YAML, one-line
config errors, and `study plan`, `status`, `export` and `report` (also on a path with a hash)."""

import json
import sqlite3

import pytest
import torch
import yaml

from kdtemp.cli import main
from kdtemp.study import load_study, store_path

from helpers.cli import run_cli
from helpers.study import BASE, DIGITS_STUDY, write_study
from helpers.trust import study, write_yaml


TINY_DATA = {"dataset": "digits", "resolution": 8, "train_per_class": 16, "test_per_class": 10}


TINY_AUGMENT = {"randaugment_ops": 0, "horizontal_flip": False, "mix": True}


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return str(path)


def teacher_yaml(tmp_path):
    return write(tmp_path / "teacher.yaml", {
        "data": TINY_DATA, "augment": TINY_AUGMENT, "batch_size": 32, "device": "cpu",
        "model": {"name": "resnet20", "init": "random"}, "optimizer": {"lr": 5e-3},
        "epochs": 2, "output": str(tmp_path / "teacher"),
    })


def distill_yaml(tmp_path, **changes):
    data = {
        "data": TINY_DATA, "augment": TINY_AUGMENT, "batch_size": 32, "device": "cpu",
        "teacher": {"name": "resnet20", "init": "checkpoint", "weights": str(tmp_path / "teacher" / "teacher.pt")},
        "student": {"model": {"name": "resnet20"}, "objective": "kd", "epochs": 2},
        "temperatures": [1, 4],
        "members": [{}, {"optimizer.name": "sgd", "optimizer.lr": 0.05}],
        "output": str(tmp_path / "distill"),
    }
    data.update(changes)
    return write(tmp_path / "distill.yaml", data)


@pytest.mark.slow
def test_teacher_then_distill_from_yaml(tmp_path, capsys):
    assert main(["teacher", teacher_yaml(tmp_path), "--quiet"]) == 0
    checkpoint = torch.load(tmp_path / "teacher" / "teacher.pt", map_location="cpu", weights_only=False)
    meta = checkpoint["kdtemp"]
    assert meta["kind"] == "teacher" and meta["epochs"] == 2 and meta["dataset"]["dataset"] == "digits"
    assert meta["origin"] == {"kind": "scratch", "init": "random", "source": None, "epochs": 2}
    assert "teacher resnet20: top-1" in capsys.readouterr().out

    assert main(["distill", distill_yaml(tmp_path), "student.epochs=1", "--quiet"]) == 0
    out = capsys.readouterr().out
    for label in ("kd-T1-adamw", "kd-T4-adamw", "kd-T1-sgd", "kd-T4-sgd"):
        assert label in out
    resolved = yaml.safe_load((tmp_path / "distill" / "config.yaml").read_text())
    assert resolved["student"]["epochs"] == 1  # the override is part of the saved config
    runs = sorted((tmp_path / "distill" / "runs").iterdir())
    assert len(runs) == 4
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["status"] == "done" and metrics["epochs_done"] == 1
    # the teacher loaded from its checkpoint scores what its preparation recorded
    assert metrics["teacher"]["top1"] == pytest.approx(meta["top1"], abs=1e-4)
    member = yaml.safe_load((runs[0] / "config.yaml").read_text())
    assert member["batch_size"] == 32 and member["member"]["epochs"] == 1


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.dataset=imagenet", "data.dataset: unknown dataset 'imagenet'; allowed:"),
        ("student.model.name=resnet9000", "student.model.name: unknown model 'resnet9000'"),
        ("student.objective=kl2", "student.objective: unknown objective 'kl2'; allowed:"),
        ("student.temperature=0", "student.temperature: must be in [0.1, 100] (the range every objective is tested finite in); got 0.0"),
        ("temperatures=[4,-1]", "temperatures[1]: must be in [0.1, 100]"),
        ("student.epochs=0", "student.epochs: must be >= 1; got 0"),
        ("data.dataset=cifar10", "data.root: dataset 'cifar10' needs a root folder"),
        ("teacher.weights=/no/such/teacher.pt", "teacher.weights: '/no/such/teacher.pt' does not exist"),
        ("student.optimizer.name=lamb", "student.optimizer.name: 'lamb' is not allowed; allowed: 'adamw' | 'sgd'"),
        ("student.tempreature=4", "student.tempreature: unknown field; allowed:"),
    ],
)
def test_bad_configuration_stops_with_one_line_before_any_work(tmp_path, capsys, override, message):
    (tmp_path / "teacher").mkdir()
    torch.save({}, tmp_path / "teacher" / "teacher.pt")
    assert main(["distill", distill_yaml(tmp_path), override, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdtemp: error: ") and len(err.splitlines()) == 1
    assert message in err
    assert not (tmp_path / "distill").exists()  # nothing was written, nothing trained


def test_member_variant_errors_name_the_member(tmp_path, capsys):
    (tmp_path / "teacher").mkdir()
    torch.save({}, tmp_path / "teacher" / "teacher.pt")
    path = distill_yaml(tmp_path, members=[{}, {"objective": "nope"}])
    assert main(["distill", path]) == 2
    assert "members[1].objective: unknown objective 'nope'" in capsys.readouterr().err


def test_missing_config_file(capsys):
    assert main(["teacher", "/no/such/config.yaml"]) == 2
    assert "config file '/no/such/config.yaml' does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["cifar10_teacher.yaml", "cifar10_distill.yaml", "pets_teacher.yaml",
                                  "pets_baseline_study.yaml", "digits_study.yaml"])
def test_examples_are_valid_once_their_paths_exist(tmp_path, name):
    from pathlib import Path

    from kdtemp.config import from_dict, load_yaml
    from kdtemp.engine import DistillConfig, TeacherConfig
    from kdtemp.study import StudyFile, expand

    from kdtemp.paths import examples

    data = load_yaml(examples()[name.removesuffix(".yaml")])
    torch.save({}, tmp_path / "teacher.pt")

    def localise(config):
        if config.get("data", {}).get("root"):
            config["data"]["root"] = str(tmp_path)
        if config.get("teacher", {}).get("weights"):
            config["teacher"]["weights"] = str(tmp_path / "teacher.pt")

    if "base" in data:
        localise(data["base"])
        assert len(expand(from_dict(StudyFile, data))) >= 18
    elif "model" in data:
        localise(data)
        from_dict(TeacherConfig, data)
    else:
        localise(data)
        assert len(from_dict(DistillConfig, data).cohort().members) == 18


def test_plan_status_and_export_from_the_cli(tmp_path, capsys):
    small = {**DIGITS_STUDY, "presets": [], "grid": {"student.temperature": [1, 4]}, "zip": [], "seeds": [0],
             "base": {**BASE, "student": {**BASE["student"], "epochs": 1}}}
    path = write_study(tmp_path / "s.yaml", small)
    out = ["--output", str(tmp_path / "out")]
    assert main(["study", "plan", path, *out]) == 0
    text = capsys.readouterr().out
    assert "2 runs in 1 cohorts (1 seeds)" in text
    assert "data: digits: 10 classes, 160 train / 100 test images, stored at 8x8" in text
    assert "~320 student image-steps" in text and "~160 teacher forward passes" in text and "(50% saved by cohorts)" in text
    assert main(["study", "status", path, *out]) == 0
    assert "not started" in capsys.readouterr().out
    assert main(["study", "run", path, *out, "--quiet"]) == 0
    assert "2 done" in capsys.readouterr().out
    assert main(["study", "status", path, *out]) == 0
    assert "2 done, 0 failed" in capsys.readouterr().out.replace("0 pending, 0 running, ", "")
    assert main(["study", "export", path, *out, "--format", "json", "--to", str(tmp_path / "r.json")]) == 0
    exported = json.loads((tmp_path / "r.json").read_text())
    assert [row["student.temperature"] for row in exported] == [1, 4]
    assert len(exported[0]["curve"]) == 1 and exported[0]["config"]["student"]["temperature"] == 1.0
    capsys.readouterr()
    assert main(["study", "run", path, *out, "--quiet"]) == 0  # nothing left to train
    assert "2 done" in capsys.readouterr().out
    with sqlite3.connect(store_path(load_study(path, output=tmp_path / "out"))) as connection:
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2


def test_resume_without_a_store_is_an_error(tmp_path, capsys):
    path = write_study(tmp_path / "s.yaml", DIGITS_STUDY)
    assert main(["study", "resume", path, "--output", str(tmp_path / "nothing")]) == 2
    assert "has no store" in capsys.readouterr().err


def test_a_hash_in_the_study_path_keeps_status_export_and_report_working(tmp_path, capsys):
    folder = tmp_path / "run #1?x=%41"
    path = write_yaml(tmp_path / "s.yaml", study(grid=None))
    assert main(["study", "run", path, "--output", str(folder), "--quiet"]) == 0
    for argv in (["study", "status", path, "--output", str(folder)], ["study", "export", path, "--output", str(folder)],
                 ["report", str(folder)], ["study", "plan", path, "--output", str(folder)]):
        code, out, err = run_cli(argv, capsys)
        assert code == 0, err
    assert "1 done" in run_cli(["study", "status", path, "--output", str(folder)], capsys)[1]

"""Studies: expansion, validation, the three executors, and surviving a SIGKILLed driver."""

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kdtemp.cli import main
from kdtemp.engine.storage import RunFolder
from kdtemp.study import Store, export, load_study, run_study, store_path

BASE = {
    "data": {"dataset": "digits", "resolution": 8, "train_per_class": 16, "test_per_class": 10},
    "augment": {"randaugment_ops": 0, "horizontal_flip": False, "mix": True},
    "teacher": {"name": "resnet20", "init": "random"},
    "batch_size": 32,
    "student": {"model": {"name": "resnet20"}, "objective": "kd", "epochs": 2},
}

# 9 temperatures x 2 optimizers x 2 seeds = 36 runs, in 2 cohorts (one per seed).
DIGITS_STUDY = {
    "name": "digits-t-x-opt",
    "base": BASE,
    "presets": ["temperatures"],
    "zip": [{"student.optimizer.name": ["adamw", "sgd"], "student.optimizer.lr": [0.003, 0.05]}],
    "seeds": [0, 1],
    "executor": {"kind": "inline", "threads": 1},
}


def write_study(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def table(study, drop=("seconds",)):
    with Store(store_path(study), readonly=True) as store:
        rows = list(csv.DictReader(io.StringIO(export(study, store, "csv"))))
    return [{k: v for k, v in row.items() if k not in drop} for row in rows]


def test_expansion_ids_cells_and_cohorts(tmp_path):
    study = load_study(write_study(tmp_path / "s.yaml", DIGITS_STUDY), output=tmp_path / "out")
    assert len(study.runs) == 36 and len({r.run_id for r in study.runs}) == 36
    assert len(study.cohorts) == 2 and all(len(c.runs) == 18 for c in study.cohorts)
    # axes in the documented order: grid, then zip, then presets
    assert study.axis_names == ["student.optimizer.name+student.optimizer.lr", "temperatures"]
    run = study.runs[0]
    assert run.cell == {"student.optimizer.name+student.optimizer.lr": "adamw, 0.003", "temperatures": "1"}
    assert run.spec.student.temperature == 1.0 and run.spec.student.optimizer.name == "adamw"
    assert {r.spec.data_seed for r in study.cohorts[1].runs} == {1} and {r.seed for r in study.cohorts[1].runs} == {1}
    # identity is the resolved configuration: loading again gives the same ids
    again = load_study(tmp_path / "s.yaml", output=tmp_path / "out")
    assert [r.run_id for r in again.runs] == [r.run_id for r in study.runs]
    split = load_study(write_study(tmp_path / "m.yaml", {**DIGITS_STUDY, "max_cohort_size": 5}), output=tmp_path / "o2")
    assert sorted(len(c.runs) for c in split.cohorts) == [3, 3, 5, 5, 5, 5, 5, 5]


@pytest.fixture(scope="module")
def inline_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("inline")
    study = load_study(write_study(path / "s.yaml", DIGITS_STUDY), output=path / "out")
    counts = run_study(study, progress=False)
    assert counts == {"pending": 0, "running": 0, "done": 36, "failed": 0}
    return table(study)


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


def test_sigkilled_driver_resumes_without_loss_or_retraining(tmp_path, inline_table):
    study_file = {**DIGITS_STUDY, "base": {**BASE, "student": {**BASE["student"], "epochs": 3}}}
    path = write_study(tmp_path / "s.yaml", study_file)
    output = tmp_path / "out"
    reference_dir = tmp_path / "reference"
    reference = load_study(path, output=reference_dir)
    run_study(reference, progress=False)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "kdtemp.cli", "study", "run", path, "--output", str(output), "--quiet"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    study = load_study(path, output=output)
    second = study.cohorts[1]
    deadline = time.time() + 300
    # kill once the first cohort is recorded and the second is part-way through its training
    while time.time() < deadline:
        if driver.poll() is not None:
            pytest.fail(f"the driver finished before it could be killed: {driver.stderr.read().decode()[-500:]}")
        if any(RunFolder(output / "runs", r.run_id).read_events() for r in second.runs):
            break
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()

    with Store(store_path(study), readonly=True) as store:
        before = {r["run_id"]: r for r in store.runs() if r["status"] == "done"}
        statuses = {r["status"] for r in store.runs(r.run_id for r in second.runs)}
    assert len(before) == 18 and statuses == {"running"}  # first cohort recorded, second interrupted

    assert main(["study", "resume", path, "--output", str(output), "--quiet"]) == 0
    assert table(study) == table(reference)
    with Store(store_path(study), readonly=True) as store:
        after = {r["run_id"]: r for r in store.runs()}
    for run_id, row in before.items():  # nothing recorded before the kill was lost or changed
        assert after[run_id] == row
    for run in study.runs:  # no epoch of any run was trained twice
        epochs = [e["epoch"] for e in RunFolder(output / "runs", run.run_id).read_events()]
        assert epochs == sorted(set(epochs)) and len(epochs) <= 3


INVALID = [
    ({"grids": {}}, "grids: unknown field; allowed: name, base, grid"),
    ({"base": {**BASE, "student": {**BASE["student"], "tempreature": 4}}}, "base.student.tempreature: unknown field"),
    ({"grid": {"student.tempreture": [1, 2]}}, "student.tempreture: unknown field"),
    ({"seeds": "zero"}, "seeds: expected a list"),
    ({"grid": {"student.temperature": 4}}, "grid.student.temperature: expected a list"),
    ({"grid": {}}, "grid: is empty"),
    ({"grid": {"student.temperature": []}}, "grid.student.temperature: needs a non-empty list"),
    ({"grid": {"student.temperature": [1, 2]}}, "temperatures: varies 'student.temperature', which axis 'student.temperature' already varies"),
    ({"presets": ["temperatures"], "zip": [{"student.temperature": [1, 2], "student.epochs": [1, 2]}]},
     "varies 'student.temperature'"),
    ({"presets": [], "zip": [], "grid": {"student.temperature": [1, -2]}}, "student.temperature: must be in [0.1, 100] (the range every objective is tested finite in); got -2.0"),
    ({"base": {**BASE, "batch_size": 0}}, "base.batch_size: must be >= 1; got 0"),
    ({"presets": ["temperatures", "warp_speed"]}, "presets: unknown preset 'warp_speed'"),
    ({"grid": {"student.seed": [1, 2]}}, "sets student.seed, which `seeds` controls"),
    ({"zip": [{"student.optimizer.name": ["adamw", "sgd"], "student.optimizer.lr": [0.1]}]}, "lists differ in length"),
]


@pytest.mark.parametrize("change, message", INVALID)
def test_invalid_study_files_stop_with_one_line_and_nothing_runs(tmp_path, capsys, change, message):
    data = {**DIGITS_STUDY, **change}
    path = write_study(tmp_path / "bad.yaml", data)
    assert main(["study", "run", path, "--output", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdtemp: error: ") and len(err.splitlines()) == 1, err
    assert message in err, err
    assert not (tmp_path / "out").exists()


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

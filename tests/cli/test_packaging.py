"""What a user gets from the package: a version, ``python -m kdtemp``, examples by name,
study-relative paths, command-line overrides of study files, progress fit for a log file, and a
wheel that works outside the checkout."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
import yaml

from kdtemp import __version__
from kdtemp.cli import main
from kdtemp.tasks.image.models import ModelConfig, create_model
from kdtemp.paths import examples
from kdtemp.study import load_study

from helpers.trust import BASE, study, write_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_version_and_python_m(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"kdtemp {__version__}"
    result = subprocess.run([sys.executable, "-m", "kdtemp", "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == f"kdtemp {__version__}"


def test_examples_are_listed_and_copied(tmp_path, capsys, monkeypatch):
    assert {"digits_study", "digits_teacher", "cifar10_distill", "pets_baseline_study"} <= set(examples())
    assert main(["examples"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in examples())
    monkeypatch.chdir(tmp_path)
    assert main(["examples", "copy", "digits_study"]) == 0
    assert (tmp_path / "digits_study.yaml").read_text() == examples()["digits_study"].read_text()
    assert main(["examples", "copy", "digits_study"]) == 2  # never overwrites
    assert "exists already" in capsys.readouterr().err


def test_a_packaged_example_plans_by_name_from_any_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples are templates: their relative paths are the user's folder's
    (tmp_path / "runs" / "demo" / "teacher").mkdir(parents=True)
    torch.save(create_model(ModelConfig("resnet32"), 10).state_dict(), tmp_path / "runs/demo/teacher/teacher.pt")
    assert main(["study", "plan", "digits_study", "seeds=[0]", "--output", str(tmp_path / "out")]) == 0
    assert "18 runs in 1 cohorts" in capsys.readouterr().out


def test_relative_paths_in_a_study_file_resolve_against_its_folder(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    torch.save(create_model(ModelConfig("resnet20"), 10).state_dict(), folder / "teacher.pt")
    base = {**BASE, "teacher": {"name": "resnet20", "init": "checkpoint", "weights": "teacher.pt"}}
    path = write_yaml(folder / "s.yaml", study(base=base, output="results"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_study(path)
    assert s.output == folder / "results" and s.runs[0].spec.teacher.weights == str(folder / "teacher.pt")
    assert main(["study", "run", path, "--quiet"]) == 0
    assert (folder / "results" / "study.sqlite").is_file() and not (elsewhere / "results").exists()


def test_study_files_take_command_line_overrides(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", study())
    s = load_study(path, overrides=["base.student.epochs=3", "seeds=[0,1,2]", "grid.student.temperature=[2]"])
    assert len(s.runs) == 3 and {r.spec.student.epochs for r in s.runs} == {3}
    assert {r.spec.student.temperature for r in s.runs} == {2.0}
    assert "# command-line overrides: base.student.epochs=3" in s.source


def test_progress_in_a_log_is_one_line_per_epoch(tmp_path, capfd):
    from kdtemp.engine import run_cohort

    from helpers.engine import cohort, member

    run_cohort(cohort([member(epochs=2)]), output=tmp_path, progress=True)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cohort of 1:")]
    assert len(lines) == 2 and "\r" not in err
    assert "5/10 batches (50%)" in lines[0] and "epoch=1" in lines[0]


@pytest.mark.slow
def test_a_wheel_installed_in_a_fresh_venv_plans_a_packaged_example_outside_the_repo(tmp_path):
    if os.environ.get("KDTEMP_SKIP_WHEEL_TEST"):
        pytest.skip("KDTEMP_SKIP_WHEEL_TEST is set")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"),
                            str(ROOT)], capture_output=True, text=True, timeout=600)
    if built.returncode != 0 and "No matching distribution" in built.stderr + built.stdout:
        pytest.skip("building a wheel needs setuptools from the package index, which is unreachable here")
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("kdtemp-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # the dependencies (torch, timm, ...) come from this environment's site-packages, kdtemp from the wheel
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)], check=True, timeout=600)
    outside = tmp_path / "outside"
    (outside / "runs" / "demo" / "teacher").mkdir(parents=True)
    torch.save(create_model(ModelConfig("resnet32"), 10).state_dict(), outside / "runs/demo/teacher/teacher.pt")
    kdtemp = venv / "bin" / "kdtemp"
    version = subprocess.run([str(kdtemp), "--version"], capture_output=True, text=True, cwd=outside, timeout=300)
    assert version.returncode == 0 and version.stdout.strip() == f"kdtemp {__version__}", version.stderr
    where = subprocess.run([str(python), "-c", "import kdtemp; print(kdtemp.__file__)"], capture_output=True,
                           text=True, cwd=outside, timeout=300).stdout
    assert str(ROOT) not in where and "site-packages" in where  # the installed wheel, not the checkout
    planned = subprocess.run([str(kdtemp), "study", "plan", "digits_study", "seeds=[0]"], capture_output=True,
                             text=True, cwd=outside, timeout=300)
    assert planned.returncode == 0, planned.stderr
    assert "18 runs in 1 cohorts" in planned.stdout

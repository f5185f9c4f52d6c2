"""Study files for the study, executor, driver and command-line tests."""

import csv
import io
import copy
from pathlib import Path

import yaml

from kdtemp.study import Store, export, store_path

from helpers import trust

BASE = {**copy.deepcopy(trust.BASE), "student": {**trust.BASE["student"], "epochs": 2}}
"""The trust tests' tiny digits base (helpers.trust.BASE), trained for two epochs."""

# 9 temperatures x 2 optimizers x 2 seeds = 36 runs, in 2 cohorts (one per seed).
DIGITS_STUDY = {
    "name": "digits-t-x-opt",
    "base": BASE,
    "presets": ["temperatures"],
    "zip": [{"student.optimizer.name": ["adamw", "sgd"], "student.optimizer.lr": [0.003, 0.05]}],
    "seeds": [0, 1],
    "executor": {"kind": "inline", "threads": 1},
}

# The methods of the ``temperature_methods`` preset that take a temperature (the ``finished``
# fixture of tests/conftest.py trains them at T = 1 and 4, plus CTKD and DTS once).
METHODS_WITH_T = ["kd", "ttm", "wttm", "normkd", "ats", "dtkd", "energy_kd", "ls_kd"]


def write_study(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def table(study, drop=("seconds",)):
    with Store(store_path(study), readonly=True) as store:
        rows = list(csv.DictReader(io.StringIO(export(study, store, "csv"))))
    return [{k: v for k, v in row.items() if k not in drop} for row in rows]


def epoch_events(runs: Path) -> int:
    """Finished epochs recorded in the run folders under ``runs`` (``events.jsonl`` lines)."""
    from kdtemp.engine.storage import RunFolder

    return sum(len(RunFolder(runs, f.name).read_events()) for f in runs.iterdir()) if runs.is_dir() else 0


def wait_for(condition, process, seconds: float = 240) -> None:
    """Poll ``condition`` until it holds; fail when the driver ``process`` ends first or time runs out."""
    import time

    import pytest

    end = time.time() + seconds
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the driver ended first: {process.stderr.read().decode()[-800:]}")
        if time.time() > end:
            pytest.fail("timed out")
        time.sleep(0.02)


def kill_in_each_stage(study_file, output: Path, stages) -> None:
    """Run ``kdtemp study run`` on ``study_file`` once per condition of ``stages`` and SIGKILL the
    driver as soon as that condition holds (e.g. a stage's first finished epochs)."""
    import signal
    import subprocess
    import sys

    command = [sys.executable, "-m", "kdtemp.cli", "study", "run", str(study_file), "--output", str(output), "--quiet"]
    for stage_reached in stages:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(stage_reached, process)
        process.send_signal(signal.SIGKILL)
        process.wait()

"""The study driver (``kdtemp.study.driver``): a SIGKILLed driver resumes without loss or retraining."""

import os
import signal
import subprocess
import sys
import time

import pytest

from kdtemp.cli import main
from kdtemp.engine.storage import RunFolder
from kdtemp.study import Store, load_study, run_study, store_path

from helpers.study import BASE, DIGITS_STUDY, table, write_study


@pytest.mark.slow
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

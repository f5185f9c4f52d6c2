"""Fault injection: drivers and workers killed at random points, two drivers at once, damaged files.

In every case the study ends with the same exported table as an uninterrupted run, and no epoch
appears twice (or goes missing) in any run's ``events.jsonl``. Seeded and bounded in time: the
kill points come from ``random.Random(SEED)`` and every wait has a deadline.
"""

import csv
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from kdtemp.cli import main
from kdtemp.engine.storage import RunFolder
from kdtemp.study import Store, export, load_study, store_path

SEED = 20261130
EPOCHS = 4
STUDY = {
    "name": "faults",
    "base": {
        "data": {"dataset": "digits", "resolution": 8, "train_per_class": 16, "test_per_class": 10},
        "augment": {"randaugment_ops": 0, "horizontal_flip": False, "mix": True},
        "teacher": {"name": "resnet20", "init": "random"},
        "batch_size": 32,
        "student": {"model": {"name": "resnet20"}, "epochs": EPOCHS},
    },
    "grid": {"student.temperature": [1, 4]},
    "seeds": [0, 1],
    "executor": {"kind": "inline", "threads": 1, "workers": 2},
}
DEADLINE = 240


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY, sort_keys=False))
    return path


def table(path: Path, output: Path) -> list[dict]:
    study = load_study(path, output=output)
    with Store(store_path(study), readonly=True) as store:
        rows = list(csv.DictReader(io.StringIO(export(study, store, "csv"))))
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def events(output: Path) -> dict[str, list[int]]:
    return {folder.name: [e["epoch"] for e in RunFolder(output / "runs", folder.name).read_events()]
            for folder in (output / "runs").iterdir() if folder.is_dir()}


def assert_consistent(output: Path) -> None:
    """Every run has each epoch exactly once, in order, in its event log."""
    logs = events(output)
    assert len(logs) == 4
    for run, epochs in logs.items():
        assert epochs == list(range(1, EPOCHS + 1)), (run, epochs)


@pytest.fixture(scope="module")
def reference(study_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("reference") / "out"
    assert main(["study", "run", str(study_file), "--output", str(output), "--quiet"]) == 0
    rows = table(study_file, output)
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
    return rows


def driver(study_file: Path, output: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "kdtemp.cli", "study", "run", str(study_file), "--output", str(output), "--quiet",
               *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ,
                                                                                           "PYTHONUNBUFFERED": "1"})


def event_count(output: Path) -> int:
    runs = output / "runs"
    if not runs.is_dir():
        return 0
    return sum(len(RunFolder(runs, f.name).read_events()) for f in runs.iterdir() if f.is_dir())


def wait_for(condition, process: subprocess.Popen | None = None, deadline: float = DEADLINE) -> None:
    end = time.time() + deadline
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the driver ended first: {process.stderr.read().decode()[-800:]}")
        if time.time() > end:
            pytest.fail("timed out")
        time.sleep(0.02)


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            listed = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in listed]
        frontier += [int(c) for c in listed]
    return found


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def resume(study_file: Path, output: Path, *extra: str) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-m", "kdtemp.cli", "study", "resume", str(study_file), "--output",
                             str(output), "--quiet", *extra], capture_output=True, text=True, timeout=DEADLINE)
    return result.returncode, result.stderr


# --- SIGKILL of the driver at random points --------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("kind, trial", [("inline", 0), ("inline", 1), ("inline", 2), ("local", 0), ("local", 1)])
def test_driver_killed_at_a_random_point_resumes_to_the_same_table(study_file, reference, tmp_path, kind, trial):
    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs /proc to find the driver's workers")
    rng = random.Random(f"{SEED}-{kind}-{trial}")
    output = tmp_path / "out"
    target = rng.randint(1, 4 * EPOCHS - 1)  # kill once this many epochs (of 16) have been logged, plus a jitter
    process = driver(study_file, output, "--executor", kind)
    wait_for(lambda: event_count(output) >= target, process)
    time.sleep(rng.uniform(0.0, 0.3))
    workers = children(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    end = time.time() + 20
    while any(alive(w) for w in workers) and time.time() < end:  # workers cannot outlive their driver
        time.sleep(0.05)
    assert not [w for w in workers if alive(w)], "a worker outlived its driver"
    code, err = resume(study_file, output)
    assert code == 0, err
    assert table(study_file, output) == reference
    assert_consistent(output)


# --- a worker dies; two drivers at once ------------------------------------------------------------------

@pytest.mark.slow
def test_a_killed_worker_fails_no_other_cohort(study_file, reference, tmp_path):
    output = tmp_path / "out"
    process = driver(study_file, output, "--executor", "local", "--workers", "2")
    wait_for(lambda: len(children(process.pid)) >= 2 and event_count(output) >= 2, process)
    victim = next(c for c in children(process.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text())
    os.kill(victim, signal.SIGKILL)
    out, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0, err.decode()
    assert "died (killed by signal 9)" in err.decode() and "Traceback" not in err.decode()
    assert table(study_file, output) == reference
    assert_consistent(output)


@pytest.mark.slow
def test_two_drivers_on_one_study_train_everything_once(study_file, reference, tmp_path):
    output = tmp_path / "out"
    first = driver(study_file, output)
    wait_for(lambda: event_count(output) >= 1, first)
    first.send_signal(signal.SIGSTOP)  # hold the first driver mid-study while the second one starts
    try:
        second = driver(study_file, output)
        _, err = second.communicate(timeout=DEADLINE)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2
    message = err.decode().strip()
    assert message.startswith("kdtemp: error: study:") and "is being run by another driver" in message
    assert f"pid {first.pid}" in message and len(message.splitlines()) == 1
    assert first.wait(timeout=DEADLINE) == 0
    assert table(study_file, output) == reference
    assert_consistent(output)


def test_status_tells_a_dead_driver_from_a_live_one(study_file, tmp_path, capsys):
    output = tmp_path / "out"
    process = driver(study_file, output)
    wait_for(lambda: event_count(output) >= 2, process)
    assert main(["study", "status", str(study_file), "--output", str(output)]) == 0
    live = capsys.readouterr().out
    assert "a driver is running it now" in live and f"pid {process.pid}" in live
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert main(["study", "status", str(study_file), "--output", str(output)]) == 0
    dead = capsys.readouterr().out
    assert "interrupted" in dead and "0 running" not in dead and "`kdtemp study resume` continues them" in dead


# --- damaged files --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def interrupted(study_file, tmp_path_factory):
    """A study killed while its second cohort trains: the first cohort done, the second part-way."""
    output = tmp_path_factory.mktemp("interrupted") / "out"
    process = driver(study_file, output)
    study = load_study(study_file, output=output)
    second = study.cohorts[1]
    wait_for(lambda: all(len(RunFolder(output / "runs", r.run_id).read_events()) >= 2 for r in second.runs), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return output, [r.run_id for r in second.runs]


def copy_of(interrupted, tmp_path) -> tuple[Path, list[str]]:
    output, unfinished = interrupted
    target = tmp_path / "out"
    shutil.copytree(output, target)
    return target, unfinished


def checkpoint(output: Path, run_id: str) -> Path:
    return output / "runs" / run_id / "checkpoint.pt"


@pytest.mark.parametrize("damage", ["truncated", "empty", "one-float-changed", "garbled"])
def test_a_damaged_checkpoint_restarts_only_its_run(study_file, reference, interrupted, tmp_path, damage):
    output, unfinished = copy_of(interrupted, tmp_path)
    path = checkpoint(output, unfinished[0])
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbled":
        data = bytearray(path.read_bytes())
        data[len(data) // 2: len(data) // 2 + 64] = os.urandom(64)
        path.write_bytes(bytes(data))
    else:  # still a valid file, but one weight differs from what was written: only the checksum can tell
        state = torch.load(path, weights_only=True)
        key = next(k for k, v in state["model"].items() if v.is_floating_point())
        state["model"][key].view(-1)[0] += 1e-3
        torch.save(state, path)
    other = checkpoint(output, unfinished[1]).read_bytes()
    code, err = resume(study_file, output)
    assert code == 0, err
    assert f"run {unfinished[0]}" in err and "started again from scratch" in err
    assert table(study_file, output) == reference
    assert_consistent(output)
    assert other != checkpoint(output, unfinished[1]).read_bytes()  # the other run went on from its own checkpoint


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_data_cache_is_rebuilt(study_file, reference, interrupted, tmp_path, damage):
    output, _ = copy_of(interrupted, tmp_path)
    cache = Path(os.environ["KDTEMP_CACHE"])
    damaged = sorted(cache.glob("digits-train-*.pt"))
    assert damaged
    for path in damaged:
        data = path.read_bytes()
        if damage == "truncated":
            path.write_bytes(data[: len(data) // 3])
        else:
            middle = len(data) // 2
            path.write_bytes(data[:middle] + bytes(255 - b for b in data[middle:middle + 256]) + data[middle + 256:])
    code, err = resume(study_file, output)
    assert code == 0, err
    assert "dataset cache" in err and "rebuilt" in err
    assert table(study_file, output) == reference
    assert_consistent(output)


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_store_is_one_line_and_rebuilds_from_the_run_folders(study_file, reference, interrupted, tmp_path,
                                                                       capsys, damage):
    output, _ = copy_of(interrupted, tmp_path)
    code, err = resume(study_file, output)
    assert code == 0, err
    sqlite = output / "study.sqlite"
    data = sqlite.read_bytes()
    if damage == "truncated":
        sqlite.write_bytes(data[: len(data) // 2])
    else:
        sqlite.write_bytes(data[:100] + os.urandom(len(data) - 200) + data[-100:])
    for argv in (["study", "status"], ["study", "export"], ["study", "plan"], ["study", "resume"], ["report"]):
        target = [str(output)] if argv == ["report"] else [str(study_file), "--output", str(output)]
        assert main([*argv, *target]) == 2
        message = capsys.readouterr().err.strip()
        assert len(message.splitlines()) == 1 and "is damaged" in message and "kdtemp study rebuild" in message, message
    assert main(["study", "rebuild", str(study_file), "--output", str(output)]) == 0
    assert "4 done" in capsys.readouterr().out
    assert table(study_file, output) == reference
    assert main(["study", "resume", str(study_file), "--output", str(output), "--quiet"]) == 0  # teacher diagnostics
    assert table(study_file, output) == reference


def test_a_kill_between_checkpoint_and_event_loses_nothing(study_file, reference, interrupted, tmp_path):
    output, unfinished = copy_of(interrupted, tmp_path)
    folder = RunFolder(output / "runs", unfinished[0])
    lines = folder.events_path.read_text().splitlines()
    folder.events_path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:5])  # last line lost, half written
    metrics = folder.read_metrics()
    code, err = resume(study_file, output)
    assert code == 0, err
    assert table(study_file, output) == reference
    assert_consistent(output)
    assert folder.read_metrics()["status"] == "done" and metrics["epochs_done"] < EPOCHS


def test_a_kill_after_the_last_checkpoint_leaves_metrics_done(study_file, reference, tmp_path):
    output = tmp_path / "out"
    assert main(["study", "run", str(study_file), "--output", str(output), "--quiet"]) == 0
    run = next((output / "runs").iterdir()).name
    folder = RunFolder(output / "runs", run)
    metrics = folder.read_metrics()
    folder.write_metrics({**metrics, "status": "running"})  # as if killed before metrics.json was rewritten
    folder.events_path.write_text("\n".join(folder.events_path.read_text().splitlines()[:-1]) + "\n")
    import sqlite3

    with sqlite3.connect(output / "study.sqlite") as connection:  # the driver never recorded the result
        connection.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (run,))
    code, err = resume(study_file, output)
    assert code == 0, err
    assert folder.read_metrics()["status"] == "done"
    assert table(study_file, output) == reference
    assert_consistent(output)


def test_temporaries_of_interrupted_writes_are_removed(study_file, reference, interrupted, tmp_path):
    output, unfinished = copy_of(interrupted, tmp_path)
    import socket

    host = socket.gethostname().replace("-", "_")
    stale = output / "runs" / unfinished[0] / f".checkpoint.pt.tmp-{host}-999999999"
    stale.write_bytes(b"half a checkpoint")
    cache_stale = Path(os.environ["KDTEMP_CACHE"]) / f".digits-train-x.pt.tmp-{host}-999999999"
    cache_stale.write_bytes(b"half a cache")
    code, err = resume(study_file, output)
    assert code == 0, err
    assert not stale.exists() and not cache_stale.exists()
    assert table(study_file, output) == reference


def test_resuming_with_another_thread_count_says_so(study_file, interrupted, tmp_path):
    output, unfinished = copy_of(interrupted, tmp_path)
    code, err = resume(study_file, output, "--threads", "2")
    assert code == 0, err
    assert "resumed after epoch" in err and "with 2 CPU threads" in err and "ran with 1" in err
    with Store(output / "study.sqlite", readonly=True) as store:
        changed = [r for r in store.runs() if r["run_id"] in unfinished]
    assert all(r["status"] == "done" for r in changed)


def test_an_executor_that_cannot_start_leaves_no_run_running(study_file, tmp_path, capsys, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra")

    def unreachable(*args, **kwargs):
        raise ConnectionError("could not reach the head node")

    monkeypatch.setattr(ray, "init", unreachable)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    output = tmp_path / "out"
    assert main(["study", "run", str(study_file), "--output", str(output), "--executor", "ray", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "executor.ray_address: could not start or join Ray" in err and len(err.strip().splitlines()) == 1
    with Store(output / "study.sqlite", readonly=True) as store:
        assert {r["status"] for r in store.runs()} == {"pending"}

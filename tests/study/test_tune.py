"""``kdtemp tune``: successive halving over a study's temperature axis on a validation split. It chooses
from validation scores alone; a dropped candidate resumed to full later by ``kdtemp study run`` ends bit
for bit as if it had never stopped; a tune killed with SIGKILL resumes to the same choice; bad input is one
line before any work."""

import copy
import json
import signal
import subprocess
import sys

import pytest

from kdtemp.cli import main
from kdtemp.study import load_study
from kdtemp.study.tune import default_rungs

from helpers.study import BASE, epoch_events, table, wait_for, write_study


def study(**changes) -> dict:
    base = copy.deepcopy(BASE)
    base["data"]["validation"] = 0.25
    base["student"]["epochs"] = 4
    data = {"name": "tune-me", "base": base, "grid": {"student.temperature": [1, 2, 4, 8]}, "seeds": [0, 1],
            "executor": {"kind": "inline", "threads": 1}}
    data.update(changes)
    return data


def test_the_default_is_one_rung_at_half_the_budget():
    assert default_rungs(9, 3, 9) == [4] and default_rungs(9, 3, 5) == [2] and default_rungs(4, 2, 8) == [4]
    assert default_rungs(2, 3, 2) == [1]
    assert default_rungs(9, 3, 1) == [] and default_rungs(1, 3, 10) == []  # nothing to compare before the end


def test_tune_chooses_on_validation_and_records_its_cost(tmp_path, capsys):
    path = write_study(tmp_path / "study.yaml", study())
    assert main(["tune", path, "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "tune.json").read_text())
    [setting] = record["settings"]
    assert setting["rungs"] == [2] and record["metric"] == "val_top1" and record["seeds"] == [0]
    first, final = setting["history"]  # 4 candidates, eta 3: ceil(4 / 3) = 2 go on from half the budget
    assert len(first["scores"]) == 4 and first["kept"] == list(first["scores"])[:2] and first["epoch"] == 2
    assert set(final["scores"]) == set(first["kept"]) and final["epoch"] == 4
    assert final["kept"] == [setting["chosen"]] and setting["validation"] == final["scores"][setting["chosen"]]
    assert final["scores"][setting["chosen"]] == max(final["scores"].values())
    assert setting["student_epochs"] == 2 * 2 + 2 * 4  # two dropped at epoch 2, two trained to 4
    assert setting["grid_student_epochs"] == 4 * 4 * 2 and setting["cost_ratio"] == pytest.approx(12 / 32)
    assert setting["regret"] is None and "regret: the full grid is not finished" in out


def test_a_dropped_candidate_resumed_later_ends_as_if_it_never_stopped(tmp_path):
    """The study run after a tune trains the dropped candidates on from their rung checkpoints; every
    result equals the study run without a tune, and tune then states its regret."""
    tuned = write_study(tmp_path / "tuned.yaml", study(output=str(tmp_path / "tuned")))
    plain = write_study(tmp_path / "plain.yaml", study(output=str(tmp_path / "plain")))
    assert main(["tune", tuned, "--quiet"]) == 0
    assert main(["study", "run", tuned, "--quiet"]) == 0
    assert main(["study", "run", plain, "--quiet"]) == 0
    assert table(load_study(tuned)) == table(load_study(plain))
    assert main(["tune", tuned, "--quiet"]) == 0  # every run done: nothing trains, the regret is known
    setting = json.loads((tmp_path / "tuned" / "tune.json").read_text())["settings"][0]
    assert setting["regret"] is not None and setting["regret"] >= 0 and setting["grid_seeds"] == 2


@pytest.mark.slow
def test_a_tune_killed_with_sigkill_resumes_to_the_same_choice(tmp_path):
    whole = write_study(tmp_path / "whole.yaml", study(output=str(tmp_path / "whole")))
    killed = write_study(tmp_path / "killed.yaml", study(output=str(tmp_path / "killed")))
    assert main(["tune", whole, "--quiet"]) == 0
    command = [sys.executable, "-m", "kdtemp.cli", "tune", killed, "--quiet"]
    for reached in (3, 9):  # inside the first rung, then past it
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: epoch_events(tmp_path / "killed" / "runs") >= reached, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert main(["tune", killed, "--quiet"]) == 0
    first = json.loads((tmp_path / "whole" / "tune.json").read_text())["settings"][0]
    second = json.loads((tmp_path / "killed" / "tune.json").read_text())["settings"][0]
    assert second["history"] == first["history"] and second["chosen"] == first["chosen"]


@pytest.mark.parametrize("changes, message", [
    ({"grid": {"student.optimizer.lr": [0.001, 0.01]}}, "tune: study 'tune-me' has no temperature axis"),
    ({"tune": {"rungs": [1, 4]}}, "tune.rungs: [4] lie at or beyond the budget of 4 epochs"),
    ({"tune": {"seeds": [7]}}, "tune.seeds: [7] are not seeds of the study"),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, changes, message):
    path = write_study(tmp_path / "study.yaml", study(**changes))
    assert main(["tune", path, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"kdtemp: error: {message}") and "\n" not in err
    assert not (tmp_path / "out").exists()  # nothing written


def test_without_a_validation_split_or_with_one_too_large(tmp_path, capsys):
    data = study()
    del data["base"]["data"]["validation"]
    assert main(["tune", write_study(tmp_path / "a.yaml", data), "--output", str(tmp_path / "a")]) == 2
    assert "data.validation: tune chooses on a validation split held out of training, never on test" in capsys.readouterr().err
    data["base"]["data"]["validation"] = 1000
    assert main(["tune", write_study(tmp_path / "b.yaml", data), "--output", str(tmp_path / "b")]) == 2
    assert "data.validation: holds out 1000 of the training split's 160 samples" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

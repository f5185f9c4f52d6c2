"""Study files (``kdtemp.study.spec``): expansion into runs, cells and cohorts; temperature-free
methods not multiplied by a temperature axis; validation (one line, nothing runs); plan notes, one
per axis and field; the default output beside the study file."""

import shutil

import pytest

from kdtemp.cli import main
from kdtemp.study import load_study, run_study

from helpers.cli import assert_one_line, run_cli
from helpers.study import BASE, DIGITS_STUDY, METHODS_WITH_T, write_study
from helpers.trust import study, write_yaml


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


def test_kd_approaches_times_temperatures_trains_ctkd_once_per_seed(tmp_path):
    s = load_study(write_yaml(tmp_path / "s.yaml", study(grid=None, presets=["kd_approaches", "temperatures"],
                                                         seeds=[0, 1])))
    ctkd = [r for r in s.runs if r.spec.student.temperature_policy == "ctkd"]
    assert len(s.runs) == 2 * (7 * 9 + 1) and len(ctkd) == 2
    assert all(r.cell["temperatures"] is None and r.spec.student.temperature is None for r in ctkd)
    assert any("'temperatures' does not apply to ctkd" in note and "18 cells train 2 runs" in note for note in s.notes)


def test_dts_times_temperatures_trains_each_range_once(tmp_path):
    s = load_study(write_yaml(tmp_path / "s.yaml", study(grid=None, presets=["dts", "temperatures"])))
    assert len(s.runs) == 9 + 2
    assert sorted(r.cell["dts"] for r in s.runs if r.cell["temperatures"] is None) == ["dts_cross_family",
                                                                                        "dts_same_family"]


def test_an_axis_that_applies_to_no_run_is_refused(tmp_path, capsys):
    path = write_yaml(tmp_path / "s.yaml", study(grid={"student.dts.initial": [4, 5]}))
    code, _, err = run_cli(["study", "plan", path], capsys)
    assert_one_line(code, err, "student.dts.initial: applies to no run of this study")


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", ".hidden", "", "x" * 101])
def test_a_study_name_cannot_leave_the_studies_folder(tmp_path, capsys, name):
    code, _, err = run_cli(["study", "run", write_yaml(tmp_path / "s.yaml", study(name=name)), "--quiet"], capsys)
    assert_one_line(code, err, "name:", "is not allowed")


def test_one_cohort_and_no_duplicated_temperature_free_runs(finished):
    assert len(finished.cohorts) == 1
    assert len(finished.runs) == len(METHODS_WITH_T) * 2 + 2
    labels = [r.spec.student.label() for r in finished.runs]
    assert labels.count("ctkd-learned-T-adamw") == 1 and labels.count("kd-dts[4,8]-adamw") == 1
    assert all(r.spec.student.loss_preset == "official" for r in finished.runs)


def test_temperature_methods_times_temperatures_gives_one_note_per_axis_and_field(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", study(grid=None, presets=["temperature_methods", "temperatures"]))
    notes = load_study(path, output=tmp_path / "study").notes
    # the loss preset takes effect through a run's resolved weights: setting it is using it
    assert not any("loss_preset" in note for note in notes), notes
    assert len(notes) == 1, notes  # before: 76 notes, one per run
    assert "does not apply to ctkd-learned-T-adamw and kd-dts[4,8]-adamw" in notes[0]
    assert "their 18 cells train 2 runs" in notes[0]


def test_many_runs_that_ignore_a_zip_field_share_one_note(tmp_path):
    zip_axis = {"student.objective": [None, None, "kd"], "student.temperature": [2, 7, 4],
                "student.optimizer.lr": [1e-3, 2e-3, 3e-3]}
    path = write_yaml(tmp_path / "s.yaml", study(grid=None, zip=[zip_axis], seeds=[0, 1]))
    notes = load_study(path, output=tmp_path / "study").notes
    assert len(notes) == 1, notes
    assert "ce-adamw does not use student.temperature" in notes[0], notes
    assert "None, 2, 0.001" in notes[0] and "None, 7, 0.002" in notes[0]


def test_a_zip_group_s_temperature_for_a_cross_entropy_only_run_is_noted(tmp_path):
    from kdtemp.study import load_study

    from helpers.trust import study, write_yaml

    path = write_yaml(tmp_path / "s.yaml", study(grid=None, zip=[{"student.objective": ["kd", None],
                                                                   "student.temperature": [4, 7]}]))
    notes = load_study(path, output=tmp_path / "study").notes
    assert any("ce-adamw does not use student.temperature" in note and "None, 7" in note for note in notes), notes
    assert not any("kd-T4" in note for note in notes)


def project(tmp_path, name, monkeypatch):
    """A study file in ``project/`` and a working directory ``work/`` (the current one)."""
    folder, work = tmp_path / "project", tmp_path / "work"
    folder.mkdir()
    work.mkdir()
    monkeypatch.chdir(work)
    return folder, work, write_yaml(folder / "s.yaml", study(name=name))


def test_the_default_output_is_beside_the_study_file(tmp_path, monkeypatch):
    folder, work, path = project(tmp_path, "beside", monkeypatch)
    s = load_study(path)
    assert s.output == folder / "studies" / "beside"
    assert run_study(s, progress=False)["done"] == 2
    monkeypatch.chdir(folder)
    assert load_study("s.yaml").output.resolve() == s.output.resolve()
    assert not (work / "studies").exists()


def test_results_in_the_old_default_place_are_used_not_trained_again(tmp_path, monkeypatch):
    folder, work, path = project(tmp_path, "old", monkeypatch)
    first = load_study(path, output=work / "studies" / "old")  # where earlier versions put it from here
    assert run_study(first, progress=False)["done"] == 2
    s = load_study(path)
    assert s.output.resolve() == (work / "studies" / "old").resolve()
    assert any("earlier kdtemp versions" in note for note in s.notes)
    shutil.rmtree(work / "studies")
    assert load_study(path).output == folder / "studies" / "old"


def test_an_unrelated_old_store_of_the_same_name_is_not_adopted(tmp_path, monkeypatch):
    folder, work, path = project(tmp_path, "same", monkeypatch)
    other = write_yaml(work / "other.yaml", study(name="same", grid={"student.temperature": [7, 9]}))
    assert run_study(load_study(other, output=work / "studies" / "same"), progress=False)["done"] == 2
    s = load_study(path)  # its runs are T = 1 and 4: none of them is in that store
    assert s.output == folder / "studies" / "same"
    assert not any("earlier kdtemp versions" in note for note in s.notes)

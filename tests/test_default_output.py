"""A study without `output` goes to `studies/<name>` beside its file from any working directory
(it went to the current folder's `studies/`, so a second directory meant a second store and every
run trained again); results an earlier version put in the current folder are used where they are."""

import shutil

from kdtemp.study import load_study, run_study

from trust_helpers import study, write_yaml


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

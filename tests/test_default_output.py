"""A study without `output` goes to `studies/<name>` beside its file from any working directory
(it went to the current folder's `studies/`, so a second directory meant a second store and every
run trained again); results an earlier version put in the current folder are used where they are."""

import shutil

from kdtemp.study import load_study, run_study

from trust_helpers import study, write_yaml


def test_the_default_output_is_beside_the_study_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    path = write_yaml(folder / "s.yaml", study(name="beside"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_study(path)
    assert s.output == folder / "studies" / "beside"
    assert run_study(s, progress=False)["done"] == 2
    monkeypatch.chdir(folder)
    again = load_study("s.yaml")
    assert again.output.resolve() == s.output.resolve()
    assert not (elsewhere / "studies").exists()


def test_results_in_the_old_default_place_are_used_not_trained_again(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    path = write_yaml(folder / "s.yaml", study(name="old"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    first = load_study(path, output=work / "studies" / "old")  # where earlier versions put it from here
    assert run_study(first, progress=False)["done"] == 2
    s = load_study(path)
    assert s.output.resolve() == (work / "studies" / "old").resolve()
    assert any("earlier kdtemp versions" in note for note in s.notes)
    shutil.rmtree(work / "studies")
    assert load_study(path).output == folder / "studies" / "old"

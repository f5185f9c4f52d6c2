"""Where a study without ``output`` goes when its file already lies in a folder called studies."""

import shutil

from kdtemp.study import load_study, run_study

from helpers.trust import study, write_yaml


def test_a_study_file_inside_studies_writes_beside_it_not_into_studies_studies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    path = write_yaml(tmp_path / "studies" / "s.yaml", study(grid=None))
    s = load_study(path)
    assert s.output.resolve() == (tmp_path / "studies" / "trust").resolve()
    assert not any("using the results" in note for note in s.notes)


def test_results_in_the_earlier_studies_studies_folder_are_used_where_they_are(tmp_path):
    folder = tmp_path / "project" / "studies"
    folder.mkdir(parents=True)
    path = write_yaml(folder / "s.yaml", study(grid=None))
    earlier = load_study(path, output=folder / "studies" / "trust")  # where earlier versions put it
    run_study(earlier, progress=False)
    s = load_study(path)
    assert s.output.resolve() == (folder / "studies" / "trust").resolve()
    assert any("using the results in" in note for note in s.notes)
    shutil.rmtree(folder / "studies")
    assert load_study(path).output.resolve() == (folder / "trust").resolve()

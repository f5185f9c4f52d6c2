"""A report says what it covers and holds only what it covers: when the last `study run` planned
fewer runs than the store has finished (a smoke run with ``seeds=[0]`` after the full study), the
report and ``kdtemp report`` say how many finished runs are left out; files an earlier report
wrote that this one does not (the method comparison of objectives no longer in the plan) are
removed, and files that are not the report's are kept."""

from kdtemp.advise import Setup, advise
from kdtemp.cli import main
from kdtemp.report import build_report
from kdtemp.study import load_study, run_study

from trust_helpers import study, write_yaml


def test_a_smaller_plan_is_reported_as_such_and_leaves_no_stale_figures(tmp_path, capsys):
    path = write_yaml(tmp_path / "s.yaml", study(grid={"student.objective": ["kd", "dkd"], "student.temperature": [1, 4]},
                                                 seeds=[0, 1]))
    full = load_study(path, output=tmp_path / "study")
    assert run_study(full, progress=False)["done"] == 8
    report = build_report(tmp_path / "study")
    names = {p.name for p in report.folder.iterdir()}
    assert {"methods.png", "methods.svg", "methods.md"} <= names and not report.notes
    (report.folder / "my_notes.txt").write_text("mine")  # not the report's: kept

    smoke = load_study(path, output=tmp_path / "study", overrides=["grid={student.temperature: [1, 4]}", "seeds=[0]"])
    assert run_study(smoke, progress=False)["done"] == 2  # nothing trains again
    assert main(["report", str(tmp_path / "study")]) == 0
    printed = capsys.readouterr().out
    assert "note: 6 finished runs of the store are not in this report" in printed
    names = {p.name for p in report.folder.iterdir()}
    assert not {"methods.png", "methods.svg", "methods.md"} & names, names  # no stale method comparison
    assert {"my_notes.txt", "index.html", "heatmap.png", "runs.csv"} <= names
    assert "6 finished runs of the store are not in this report" in (report.folder / "index.html").read_text()
    advice = advise(Setup(teacher_origin="scratch", epochs=1), [tmp_path / "study"])
    assert any("6 finished runs outside the plan of its last `kdtemp study run`" in line for line in advice.evidence)


def test_a_report_into_a_folder_it_did_not_write_deletes_nothing_of_it(tmp_path):
    """Without its manifest, a report removes only what an earlier kdtemp report (its index.html
    says so) left, by exact name: a user's docs folder keeps its index.md, runs.md and methods.md."""
    from kdtemp.report import _remove_stale

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("index.md", "runs.md", "methods.md", "profiles.csv"):
        (docs / name).write_text("mine")
    _remove_stale(docs, [docs / "index.html", docs / "runs.csv"])
    assert sorted(p.name for p in docs.iterdir()) == [".kdtemp-report.json", "index.md", "methods.md", "profiles.csv",
                                                       "runs.md"]
    old = tmp_path / "old"  # an earlier kdtemp's report: no manifest, its own index.html
    old.mkdir()
    (old / "index.html").write_text("<!doctype html><html><head><meta charset='utf-8'><title>kdtemp report: s</title>")
    for name in ("methods.md", "methods.png", "notes.md"):
        (old / name).write_text("x")
    _remove_stale(old, [old / "index.html"])
    assert sorted(p.name for p in old.iterdir()) == [".kdtemp-report.json", "index.html", "notes.md"]

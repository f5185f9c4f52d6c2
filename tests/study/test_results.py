"""Study results (``kdtemp.study.results``): a run kept from an earlier version of the study file
takes the current file's axes: `study export` and the report's runs.csv show its temperature under
the current axis (it was blank when the temperature axis became the `temperatures` preset)."""

import csv
import io

from kdtemp.study import Store, export, load_study, run_study, store_path

from helpers.trust import study, write_yaml


def test_kept_runs_are_described_by_the_current_axes(tmp_path):
    path = tmp_path / "s.yaml"
    write_yaml(path, study(grid={"student.temperature": [1, 4]}))
    assert run_study(load_study(path, output=tmp_path / "study"), progress=False)["done"] == 2
    write_yaml(path, study(grid=None, presets=["temperatures"]))  # the same T axis, named by the preset
    s = load_study(path, output=tmp_path / "study")
    counts = run_study(s, progress=False)
    assert counts["done"] == len(s.runs) > 2
    with Store(store_path(s), readonly=True) as store:
        rows = list(csv.DictReader(io.StringIO(export(s, store, "csv"))))
    assert "temperatures" in rows[0], rows[0]
    assert all(r["temperatures"] not in ("", None) for r in rows), rows  # kept T=1 and T=4 included

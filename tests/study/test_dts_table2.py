"""The DTS paper's Table II as a study: the shipped CIFAR-100 file plans its six pairs and seven
methods, and a tiny digits version of it (the same ``dts_table2`` axis, a teacher prepared by the
study, two seeds) runs end to end to a report that shows every method."""

import copy

import pytest

from kdtemp.report import build_report
from kdtemp.study import Store, load_study, run_study, store_path

from helpers.trust import BASE, write_yaml

METHODS = ["KD", "CTKD", "AKD", "DTS [4, 8]", "DTS [1, 3]", "instance-wise DTS [4, 8]", "instance-wise DTS [1, 3]"]


def test_the_shipped_study_has_the_paper_s_pairs_and_methods(tmp_path):
    study = load_study("dts_table2_cifar100", output=tmp_path / "study")  # the packaged example, by name
    pairs = {(run.spec.teacher.name, run.spec.student.model.name) for run in study.runs}
    assert pairs == {("resnet56", "resnet20"), ("resnet110", "resnet32"), ("resnet32x4", "resnet8x4"),
                     ("wrn_40_2", "wrn_16_2"), ("vgg13", "vgg8"), ("resnet32x4", "vgg8")}
    assert len(study.runs) == 6 * 7 * 3 and len(study.preparations) == 5  # resnet32x4 is prepared once
    akd = [run.spec.student for run in study.runs if run.spec.student.objective == "akd"]
    assert {(m.epochs, m.phase_one_epochs) for m in akd} == {(240, 160)}  # the authors' 2:1 within the recipe


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table2")
    base = copy.deepcopy(BASE)
    base["teacher"] = {"prepared": "teacher"}
    base["student"] = {**base["student"], "temperature": 4, "epochs": 15, "optimizer": {"lr": 3.0e-3}}
    path = write_yaml(folder / "table2.yaml", {
        "name": "dts-table2-digits",
        "prepare": {"teacher": {"base": {"model": {"name": "resnet32", "init": "random"}, "optimizer": {"lr": 5.0e-3},
                                         "epochs": 3}}},
        "base": base, "presets": ["dts_table2"], "seeds": [0, 1], "executor": {"kind": "inline", "threads": 1}})
    study = load_study(path)
    assert run_study(study, progress=False)["done"] == 14
    return study


@pytest.mark.slow
def test_a_tiny_digits_table2_reports_every_method_with_its_gain_over_kd(finished, tmp_path):
    report = build_report(finished.output, tmp_path / "report")
    methods = (report.folder / "methods.md").read_text()
    rows = [line.split(" | ") for line in methods.splitlines() if line.startswith("| all runs |")]
    assert sorted(row[1].replace("\\", "") for row in rows) == sorted(METHODS)
    assert all(row[5] == "2" and "KD at T=4" in row[6] for row in rows)  # two seeds each, gain over KD
    assert (report.folder / "temperatures.png").exists()
    html = report.html.read_text()
    assert "AKD" in html and "instance-wise DTS [4, 8]" in html


@pytest.mark.slow
def test_akd_and_instance_dts_leave_their_traces_in_the_store(finished):
    with Store(store_path(finished), readonly=True) as store:
        runs = store.runs()
    by_policy = {}
    for run in runs:
        by_policy.setdefault(run["config"]["student"]["temperature_policy"], []).append(run)
    for run in by_policy["akd"]:  # ten levels over phase 1 (10 of 15 epochs), no temperature in phase 2
        assert [row["temperature"] for row in run["curve"]] == [float(t) for t in range(10, 0, -1)] + [None] * 5
    for run in by_policy["dts_instance"]:
        spreads = [row["temperature_distribution"] for row in run["curve"]]
        assert len(spreads) == 15 and all(s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"] for s in spreads)
        low, high = run["config"]["student"]["dts"]["minimum"], run["config"]["student"]["dts"]["maximum"]
        assert all(low <= s["min"] and s["max"] <= high for s in spreads)

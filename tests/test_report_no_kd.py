"""A cross-entropy-only run (no objective, or a KD weight of 0) has no temperature: the report
shows it as its own reference line labelled as training without distillation, never as a method
that "sets its own temperature" and never at a T column."""

from kdtemp.report import figures
from kdtemp.report.tables import aggregate, aggregate_points, method_rows, records


def run(index, objective, temperature, policy="fixed", kd_weight=None, seed=0):
    student = {"objective": objective, "temperature": temperature, "temperature_policy": policy, "epochs": 2,
               "kd_weight": kd_weight}
    return {"run_id": str(index), "status": "done", "seed": seed, "final_top1": 50.0 + index, "best_top1": 60.0,
            "curve": [], "config": {"student": student}}


def legend(figure):
    return [text.get_text() for text in figure.legends[0].get_texts()] if figure.legends else \
        figure.axes[0].get_legend_handles_labels()[1]


def test_cross_entropy_only_runs_are_labelled_as_such_and_never_at_a_temperature():
    # what the store holds: resolved configs, temperature null where the run uses none
    items = records([run(1, None, None), run(2, "kd", 4.0), run(3, "kd", 2.0), run(4, "kd", None, "dts"),
                     run(5, "kd", None, kd_weight=0.0), run(6, "ctkd", None, "ctkd")])
    assert [r.distills for r in items] == [False, True, True, True, False, True]
    assert all(r.temperature is None for r in items if not r.distills)
    assert not any("objective=None" in row for row in aggregate(items, "final_top1"))
    assert len(aggregate_points(items, "final_top1")) == 4

    labels = legend(figures.curves(items, "final_top1", "final top-1 (%)"))
    no_kd = [label for label in labels if "no KD" in label]
    assert len(no_kd) == 2 and not any("own T" in label for label in no_kd), labels
    assert any("policy=dts" in label and "own T" in label for label in labels), labels

    labels = legend(figures.by_objective(items, "final_top1", "final top-1 (%)", ["kd", "ctkd", None], "methods"))
    no_kd = [label for label in labels if label.startswith("cross-entropy only (no KD)")]
    assert len(no_kd) == 2 and not any("shared fixed T" in label or "own T" in label for label in no_kd), labels
    assert any(label.startswith("CTKD (learned T)") for label in labels), labels
    assert any(label.startswith("KD + DTS") for label in labels), labels


def test_a_cross_entropy_only_run_records_no_temperature(tmp_path):
    """Its label, its curve, metrics.csv and the store: no temperature anywhere (the curve said 4)."""
    import csv

    from kdtemp.study import Store, load_study, run_study, store_path

    from trust_helpers import study, write_yaml

    path = write_yaml(tmp_path / "s.yaml", study(grid={"student.objective": ["kd", None], "student.temperature": [1, 4]}))
    s = load_study(path, output=tmp_path / "study")
    assert run_study(s, progress=False)["done"] == 3  # the CE-only run once
    with Store(store_path(s), readonly=True) as store:
        runs = {r["run_id"]: r for r in store.runs()}
    ce = [r for r in runs.values() if r["config"]["student"]["objective"] is None]
    assert len(ce) == 1 and ce[0]["label"].startswith("ce-")
    assert [point["temperature"] for point in ce[0]["curve"]] == [None]
    rows = list(csv.DictReader((tmp_path / "study" / "runs" / ce[0]["run_id"] / "metrics.csv").open()))
    assert rows[0]["temperature"] == ""
    kd = [r for r in runs.values() if r["config"]["student"]["objective"] == "kd"]
    assert sorted(point["temperature"] for r in kd for point in r["curve"]) == [1.0, 4.0]


def test_a_kd_weight_of_zero_is_labelled_as_cross_entropy_only():
    from engine_helpers import member

    assert member(temperature=4.0, kd_weight=0.0).label() == "ce-adamw"
    assert member(temperature=4.0).label() == "kd-T4-adamw"


def test_a_zip_group_s_temperature_for_a_cross_entropy_only_run_is_noted(tmp_path):
    from kdtemp.study import load_study

    from trust_helpers import study, write_yaml

    path = write_yaml(tmp_path / "s.yaml", study(grid=None, zip=[{"student.objective": ["kd", None],
                                                                   "student.temperature": [4, 7]}]))
    notes = load_study(path, output=tmp_path / "study").notes
    assert any("ce-adamw does not use student.temperature" in note and "None, 7" in note for note in notes), notes
    assert not any("kd-T4" in note for note in notes)


def test_the_method_table_names_cross_entropy_only_runs_as_such():
    items = records([run(1, "kd", 4.0), run(2, "kd", 1.0), run(3, "kd", None, kd_weight=0.0), run(4, None, None)])
    rows = method_rows(items, "final_top1")
    no_kd = [r for r in rows if r["method"] == "cross-entropy only (no KD)"]
    assert len(no_kd) == 1 and no_kd[0]["T"] == "none" and no_kd[0]["n"] == 2, rows  # both, one method
    assert not any(r["T"] == "own" for r in rows)
    assert {r["context"] for r in rows} == {"all runs"} and no_kd[0]["gain"] is not None  # compared with KD

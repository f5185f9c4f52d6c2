"""Equal accuracies are equal: accuracies come from integer counts of hits (so the same count
gives the same number), and the report's best temperatures, the method table and the advisor
treat means closer than a thousandth of a percent point as ties (stores written by earlier
versions hold float32 roundings such as 19.500000476837158)."""

import torch

from kdtemp.tasks.image.evaluate import accuracy
from kdtemp.report.tables import Cell, Record, best_temperatures, method_rows


def test_accuracy_is_the_exact_share_of_hits():
    labels = torch.zeros(200, dtype=torch.long)
    logits = torch.zeros(200, 3)
    logits[:39, 0] = 1.0  # 39 hits of 200
    logits[39:, 1] = 1.0
    scores = accuracy(logits, labels)
    assert scores["top1"].item() == 19.5  # float32 gave 19.500000476837158
    assert scores["top5"].item() == 100.0  # top-3 of 3 classes
    logits = torch.zeros(100, 3)
    logits[:, 1] = 1.0
    logits[:15, 0] = 2.0  # 15 hits of 100: float32 gave 15.000000953674316
    assert accuracy(logits, torch.zeros(100, dtype=torch.long))["top1"].item() == 15.0


def test_float32_roundings_of_equal_accuracies_are_ties():
    row = {10.0: Cell(19.5, 4.95, 2), 20.0: Cell(19.500000476837158, 6.36, 2), 4.0: Cell(19.0, 1.0, 2)}
    assert best_temperatures(row) == {10.0, 20.0}


def record(run_id, objective, temperature, value, seed=0):
    return Record(run_id, "done", temperature, seed, {"objective": objective}, objective, 1, value, value)


def test_the_method_table_names_every_tied_best_temperature():
    items = [record("a", "ats", 10.0, 19.5), record("b", "ats", 20.0, 19.500000476837158),
             record("c", "kd", 4.0, 19.5), record("d", "kd", 1.0, 18.0)]
    rows = {r["method"]: r for r in method_rows(items, "final_top1")}
    assert rows["objective=ats"]["T"] == "10/20"
    assert rows["objective=ats"]["kd_T"] == "4"
    assert abs(rows["objective=ats"]["gain"]) < 1e-5


def test_an_objective_s_own_parameters_belong_to_the_method_not_the_context():
    """DKD at beta 4 and 8 against KD and DIST: beta is part of DKD's method name, so every row is
    compared with the same best KD (DKD rows lost their gain), and KD and DIST show no beta=None."""
    from kdtemp.report.tables import records

    def run(index, objective, temperature, value, params=None):
        student = {"objective": objective, "temperature": temperature, "temperature_policy": "fixed", "epochs": 1,
                   "objective_params": params or {}}
        return {"run_id": str(index), "status": "done", "seed": 0, "final_top1": value, "best_top1": value,
                "curve": [], "config": {"student": student}}

    items = records([run(1, "kd", 1.0, 50.0), run(2, "kd", 4.0, 55.0), run(3, "dkd", 1.0, 52.0, {"beta": 4}),
                     run(4, "dkd", 4.0, 57.0, {"beta": 4}), run(5, "dkd", 4.0, 53.0, {"beta": 8}),
                     run(6, "dist", 4.0, 54.0)])
    assert "beta" not in items[0].label and "beta" not in items[5].label
    rows = method_rows(items, "final_top1")
    assert {r["context"] for r in rows} == {"all runs"}
    by_method = {r["method"]: r for r in rows}
    assert set(by_method) == {"objective=kd", "objective=dkd, beta=4", "objective=dkd, beta=8", "objective=dist"}
    assert by_method["objective=dkd, beta=4"]["gain"] == 2.0 and by_method["objective=dkd, beta=4"]["kd_T"] == "4"
    assert by_method["objective=dist"]["gain"] == -1.0

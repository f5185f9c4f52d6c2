"""Equal accuracies are equal: accuracies come from integer counts of hits (so the same count
gives the same number), and the report's best temperatures, the method table and the advisor
treat means closer than a thousandth of a percent point as ties (stores written by earlier
versions hold float32 roundings such as 19.500000476837158)."""

import torch

from kdtemp.engine.evaluate import accuracy
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

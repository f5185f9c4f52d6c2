"""Report tables (``kdtemp.report.tables``): the report's best temperatures, the method table and
its context treat means closer than a thousandth of a percent point as ties (stores written by
earlier versions hold float32 roundings such as 19.500000476837158); an objective's own parameters
name the method; cross-entropy-only runs are one method without a temperature; metric names."""

from kdtemp.report.tables import Cell, METRICS, Metric, Record, best_temperatures, method_rows, records

from helpers.report import run


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


def test_the_method_table_names_cross_entropy_only_runs_as_such():
    items = records([run(1, "kd", 4.0), run(2, "kd", 1.0), run(3, "kd", None, kd_weight=0.0), run(4, None, None)])
    rows = method_rows(items, "final_top1")
    no_kd = [r for r in rows if r["method"] == "cross-entropy only (no KD)"]
    assert len(no_kd) == 1 and no_kd[0]["T"] == "none" and no_kd[0]["n"] == 2, rows  # both, one method
    assert not any(r["T"] == "own" for r in rows)
    assert {r["context"] for r in rows} == {"all runs"} and no_kd[0]["gain"] is not None  # compared with KD


def test_metric_names():
    assert METRICS == {"final_top1": "final top-1 (%)", "best_top1": "best-epoch top-1 (%)"}
    assert Metric("top1").tables == METRICS and Metric("top1").short == "top-1" and Metric().unit == "%"
    assert Metric("rouge_l").tables == {"final_rouge_l": "final ROUGE-L (x100)", "best_rouge_l": "best-epoch ROUGE-L (x100)"}
    assert Metric("rouge_l_selfinst").label == "ROUGE-L (x100) on selfinst"
    assert Metric("bleu").tables == {"final_bleu": "final bleu", "best_bleu": "best-epoch bleu"}
    assert Metric("loss", "min").label == "loss (lower is better)"


def test_one_seed_is_reported_as_one_seed_not_as_a_spread_of_zero():
    from kdtemp.report.tables import ONE_SEED, methods_markdown, points_markdown, spread

    assert spread(0.0, 1) == ONE_SEED and spread(0.5, 3) == "0.50" and spread(None, 0) == ""
    row = {"context": "dolly", "method": "dts", "name": "DTS [1, 3]", "T": "own", "mean": 20.0, "std": 0.0, "n": 1,
           "gain": -2.65, "kd_std": 0.0, "kd_n": 1, "kd_T": "2"}
    table = methods_markdown([row], "final ROUGE-L")
    assert "| 20.00 | one seed | 1 | -2.65 (one seed, KD at T=2) |" in table and "| 0.00 |" not in table
    from kdtemp.report.tables import Cell

    assert "| dts | 20.00 | one seed | 1 |" in points_markdown({"dts": Cell(20.0, 0.0, 1)}, "final")

"""The study store (``kdtemp.study.store``). Stores of the previous release (schema 1:
``final_top1`` .. ``best_top5`` columns) open and migrate automatically, and read the same; stores
of a primary metric other than top-1 are reported by that metric, the best chosen by its goal; a
failed preparation never marks finished runs failed; the official temperature axis is recorded.

``fixtures/store_v1/study.sqlite`` was written by the code before named metrics, for the study
``fixtures/reference/digits_study.yaml``; ``fixtures/store_v1/before/`` holds what that code's
``export`` (CSV and JSON), ``report`` (its text tables) and ``advise`` made of it."""

import csv
import re
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from kdtemp.advise import Setup, advise
from kdtemp.cli import main
from kdtemp.config import ConfigError
from kdtemp.engine.results import NOT_METRICS, RunResult
from kdtemp.engine.storage import RunFolder
from kdtemp.objectives.registry import display_name_of
from kdtemp.report import build_report
from kdtemp.report.tables import Metric
from kdtemp.study import store as store_module
from kdtemp.study import Store, load_study, rebuild, run_study, store_path
from kdtemp.study.results import export
from kdtemp.study.store import SCHEMA_VERSION, StoreMigrationFailed

from helpers.trust import study, write_yaml


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


V1 = FIXTURES / "store_v1" / "study.sqlite"


BEFORE = FIXTURES / "store_v1" / "before"


REFERENCE_STUDY = FIXTURES / "reference" / "digits_study.yaml"


REPORT_TABLES = ("heatmap.csv", "heatmap_final.md", "heatmap_best.md", "methods.md", "teachers.md")


def old_rows(table: str = "runs") -> dict[str, dict]:
    """The fixture's rows as the previous release wrote them (read without touching the file)."""
    connection = sqlite3.connect(f"{V1.resolve().as_uri()}?immutable=1", uri=True)
    connection.row_factory = sqlite3.Row
    key = "run_id" if table == "runs" else "prep_id"
    rows = {r[key]: dict(r) for r in connection.execute(f"SELECT * FROM {table}")}
    connection.close()
    return rows


def copy_of_v1(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(V1, folder / "study.sqlite")
    return folder / "study.sqlite"


def metric_count(curve: list[dict]) -> int:
    return sum(1 for row in curve for key, value in row.items() if key not in NOT_METRICS and value is not None)


def columns(path: Path, table: str = "runs") -> set[str]:
    with sqlite3.connect(path) as connection:
        return {r[1] for r in connection.execute(f"PRAGMA table_info({table})")}


def test_the_fixture_is_a_store_of_the_previous_schema():
    old = old_rows()
    assert len(old) == 18 and all(r["status"] == "done" for r in old.values())
    assert {"final_top1", "best_top5"} <= set(next(iter(old.values())))


def test_opening_a_v1_store_migrates_it_and_keeps_every_run(tmp_path):
    path = copy_of_v1(tmp_path / "study")
    old, old_preparations = old_rows(), old_rows("preparations")
    with Store(path) as store:
        assert store.meta("schema_version") == SCHEMA_VERSION == 3
        assert store.primary() == ("top1", "max")
        runs = {r["run_id"]: r for r in store.runs()}
        assert set(runs) == set(old)
        for run_id, before in old.items():
            run = runs[run_id]
            assert (run["primary_metric"], run["primary_goal"]) == ("top1", "max")
            assert run["final_primary"] == before["final_top1"] and run["best_primary"] == before["best_top1"]
            assert run["final"]["top5"] == before["final_top5"] and run["best"]["top5"] == before["best_top5"]
            assert run["best_epoch"] == before["best_epoch"]
            for key in ("status", "seed", "epochs", "epochs_done", "seconds", "label", "cohort_id", "error"):
                assert run[key] == before[key], key
            assert run["curve"] == json.loads(before["curve"])
        # the long-form metrics: every metric of every epoch of every curve
        assert len(store.metrics()) == sum(metric_count(json.loads(r["curve"])) for r in old.values())
        assert len(store.metrics()) == sum(4 * len(json.loads(r["curve"])) for r in old.values())
        (run_id, before), = list(old.items())[:1]
        last = json.loads(before["curve"])[-1]
        mine = {(split, metric): value for rid, epoch, split, metric, value in store.metrics([run_id])
                if epoch == last["epoch"]}
        assert mine == {("train", "loss"): last["train_loss"], ("test", "top1"): last["top1"],
                        ("test", "top5"): last["top5"], ("test", "loss"): last["test_loss"]}
        preparations = {p["prep_id"]: p for p in store.preparations()}
        assert set(preparations) == set(old_preparations)
        for prep_id, before in old_preparations.items():
            assert preparations[prep_id]["final_primary"] == before["final_top1"]
            assert preparations[prep_id]["final_top5"] == before["final_top5"]
        assert len(store.metrics(kind="preparation")) == sum(metric_count(json.loads(p["curve"]))
                                                             for p in old_preparations.values())
        assert len(store.teachers()) == 1
    assert "final_top1" not in columns(path) and "primary_metric" in columns(path)
    assert "final_top1" not in columns(path, "preparations")
    with Store(path) as store:  # a second open finds it migrated
        assert len(store.runs()) == 18 and store.meta("schema_version") == SCHEMA_VERSION


def test_export_of_a_migrated_store_is_the_previous_releases(tmp_path):
    path = copy_of_v1(tmp_path / "study")
    with Store(path) as store:
        text, as_json = export(None, store, "csv"), export(None, store, "json")
    assert text.encode() == (BEFORE / "export.csv").read_bytes()
    assert as_json == (BEFORE / "export.json").read_text()
    old = old_rows()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["run_id"] for r in rows) == sorted(old)
    for row in rows:
        before = old[row["run_id"]]
        for key in ("final_top1", "final_top5", "best_top1", "best_top5", "seconds"):
            assert float(row[key]) == before[key], key
        assert int(row["best_epoch"]) == before["best_epoch"]


def test_a_read_only_open_of_a_v1_store_reads_it_without_changing_it(tmp_path):
    path = copy_of_v1(tmp_path / "study")
    original = path.read_bytes()
    with Store(path, readonly=True) as store:
        assert store.primary() == ("top1", "max")
        assert export(None, store, "csv").encode() == (BEFORE / "export.csv").read_bytes()
        assert len(store.metrics()) == 216
        with pytest.raises(sqlite3.OperationalError):  # read-only, even though it is a migrated copy
            store.set_meta("x", 1)
    assert path.read_bytes() == original and "final_top1" in columns(path)


def numbers(text: str) -> list[str]:
    """Every decimal number of a table, in order."""
    return re.findall(r"-?\d+\.\d+", text)


def test_a_report_and_the_advice_from_a_v1_store_are_the_previous_releases(tmp_path):
    path = copy_of_v1(tmp_path / "study")
    report = build_report(path.parent)
    for name in REPORT_TABLES:  # the same numbers in the same places (the names of methods and marks may change)
        assert numbers((report.folder / name).read_text()) == numbers((BEFORE / name).read_text()), name
    assert (report.folder / "runs.csv").read_bytes() == (BEFORE / "export.csv").read_bytes()
    assert "Accuracy heatmap" in report.html.read_text()
    assert {"heatmap.png", "curves.png", "methods.png", "index.html"} <= {p.name for p in report.files}
    assert advise(Setup(), [path.parent]).text() == (BEFORE / "advice.txt").read_text()
    assert "final_top1" in columns(path)  # reports open the store read-only: still the old file
    with Store(path):
        pass
    again = build_report(path.parent, tmp_path / "again")  # and the same after the migration
    for name in REPORT_TABLES:
        assert (again.folder / name).read_bytes() == (report.folder / name).read_bytes(), name


def test_a_failed_migration_leaves_the_old_file_as_it_was(tmp_path, monkeypatch):
    path = copy_of_v1(tmp_path / "study")
    calls = []
    real = store_module.long_form

    def failing(curve):
        calls.append(1)
        if len(calls) == 10:
            raise ValueError("disk on fire")
        return real(curve)

    monkeypatch.setattr(store_module, "long_form", failing)
    with pytest.raises(StoreMigrationFailed, match="could not be brought up to date .*disk on fire.*unchanged"):
        Store(path)
    assert isinstance(StoreMigrationFailed("x"), ConfigError)  # the command line shows it as one line
    assert "final_top1" in columns(path) and "primary_metric" not in columns(path)
    with sqlite3.connect(path) as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "metrics" not in tables and "runs_v1" not in tables
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 18
        assert connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() is None
    monkeypatch.setattr(store_module, "long_form", real)
    with Store(path) as store:
        assert len(store.runs()) == 18 and store.meta("schema_version") == SCHEMA_VERSION


def test_a_store_of_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "study.sqlite"
    with Store(path) as store:
        store.set_meta("schema_version", SCHEMA_VERSION + 1)
    for readonly in (False, True):
        with pytest.raises(ConfigError, match="newer kdtemp"):
            Store(path, readonly=readonly)


def reference_study(output: Path):
    study = load_study(REFERENCE_STUDY, output=output)
    if sorted(r.run_id for r in study.runs) != sorted(old_rows()):
        pytest.skip("the reference study's run ids changed since the fixture was written")
    return study


def test_status_and_export_commands_on_a_v1_store(tmp_path, capsys):
    copy_of_v1(tmp_path / "study")
    reference_study(tmp_path / "study")
    out = ["--output", str(tmp_path / "study")]
    assert main(["study", "status", str(REFERENCE_STUDY), *out]) == 0
    assert "18 done, 0 failed" in capsys.readouterr().out
    assert main(["study", "export", str(REFERENCE_STUDY), *out, "--to", str(tmp_path / "r.csv")]) == 0
    mine = list(csv.DictReader((tmp_path / "r.csv").open()))
    before = {r["run_id"]: r for r in csv.DictReader((BEFORE / "export.csv").open())}
    assert len(mine) == 18 and all(row == before[row["run_id"]] for row in mine)


# ---- rebuilding from run folders of both forms -------------------------------------------------


def test_rebuild_reads_run_folders_of_both_forms(tmp_path):
    study = reference_study(tmp_path / "study")
    old = old_rows()
    for index, run in enumerate(study.runs):
        before = old[run.run_id]
        curve = json.loads(before["curve"])
        common = {"run_id": run.run_id, "label": before["label"], "status": "done", "error": None,
                  "epochs_done": before["epochs_done"], "seconds": before["seconds"], "curve": curve,
                  "temperature_trace": json.loads(before["temperature_trace"]), "teacher": json.loads(before["teacher"])}
        if index % 2:  # the previous release's metrics.json
            metrics = {**common, **{k: before[k] for k in ("final_top1", "final_top5", "best_top1", "best_top5",
                                                           "best_epoch")}}
        else:  # the engine's RunResult
            fields = {k: v for k, v in common.items() if k != "curve"}
            metrics = RunResult.from_curve(curve, "top1", "max", **fields).__dict__
        RunFolder(study.output / "runs", run.run_id).write_metrics(metrics)
    moved, counts = rebuild(study)
    assert moved is None and counts["done"] == 18
    with Store(store_path(study), readonly=True) as store:
        assert store.meta("schema_version") == SCHEMA_VERSION
        for run in store.runs():
            assert run["final_primary"] == old[run["run_id"]]["final_top1"]
            assert run["best_primary"] == old[run["run_id"]]["best_top1"]
            assert run["best_epoch"] == old[run["run_id"]]["best_epoch"]
        assert len(store.metrics()) == 216
        rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO(export(study, store, "csv")))}
    before = {r["run_id"]: r for r in csv.DictReader((BEFORE / "export.csv").open())}
    drop = ("seconds",)
    for run_id, row in rows.items():
        assert {k: v for k, v in row.items() if k not in drop} == {k: v for k, v in before[run_id].items() if k not in drop}


# ---- a primary metric other than top-1 ---------------------------------------------------------

TEMPERATURES = (1.0, 2.0, 4.0)


SCORES = {"kd": {1.0: 10.0, 2.0: 30.0, 4.0: 20.0}, "dkd": {1.0: 15.0, 2.0: 12.0, 4.0: 40.0}}
"""The primary metric's mean per objective and T; seed 1 is seed 0 plus 1."""


def synthetic_store(folder: Path, metric: str, goal: str) -> Path:
    """A store of finished runs whose primary metric is ``metric`` (``goal`` max or min), in the
    engine's RunResult form; each curve has two epochs, the better value at the first."""
    rows, results = [], []
    for objective, cells in SCORES.items():
        for t in TEMPERATURES:
            for seed in (0, 1):
                run_id = f"{objective}-{t:g}-{seed}"
                config = {"data": {"dataset": "sst2"}, "teacher": {"name": "bert"}, "data_seed": seed,
                          "student": {"objective": objective, "temperature": t, "temperature_policy": "fixed",
                                      "epochs": 2, "optimizer": {"name": "adamw"}, "seed": seed}}
                rows.append({"run_id": run_id, "cohort_id": f"c{seed}", "position": len(rows), "label": run_id,
                             "cell": {"student.temperature": t}, "seed": seed, "config": config, "epochs": 2})
                final = cells[t] + seed
                early = final + 5.0 if goal == "max" else final - 5.0  # epoch 1 is better
                curve = [{"epoch": e, "train_loss": 1.0 / e, metric: value, "other": 0.5, "temperature": t, "lr": 0.1}
                         for e, value in ((1, early), (2, final))]
                result = RunResult.from_curve(curve, metric, goal, run_id=run_id, label=run_id, status="done",
                                              error=None, epochs_done=2, seconds=1.0)
                results.append(result.__dict__)
    folder.mkdir(parents=True, exist_ok=True)
    with Store(folder / "study.sqlite") as store:
        store.set_meta("name", "synthetic")
        store.set_meta("axes", ["student.temperature"])
        store.set_meta("run_ids", [r["run_id"] for r in rows])
        store.register(rows)
        for result in results:
            store.record(result)
    return folder


@pytest.mark.parametrize("metric,goal,label", [("accuracy", "max", "accuracy"), ("rouge_l", "max", "ROUGE-L (x100)"),
                                               ("loss", "min", "loss (lower is better)")])
def test_a_store_of_another_primary_metric_is_reported_by_it(tmp_path, metric, goal, label):
    folder = synthetic_store(tmp_path / "study", metric, goal)
    with Store(folder / "study.sqlite", readonly=True) as store:
        assert store.primary() == (metric, goal)
        rows = list(csv.DictReader(io.StringIO(export(None, store, "csv"))))
        assert len(store.metrics()) == 12 * 2 * 3  # train loss, the metric and "other" at two epochs
    assert [k for k in rows[0] if k.startswith(("final_", "best_"))] == [
        f"final_{metric}", "final_other", f"best_{metric}", "best_other", "best_epoch"]
    for row in rows:
        objective, t, seed = row["run_id"].split("-")
        final = SCORES[objective][float(t)] + int(seed)
        assert float(row[f"final_{metric}"]) == final
        assert float(row[f"best_{metric}"]) == (final + 5 if goal == "max" else final - 5)
        assert row["best_epoch"] == "1"

    report = build_report(folder)
    final_md = (report.folder / "heatmap_final.md").read_text()
    assert final_md.startswith(f"**final {label}**") and "top-1" not in final_md
    assert (report.folder / "heatmap_best.md").read_text().startswith(f"**best-epoch {label}**")
    pick = max if goal == "max" else min
    for objective, cells in SCORES.items():
        best = pick(cells, key=cells.get)
        line = next(l for l in final_md.splitlines() if l.startswith(f"| {display_name_of(objective)} |"))
        assert f"**{cells[best] + 0.5:.2f}**" in line and line.count("**") == 2, line
    heatmap = list(csv.DictReader((report.folder / "heatmap.csv").open()))
    assert {r["metric"] for r in heatmap} == {f"final_{metric}", f"best_{metric}"}
    methods = (report.folder / "methods.md").read_text()
    assert methods.startswith(f"**final {label}: each method")
    order = sorted(SCORES, key=lambda o: pick(SCORES[o].values()), reverse=goal == "max")
    lines = [l for l in methods.splitlines() if l.startswith("| all runs |")]
    assert [l.split(" | ")[1] for l in lines] == [display_name_of(o) for o in order]
    kd, dkd = pick(SCORES["kd"].values()), pick(SCORES["dkd"].values())
    gain = (dkd - kd) if goal == "max" else (kd - dkd)  # positive: better than KD
    assert f"{gain:+.2f} (" in next(l for l in lines if "| DKD |" in l)
    html = report.html.read_text()
    assert "top-1" not in html and f"final {label}" in html

    text = advise(Setup(), [folder]).text()
    kd_best = pick(SCORES["kd"], key=SCORES["kd"].get)
    short = Metric(metric, goal).short  # the metric's name in running text (ROUGE-L for rouge_l)
    assert f"best T = {kd_best:g} (mean {short} {SCORES['kd'][kd_best] + 0.5:.2f} over 2 seeds)" in text, text
    assert "top-1" not in text.split("your past results:")[1]


def test_a_failed_preparation_never_marks_finished_runs_failed(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", study())
    s = load_study(path, output=tmp_path / "out")
    run_study(s, progress=False)
    with Store(store_path(s)) as store:
        store.record_failure([r.run_id for r in s.runs], "something failed later")
        assert {r["status"] for r in store.runs()} == {"done"}


def test_the_store_records_the_official_temperature_axis(finished):
    with Store(store_path(finished), readonly=True) as store:
        runs = store.runs()
    energy = [r for r in runs if r["config"]["student"]["objective"] == "energy_kd"]
    assert sorted(r["config"]["student"]["temperature"] for r in energy) == [1.0, 4.0]


def test_opening_a_v2_store_adds_the_evaluation_columns_and_keeps_every_run(tmp_path):
    """Schema 2 -> 3: runs keep their results; a run that does not say what evaluation measured it (NULL) is
    shown as stored, whatever the study file now asks (its id fixed its evaluation then)."""
    path = tmp_path / "study.sqlite"
    with Store(path) as store:
        store.register([{"run_id": "a", "cohort_id": "c", "position": 0, "label": "kd", "cell": {}, "seed": 0,
                         "config": {}, "epochs": 1}])
        store.record({"run_id": "a", "status": "done", "epochs_done": 1, "primary_metric": "rouge_l",
                      "primary_goal": "max", "curve": [{"epoch": 1, "rouge_l": 12.5}]})
    connection = sqlite3.connect(path)
    for table in ("runs", "preparations"):
        for column in ("evaluation", "evaluation_wanted"):
            connection.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    connection.execute("DROP TABLE evaluations")
    connection.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    connection.commit()
    connection.close()
    with Store(path, readonly=True) as store:  # read-only: migrated in memory, the file untouched
        assert store.runs()[0]["final_primary"] == 12.5
    with Store(path) as store:
        assert store.meta("schema_version") == 3
        store.register([{"run_id": "a", "cohort_id": "c", "position": 0, "label": "kd", "cell": {}, "seed": 0,
                         "config": {}, "epochs": 1, "evaluation": {"data.generation": {"protocol": "minillm"}}}])
        run = store.runs()[0]
        assert run["evaluation"] is None and run["final_primary"] == 12.5 and not run.get("awaiting_evaluation")
        store.record_evaluation("run", "a", {"x": 1}, {"rouge_l": 1.0})
        assert list(store.evaluations("run", "a").values())[0]["metrics"] == {"rouge_l": 1.0}

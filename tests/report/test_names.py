"""Reports speak in the methods' published names, not in config keys: the method table, the
heatmap, the curves and the method figure of a temperature-methods study say ``KD``, ``WTTM``,
``DTS [4, 8]``, ``DKD + DTS [4, 8]``, ``CTKD``, never ``objective=wttm, policy=fixed``; a teacher is
named once (its prepared label or its weights file), never ``teacher model=..., teacher=...``;
the teacher table names the split of each of its accuracy columns; the HTML heatmap shows
``mean ± std`` where the Markdown does. Stores are built directly through the Store API."""

import csv
import re
from pathlib import Path

import pytest

from kdtemp.engine.results import RunResult
from kdtemp.objectives.registry import display_name_of
from kdtemp.report import build_report
from kdtemp.report.tables import markdown_text, method_rows, records
from kdtemp.study import Store

DTS = {"initial": 4.0, "minimum": 4.0, "maximum": 8.0}
"""Every run's resolved DTS bounds (as a study stores them: constant, so not a setting field)."""


def config(objective, temperature, policy="fixed", seed=0, teacher=None, epochs=1):
    return {"data": {"dataset": "digits"}, "teacher": teacher or {"name": "resnet20", "init": "random"},
            "data_seed": seed, "batch_size": 32,
            "student": {"objective": objective, "temperature": temperature, "temperature_policy": policy,
                        "dts": dict(DTS), "loss_preset": "official", "epochs": epochs,
                        "model": {"name": "resnet20"}, "optimizer": {"name": "adamw"}, "seed": seed}}


def store_of(folder: Path, runs: list[tuple[str, dict, float]], teachers: list[tuple[str, dict, dict]] = ()) -> Path:
    """A finished study's store: ``runs`` as (run_id, config, final top-1), one epoch each, the
    teacher's test top-1 93.5; ``teachers`` as (teacher_id, config, diagnostics)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, results = [], []
    for position, (run_id, cfg, value) in enumerate(runs):
        seed = cfg["student"]["seed"]
        rows.append({"run_id": run_id, "cohort_id": f"c{seed}", "position": position, "label": run_id,
                     "cell": {}, "seed": seed, "config": cfg, "epochs": 1})
        curve = [{"epoch": 1, "train_loss": 1.0, "top1": value, "temperature": cfg["student"]["temperature"], "lr": 0.1}]
        results.append(RunResult.from_curve(curve, "top1", "max", run_id=run_id, label=run_id, status="done", error=None,
                                            epochs_done=1, seconds=1.0, teacher={"top1": 93.5}).__dict__)
    with Store(folder / "study.sqlite") as store:
        store.set_meta("name", "synthetic")
        store.set_meta("run_ids", [r["run_id"] for r in rows])
        store.register(rows)
        for result in results:
            store.record(result)
        for teacher_id, cfg, diagnostics in teachers:
            store.record_teacher(teacher_id, cfg, diagnostics)
    return folder


FIXED = {"kd": {1.0: 60.0, 4.0: 64.0}, "wttm": {1.0: 61.0, 4.0: 63.0}, "dkd": {1.0: 62.0, 4.0: 65.0},
         "ls_kd": {1.0: 58.0, 4.0: 59.0}, "normkd_dkd": {1.0: 57.0, 4.0: 56.0}}
OWN = {"kd-dts": ("kd", "dts", 62.5), "dkd-dts": ("dkd", "dts", 63.5), "ctkd": ("ctkd", "ctkd", 61.5)}
NAMES = {"KD", "WTTM", "DKD", "LS-KD (logit standardization)", "NormKD+DKD", "DTS [4, 8]", "DKD + DTS [4, 8]", "CTKD",
         "cross-entropy only (no KD)"}


@pytest.fixture(scope="module")
def methods(tmp_path_factory):
    """A temperature-methods study: five objectives at two T, DTS on KD and on DKD, CTKD and a
    cross-entropy-only run; two seeds (seed 1 is seed 0 plus 1)."""
    runs = []
    for seed in (0, 1):
        for objective, cells in FIXED.items():
            for t, value in cells.items():
                runs.append((f"{objective}-{t:g}-{seed}", config(objective, t, seed=seed), value + seed))
        for run_id, (objective, policy, value) in OWN.items():
            runs.append((f"{run_id}-{seed}", config(objective, None, policy, seed=seed), value + seed))
        runs.append((f"ce-{seed}", config(None, None, seed=seed), 50.0 + seed))
    folder = store_of(tmp_path_factory.mktemp("names") / "study", runs)
    return build_report(folder)


def svg_texts(path: Path) -> list[str]:
    """The texts of a matplotlib SVG (each drawn text is preceded by a comment holding it)."""
    return re.findall(r"<!-- (.*?) -->", path.read_text())


def test_display_names_are_the_published_names():
    expected = {"kd": "KD", "dkd": "DKD", "ea_kd": "EA-KD", "ea_dkd": "EA-DKD", "ctkd": "CTKD",
                "ls_kd": "LS-KD (logit standardization)", "ls_dkd": "LS-DKD (logit standardization)", "mlkd": "MLKD",
                "rld": "RLD", "dist": "DIST", "ttm": "TTM", "wttm": "WTTM", "normkd": "NormKD",
                "normkd_dkd": "NormKD+DKD", "ats": "ATS", "dtkd": "DTKD", "energy_kd": "Energy KD",
                "ls_instance": "per-instance label smoothing", "ls_global": "global label smoothing",
                "shuffled_tail": "shuffled tail (bottom N-k randomised)"}
    assert {name: display_name_of(name) for name in expected} == expected


def test_the_method_table_lists_published_names(methods):
    table = (methods.folder / "methods.md").read_text()
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| all runs |")]
    # (Markdown text: its brackets escaped, "DTS \\[4, 8\\]", which renders as "DTS [4, 8]")
    assert {row[1] for row in rows} == {markdown_text(n) for n in NAMES - {"cross-entropy only (no KD)"}}, table
    assert "objective=" not in table and "policy=" not in table
    kd = next(row for row in rows if row[1] == "KD")
    assert kd[2] == "4" and kd[6].startswith("+0.00 (")  # the numbers are those of before
    html = methods.html.read_text()
    section = html.split("Methods at their best temperature", 1)[1].split("<h2>", 1)[0]
    for name in NAMES - {"cross-entropy only (no KD)"}:
        assert f"<td>{name}</td>" in section, name


def test_the_heatmap_and_the_points_table_name_the_methods(methods):
    for table in ("heatmap_final.md", "heatmap_best.md"):
        text = (methods.folder / table).read_text()
        assert "objective=" not in text and "policy=" not in text, text
        rows = {line.split(" | ")[0][2:] for line in text.splitlines() if line.startswith("| ") and "---" not in line}
        assert rows - {"setting"} == {markdown_text(n) for n in NAMES}, rows
    html = methods.html.read_text()
    assert "objective=" not in html and "policy=" not in html
    rows = list(csv.DictReader((methods.folder / "heatmap.csv").open()))
    assert {r["label"] for r in rows} == NAMES
    # the setting column keeps the configuration's fields (a stable key for scripts)
    assert {r["setting"] for r in rows if r["label"] == "WTTM"} == {"objective=wttm, policy=fixed"}


def test_the_figures_name_the_methods(methods):
    for figure in ("methods", "heatmap", "curves"):
        texts = svg_texts(methods.folder / f"{figure}.svg")
        assert not any("objective=" in t or "policy=" in t for t in texts), (figure, texts)
    legend = svg_texts(methods.folder / "methods.svg")
    for name in ("KD", "WTTM", "DKD", "LS-KD (logit standardization)", "NormKD+DKD", "DTS [4, 8]", "DKD + DTS [4, 8]"):
        assert name in legend, (name, legend)
    assert "CTKD (learned T)" in legend
    heatmap = svg_texts(methods.folder / "heatmap.svg")
    assert {"KD", "WTTM", "DKD", "NormKD+DKD"} <= set(heatmap), heatmap


def test_method_rows_keep_their_keys_and_add_the_published_name():
    def run(index, objective, temperature, policy="fixed"):
        return {"run_id": str(index), "status": "done", "seed": 0, "final_top1": 50.0 + index, "best_top1": 60.0,
                "curve": [], "config": {"student": {"objective": objective, "temperature": temperature,
                                                    "temperature_policy": policy, "epochs": 1, "dts": dict(DTS)}}}

    rows = method_rows(records([run(1, "kd", 4.0), run(2, "kd", None, "dts"), run(3, "ctkd", None, "ctkd")]), "final_top1")
    assert {r["method"]: r["name"] for r in rows} == {"objective=kd, policy=fixed": "KD",
                                                      "objective=kd, policy=dts": "DTS [4, 8]",
                                                      "objective=ctkd, policy=ctkd": "CTKD"}


TEACHERS = {"resnet56": "/weights/resnet56-4bfd9763.pt", "resnet32": "/weights/resnet32-0c7e21aa.pt"}


def diagnostics(top1):
    return {"top1": top1, "relative_entropy": 0.2, "relative_entropy_without_top": 0.9,
            "profiles": {f"{t:g}": [0.9] + [0.1 / 9] * 9 for t in (1.0, 4.0)}}


@pytest.fixture(scope="module")
def two_teachers(tmp_path_factory):
    """Two teachers given by weights files (their model names differ too), KD and DKD at two T."""
    runs, teachers = [], []
    for name, weights in TEACHERS.items():
        teacher = {"name": name, "weights": weights}
        for objective in ("kd", "dkd"):
            for t in (1.0, 4.0):
                runs.append((f"{name}-{objective}-{t:g}", config(objective, t, teacher=teacher), 40.0 + t))
        teachers.append((f"t-{name}", {"teacher": teacher, "data": {"dataset": "digits"}}, diagnostics(99.0)))
    folder = store_of(tmp_path_factory.mktemp("teachers") / "study", runs, teachers)
    return build_report(folder)


def test_a_teacher_is_named_once(two_teachers):
    folder = two_teachers.folder
    texts = {name: (folder / name).read_text() for name in ("methods.md", "heatmap_final.md", "table_teachers.md",
                                                             "teachers.md", "index.html")}
    texts.update({name: " ".join(svg_texts(folder / name)) for name in ("methods.svg", "heatmap.svg", "profiles.svg")})
    for name, text in texts.items():
        assert "teacher model" not in text and "objective=" not in text, name
        assert "resnet56 (resnet56-4bfd9763)" not in text, name
        assert "resnet56-4bfd9763" in text, name
    titles = svg_texts(folder / "methods.svg")
    assert "teacher=resnet56-4bfd9763" in titles and "teacher=resnet32-0c7e21aa" in titles, titles
    assert "| teacher=resnet56-4bfd9763 | KD |" in texts["methods.md"]
    assert "| resnet56-4bfd9763 | digits |" in texts["teachers.md"]


def test_a_weights_file_that_does_not_name_its_model_keeps_the_model_name():
    def run(index, name, weights):
        return {"run_id": str(index), "status": "done", "seed": 0, "final_top1": 50.0, "best_top1": 60.0, "curve": [],
                "config": {"teacher": {"name": name, "weights": weights},
                           "student": {"objective": "kd", "temperature": 4.0, "epochs": 1}}}

    items = records([run(1, "resnet56", "/w/best.pt"), run(2, "resnet32", "/w/resnet32-0c7e21aa.pt")])
    assert [r.label for r in items] == ["teacher=resnet56 (best)", "teacher=resnet32-0c7e21aa"]


def test_the_teacher_tables_name_the_split_of_each_accuracy(two_teachers):
    html = two_teachers.html.read_text()
    section = html.split("<h2>Teachers</h2>", 1)[1].split("<h2>", 1)[0]
    headers = re.findall(r"<th>(.*?)</th>", section)
    assert "test top-1" in headers and "train top-1" in headers, headers
    assert "top1" not in headers and "test top1" not in headers, headers
    teachers = (two_teachers.folder / "teachers.md").read_text()
    assert "| test top-1 | train top-1 |" in teachers
    table1 = (two_teachers.folder / "table_teachers.md").read_text()
    assert "| test top-1 |" in table1 and "| 93.50 |" in table1


def test_the_html_heatmap_shows_mean_and_std_where_the_markdown_does(methods):
    html = methods.html.read_text()
    tables = html.split("<h2>Tables</h2>", 1)[1].split("<h2>", 1)[0]
    assert "mean ± std" in tables
    rows = list(csv.DictReader((methods.folder / "heatmap.csv").open()))
    for row in rows:
        if row["temperature"]:
            assert f"{float(row['mean']):.2f} ± {float(row['std']):.2f}" in tables, row

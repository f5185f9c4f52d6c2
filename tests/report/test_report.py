"""Reports (``kdtemp.report.build_report``) from finished digits studies: every figure and table,
numbers equal to the store's, the HTML page rendered in a real headless Chromium; what a report
covers (the runs of the current plan only, and says how many it leaves out), stale files it
removes, rows per setting, runs without a fixed temperature, escaped user strings, and every
temperature method drawn."""

import csv
import statistics
import subprocess
from collections import defaultdict

import numpy as np
import pytest
import yaml
from PIL import Image

from kdtemp.advise import Setup, advise
from kdtemp.objectives.registry import display_name_of
from kdtemp.report.tables import markdown_text
from kdtemp.cli import main
from kdtemp.report import build_report
from kdtemp.study import Store, load_study, run_study, store_path

from helpers.report import find_browser
from helpers.study import METHODS_WITH_T
from helpers.trust import BASE, image_folder, study, write_yaml


STUDY = {
    "name": "report-digits",
    "base": {
        "data": {"dataset": "digits", "resolution": 8, "train_per_class": 16, "test_per_class": 10},
        "augment": {"randaugment_ops": 0, "horizontal_flip": False, "mix": True},
        "teacher": {"name": "resnet20", "init": "random"},
        "batch_size": 32,
        "student": {"model": {"name": "resnet20"}, "objective": "kd", "epochs": 2},
    },
    "grid": {"student.temperature": [1, 4, 20], "student.objective": ["kd", "dkd", "ls_instance", "ls_global", "shuffled_tail"],
             "student.epochs": [1, 2]},
    "seeds": [0, 1],
    "executor": {"kind": "inline", "threads": 2},
}


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    (folder / "s.yaml").write_text(yaml.safe_dump(STUDY))
    study = load_study(folder / "s.yaml", output=folder / "study")
    assert run_study(study, progress=False)["done"] == 60
    return study


@pytest.fixture(scope="module")
def report(finished_study):
    return build_report(finished_study.output)


def test_every_figure_and_table_is_produced(report):
    names = {p.name for p in report.files}
    for stem in ("heatmap", "curves", "methods", "signals", "profiles"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
        with Image.open(report.folder / f"{stem}.png") as image:
            assert image.width > 300 and image.height > 200
        assert "<svg" in (report.folder / f"{stem}.svg").read_text()[:2000]
    for table in ("heatmap_final.md", "heatmap_best.md", "heatmap.csv", "teachers.md", "runs.csv", "index.html"):
        assert table in names and (report.folder / table).stat().st_size > 100


def store_means(study, metric):
    """Directly from the store: mean over seeds per (epochs, objective, T)."""
    groups = defaultdict(list)
    with Store(store_path(study), readonly=True) as store:
        for run in store.runs():
            student = run["config"]["student"]
            groups[(student["epochs"], student["objective"], student["temperature"])].append(run[metric])
    return {key: (statistics.fmean(v), statistics.stdev(v), len(v)) for key, v in groups.items()}


def test_table_numbers_equal_the_store(finished_study, report):
    rows = list(csv.DictReader((report.folder / "heatmap.csv").open()))
    for metric in ("final_top1", "best_top1"):
        expected = store_means(finished_study, metric)
        mine = [r for r in rows if r["metric"] == metric]
        assert len(mine) == len(expected) == 30
        for row in mine:
            setting = dict(part.split("=") for part in row["setting"].split(", "))
            key = (int(setting["epochs"]), setting["objective"], float(row["temperature"]))
            mean, std, n = expected[key]
            assert float(row["mean"]) == pytest.approx(mean, abs=1e-12)
            assert float(row["std"]) == pytest.approx(std, abs=1e-12)
            assert int(row["n"]) == n == 2
    # the best of each row is marked, in the CSV and in bold in the Markdown table
    final = [r for r in rows if r["metric"] == "final_top1"]
    by_row = defaultdict(list)
    for r in final:
        by_row[r["setting"]].append(r)
    markdown = (report.folder / "heatmap_final.md").read_text()
    for setting, cells in by_row.items():
        top = max(float(c["mean"]) for c in cells)
        assert {c["temperature"] for c in cells if c["best"] == "1"} == {c["temperature"] for c in cells if float(c["mean"]) == top}
        line = next(l for l in markdown.splitlines() if l.startswith(f"| {markdown_text(cells[0]['label'])} |"))
        assert f"**{top:.2f}**" in line


def test_teacher_table_equals_the_stored_diagnostics(finished_study, report):
    with Store(store_path(finished_study), readonly=True) as store:
        (teacher,) = store.teachers()
    diagnostics = teacher["diagnostics"]
    text = (report.folder / "teachers.md").read_text()
    assert f"| {diagnostics['relative_entropy']:.3f} | {diagnostics['relative_entropy_without_top']:.3f} |" in text
    assert set(diagnostics["profiles"]) == {"1", "2", "3", "4", "5", "7", "10", "20", "40"}


def test_report_command(finished_study, capsys):
    assert main(["report", str(finished_study.output), "--output", str(finished_study.output / "r2")]) == 0
    assert "index.html" in capsys.readouterr().out
    assert (finished_study.output / "r2" / "heatmap.png").is_file()


def colour_signature(path, count=12):
    """The most common saturated colours of an image (its data, not the white background or text)."""
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    spread = pixels.max(axis=1) - pixels.min(axis=1)
    saturated = pixels[spread > 60]
    colours, frequency = np.unique(saturated, axis=0, return_counts=True)
    return colours[np.argsort(-frequency)[:count]], saturated.shape[0]


def count_near(pixels, colours, tolerance=10):
    distance = np.abs(pixels[:, None, :] - colours[None, :, :]).max(axis=2)
    return int((distance <= tolerance).any(axis=1).sum())


def test_html_page_renders_heatmap_and_curves_in_chromium(report, tmp_path):
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,6000", "--force-device-scale-factor=1"]
    url = report.html.resolve().as_uri()
    dom = subprocess.run(flags + ["--virtual-time-budget=5000", "--dump-dom", url], capture_output=True, text=True, timeout=120)
    rendered = dom.stdout.split('data-rendered="', 1)[1].split('"', 1)[0].split()
    assert {"heatmap", "curves", "methods", "signals", "profiles"} <= set(rendered)  # every image decoded

    shot = tmp_path / "page.png"
    subprocess.run(flags + [f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    screen = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    for figure in ("heatmap", "curves"):
        colours, amount = colour_signature(report.folder / f"{figure}.png")
        others = [colour_signature(report.folder / f"{f}.png")[0] for f in ("heatmap", "curves") if f != figure]
        own = np.array([c for c in colours if all(np.abs(o - c).max(axis=1).min() > 10 for o in others)])
        assert len(own) > 0
        expected = count_near(np.asarray(Image.open(report.folder / f"{figure}.png").convert("RGB")).reshape(-1, 3).astype(int), own)
        # the figure's own colours appear on screen about as often as in the figure itself
        assert count_near(screen, own) >= 0.5 * expected > 0, figure


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


def test_the_report_shows_only_the_runs_of_the_current_file(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", study(grid={"student.temperature": [1, 4]}))
    run_study(load_study(path, output=tmp_path / "out"), progress=False)
    path = write_yaml(tmp_path / "s.yaml", study(grid={"student.temperature": [2]}))  # the file was edited
    run_study(load_study(path, output=tmp_path / "out"), progress=False)
    report = build_report(tmp_path / "out")
    text = (report.folder / "heatmap_final.md").read_text()
    assert "T=2" in text and "T=1" not in text and "T=4" not in text
    with Store(tmp_path / "out" / "study.sqlite", readonly=True) as store:
        assert len(store.runs()) == 3  # the earlier runs are kept, not shown


def test_two_folders_of_one_name_are_two_rows(tmp_path):
    roots = [image_folder(tmp_path / "a" / "birds"), image_folder(tmp_path / "b" / "birds")]
    base = {**BASE, "data": {"dataset": "folder", "resolution": 8}, "batch_size": 6}
    s = load_study(write_yaml(tmp_path / "s.yaml", study(base=base, grid={"data.root": [str(r) for r in roots]})),
                   output=tmp_path / "out")
    run_study(s, progress=False)
    rows = [line for line in (build_report(s.output).folder / "heatmap_final.md").read_text().splitlines()
            if line.startswith("| data")]
    assert len(rows) == 2  # not averaged together as if they were seeds of one setting


def test_report_draws_dts_as_its_own_series_not_at_a_temperature(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", study(presets=["dts"]))
    s = load_study(path, output=tmp_path / "out")
    assert len(s.runs) == 4
    assert run_study(s, progress=False)["done"] == 4
    report = build_report(s.output)
    rows = list(csv.DictReader((report.folder / "heatmap.csv").open()))
    final = [r for r in rows if r["metric"] == "final_top1"]
    assert sorted(r["temperature"] for r in final) == ["", "", "1", "4"]
    assert all("dts" in r["setting"] for r in final if r["temperature"] == "")
    markdown = (report.folder / "heatmap_final.md").read_text()
    assert "runs without a fixed temperature (DTS, CTKD, no KD)" in markdown
    heat_rows = [line for line in markdown.split("runs without")[0].splitlines()
                 if line.startswith("| ") and not line.startswith("| setting")]
    assert len(heat_rows) == 1  # only the fixed-T setting has T columns
    with Store(store_path(s), readonly=True) as store:
        runs = store.runs()
    assert sorted(str(r["config"]["student"]["temperature"]) for r in runs) == ["1.0", "4.0", "None", "None"]
    assert "Runs without a fixed temperature (DTS, CTKD, no KD)" in report.html.read_text()


def test_markdown_tables_escape_user_strings(tmp_path):
    roots = [image_folder(tmp_path / "a|b"), image_folder(tmp_path / "<i>c</i>*")]
    base = {**BASE, "data": {"dataset": "folder", "resolution": 8}, "batch_size": 6}
    s = load_study(write_yaml(tmp_path / "s.yaml", study(base=base, grid={"data.root": [str(r) for r in roots]})),
                   output=tmp_path / "out")
    assert run_study(s, progress=False)["done"] == 2
    report = build_report(s.output)
    lines = [line for line in (report.folder / "heatmap_final.md").read_text().splitlines() if line.startswith("| data")]
    assert len(lines) == 2
    for line in lines:  # a row is exactly: setting | one value, whatever the setting holds
        cells = [cell for cell in __import__("re").split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == 2, line
    text = "\n".join(lines)  # the folders are named by their last path part: "a|b" and "i>*" (of "<i>c</i>*")
    assert "dataset=a\\|b" in text and "dataset=i\\>\\*" in text


def test_the_report_draws_every_method(finished):
    report = build_report(finished.output)
    heatmap = (report.folder / "heatmap_final.md").read_text()
    for method in METHODS_WITH_T:
        assert f"| {markdown_text(display_name_of(method))} |" in heatmap
    assert "| CTKD |" in heatmap and "| DTS \\[4, 8\\] |" in heatmap
    table = (report.folder / "methods.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| all runs |")]
    assert len(rows) == len(METHODS_WITH_T) + 2
    kd = next(line for line in rows if line.startswith("| all runs | KD |"))
    assert "| +0.00 (" in kd  # KD at its best is the baseline of the gain column
    assert {"methods.png", "methods.svg"} <= {p.name for p in report.files}

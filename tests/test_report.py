"""Reports from a finished digits study: every figure and table, numbers equal to the store's,
and the HTML page rendered in a real headless Chromium."""

import csv
import shutil
import statistics
import subprocess
from collections import defaultdict

import numpy as np
import pytest
import yaml
from PIL import Image

from kdtemp.cli import main
from kdtemp.report import build_report
from kdtemp.study import Store, load_study, run_study, store_path

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
        line = next(l for l in markdown.splitlines() if l.startswith(f"| {setting} |"))
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


def find_browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


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

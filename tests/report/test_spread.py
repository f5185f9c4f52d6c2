"""A heatmap does not pass noise off as a finding: every cell whose mean lies within the best
cell's seed std of the best mean is marked (a dagger and a legend line in the Markdown and HTML
tables, a column of the CSV, hatching in the figure, distinct from the best cell's box); with one
seed (no spread) nothing extra is marked. The numbers stay those of the store."""

import csv

import pytest
from matplotlib.patches import Rectangle

from kdtemp.report import build_report, figures
from kdtemp.report.html import table_html
from kdtemp.report.tables import Cell, heatmap_csv, heatmap_markdown, within_best_spread
from helpers.report import stored_run, write_store

# the demo's shape: every cell within one seed std of the best (T = 2), except T = 8
NOISY = {"setting A": {1.0: Cell(97.40, 0.20, 3), 2.0: Cell(97.60, 0.30, 3), 4.0: Cell(97.35, 0.25, 3),
                       8.0: Cell(97.20, 0.10, 3)}}
ONE_SEED = {"setting A": {1.0: Cell(97.40, 0.0, 1), 2.0: Cell(97.60, 0.0, 1), 4.0: Cell(97.35, 0.0, 1)}}


def test_the_cells_within_the_best_cell_s_seed_std_are_found():
    assert within_best_spread(NOISY["setting A"]) == {1.0, 2.0, 4.0}  # |97.6 - m| <= 0.30; 97.20 is not
    assert within_best_spread(ONE_SEED["setting A"]) == set()  # no spread: nothing is within it
    lower = {1.0: Cell(1.0, 0.5, 2, "min"), 2.0: Cell(1.4, 0.1, 2, "min"), 4.0: Cell(1.6, 0.1, 2, "min")}
    assert within_best_spread(lower) == {1.0, 2.0}  # a loss: the best is the lowest


def test_the_markdown_marks_them_and_says_so():
    text = heatmap_markdown(NOISY, "final top-1 (%)")
    row = next(line for line in text.splitlines() if line.startswith("| setting A |"))
    cells = [c.strip() for c in row.split("|")[2:-1]]
    assert cells == ["97.40 +- 0.20 †", "**97.60** +- 0.30", "97.35 +- 0.25 †", "97.20 +- 0.10"], cells
    legend = [line for line in text.splitlines() if line.startswith("†")]
    assert len(legend) == 1 and "within the best cell's seed std" in legend[0], text
    plain = heatmap_markdown(ONE_SEED, "final top-1 (%)")
    assert "†" not in plain and "**97.60**" in plain


def test_the_html_table_marks_them_and_shows_mean_and_std():
    html = table_html(NOISY, "final top-1 (%), mean ± std over seeds")
    assert html.count('class="within"') == 2 and html.count('class="best"') == 1
    assert "97.40 ± 0.20 †" in html and "97.60 ± 0.30<" in html and "97.20 ± 0.10<" in html
    assert "within the best cell's seed std" in html
    plain = table_html(ONE_SEED, "final top-1 (%)")
    assert "within" not in plain and "†" not in plain and "±" not in plain  # one seed: the mean alone


def test_the_csv_has_a_column_for_them():
    rows = list(csv.DictReader(heatmap_csv({"final_top1": NOISY}).splitlines()))
    assert {float(r["temperature"]): r["within_best_std"] for r in rows} == {1.0: "1", 2.0: "1", 4.0: "1", 8.0: "0"}
    assert [float(r["mean"]) for r in rows] == [97.40, 97.60, 97.35, 97.20]  # the numbers are those of the cells
    rows = list(csv.DictReader(heatmap_csv({"final_top1": ONE_SEED}).splitlines()))
    assert {r["within_best_std"] for r in rows} == {""}  # no spread to be within


def hatched(figure):
    return [p for p in figure.axes[0].patches if isinstance(p, Rectangle) and p.get_hatch()]


def boxed(figure):
    return [p for p in figure.axes[0].patches if isinstance(p, Rectangle) and not p.get_hatch() and not p.get_fill()]


def test_the_figure_hatches_them_apart_from_the_best_cell_s_box():
    figure = figures.heatmap(NOISY, "final top-1 (%)")
    marks = hatched(figure)
    assert sorted(round(p.get_x() + p.get_width() / 2) for p in marks) == [0, 2]  # T = 1 and T = 4
    assert [round(p.get_x() + p.get_width() / 2) for p in boxed(figure)] == [1]  # the best, T = 2
    assert any("within the best cell's seed std" in t.get_text() for t in figure.legends[0].get_texts())
    figure = figures.heatmap(ONE_SEED, "final top-1 (%)")
    assert not hatched(figure) and len(boxed(figure)) == 1 and not figure.legends


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A stored study of one setting at four T, three seeds: T = 2 best, T = 1 and 4 within its spread."""
    values = {1.0: (97.2, 97.4, 97.6), 2.0: (97.3, 97.6, 97.9), 4.0: (97.1, 97.35, 97.6), 8.0: (97.1, 97.2, 97.3)}
    folder = tmp_path_factory.mktemp("spread") / "study"
    folder.mkdir()
    runs = []
    for t, seeds in values.items():
        for seed, value in enumerate(seeds):
            config = {"data": {"dataset": "digits"}, "teacher": {"name": "resnet20"}, "data_seed": seed,
                      "student": {"objective": "kd", "temperature": t, "temperature_policy": "fixed", "epochs": 1,
                                  "seed": seed}}
            runs.append(stored_run(f"kd-{t:g}-{seed}", config, t, seed, {"top1": value}, position=len(runs)))
    write_store(folder / "study.sqlite", runs)
    return build_report(folder)


def test_the_report_marks_the_spread_in_every_table(report):
    markdown = (report.folder / "heatmap_final.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| all runs |"))
    assert row.count("†") == 2 and "**97.60** +- 0.30" in row, row
    assert any(line.startswith("†") for line in markdown.splitlines())
    rows = [r for r in csv.DictReader((report.folder / "heatmap.csv").open()) if r["metric"] == "final_top1"]
    assert {r["temperature"]: r["within_best_std"] for r in rows} == {"1": "1", "2": "1", "4": "1", "8": "0"}
    assert {r["temperature"]: float(r["mean"]) for r in rows} == pytest.approx({"1": 97.4, "2": 97.6, "4": 97.35,
                                                                               "8": 97.2}, abs=1e-9)
    html = report.html.read_text()
    assert html.count('class="within"') == 4  # two cells in each of the final and best-epoch tables
    assert "within the best cell's seed std" in html

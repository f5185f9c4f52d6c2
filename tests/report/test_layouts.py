"""The report lays out each experiment of the protocol as the paper does, on digits studies shaped
like them: one method panel per pair, panels per optimizer x batch with the shorter runs labelled,
the teacher table with test accuracy and entropies beside the heatmap, temperature traces of DTS and
CTKD, the method table. Numbers equal the store's; the page renders in headless Chromium."""

import csv
import statistics
from collections import defaultdict

import pytest
from PIL import Image

from kdtemp.report import build_report
from kdtemp.study import Store, load_study, run_study, store_path

from helpers.report import find_browser, rendered_figures
from helpers.trust import BASE, image_folder, study, write_yaml


def finished(tmp_path_factory, name, **changes):
    folder = tmp_path_factory.mktemp(name)
    s = load_study(write_yaml(folder / "s.yaml", study(name=name, **changes)), output=folder / "study")
    counts = run_study(s, progress=False)
    assert counts["done"] == len(s.runs), counts
    return s, build_report(s.output)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Fig. 1 / DTS shape: two students (two pairs), fixed-T KD vs DTS (both ranges) vs CTKD, 2 seeds."""
    return finished(tmp_path_factory, "pairs", grid={"student.model.name": ["resnet20", "resnet32"],
                                                     "student.temperature": [1, 4]},
                    presets=["dts_comparison"], seeds=[0, 1])


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    """Figs. 2-3 shape: optimizer x batch x epochs x T."""
    return finished(tmp_path_factory, "training", grid={"batch_size": [16, 32], "student.epochs": [1, 2],
                                                        "student.temperature": [1, 4]}, presets=["optimizers"])


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Table 1 shape: teachers prepared by the study for two lengths, students at 2 T, 2 seeds."""
    prepare = {"teachers": {"base": {"model": {"name": "resnet20"}, "optimizer": {"lr": 5.0e-3}, "epochs": 1},
                            "grid": {"epochs": [1, 2]}}}
    return finished(tmp_path_factory, "teachers", prepare=prepare, seeds=[0, 1],
                    base={**BASE, "teacher": {"prepared": "teachers"}})


def test_every_figure_and_table_of_each_shape(pairs, training, teachers):
    for (_, report), expected in [(pairs, {"methods.png", "methods.md", "temperatures.png", "curves.png"}),
                                  (training, {"curves.png", "heatmap.png", "heatmap_final.md"}),
                                  (teachers, {"table_teachers.md", "profiles.png", "profiles_log.png", "teachers.md"})]:
        names = {p.name for p in report.files}
        assert expected <= names, expected - names
        for name in names:
            if name.endswith(".png"):
                with Image.open(report.folder / name) as image:
                    assert image.width > 300 and image.height > 200, name


def panels(path):
    """The number of plotting areas in a PNG: white-backgrounded axes found by matplotlib's layout
    are not recoverable from pixels, so count the panels from the SVG's axes groups."""
    return (path.with_suffix(".svg")).read_text().count('<g id="axes_')


def test_one_method_panel_per_pair_and_named_methods(pairs):
    _, report = pairs
    assert panels(report.folder / "methods.png") == 2  # one per student (pair)
    svg = (report.folder / "methods.svg").read_text()
    for name in ("<!-- KD -->", "DTS [4, 8]", "DTS [1, 3]", "CTKD (learned T)"):
        assert name in svg, name
    table = (report.folder / "methods.md").read_text()
    assert table.count("| student=resnet20 |") == 4 and table.count("| student=resnet32 |") == 4


def test_training_panels_per_optimizer_and_batch_with_labelled_shorter_runs(training):
    _, report = training
    assert panels(report.folder / "curves.png") >= 4  # 2 optimizers x 2 batch sizes (plus their right axes)
    svg = (report.folder / "curves.svg").read_text()
    assert "1 epochs (grey)" in svg and "shorter runs (grey)" in svg
    markdown = (report.folder / "heatmap_final.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| batch=")]
    assert [r.split(",")[0] for r in rows][:2] == ["| batch=16", "| batch=16"]  # natural order: 16 before 32


def test_the_teacher_table_equals_the_store(teachers):
    s, report = teachers
    with Store(store_path(s), readonly=True) as store:
        runs, diagnosed, preparations = store.runs(), store.teachers(), store.preparations()
    table = (report.folder / "table_teachers.md").read_text()
    labels = {p["prep_id"]: p["label"] for p in preparations}
    for teacher in diagnosed:
        prep_id = teacher["config"]["teacher"]["prepared"]
        row = next(line for line in table.splitlines() if line.startswith(f"| {labels[prep_id]} |"))
        test = next(r["teacher"]["top1"] for r in runs if r["config"]["teacher"]["prepared"] == prep_id)
        assert f"| {test:.2f} | {teacher['diagnostics']['relative_entropy']:.3f} |" in row
        means = defaultdict(list)
        for run in runs:
            if run["config"]["teacher"]["prepared"] == prep_id:
                means[run["config"]["student"]["temperature"]].append(run["final_top1"])
        for values in means.values():
            mean, std = f"{statistics.fmean(values):.2f}", f"{statistics.stdev(values):.2f}"
            assert f"{mean} +- {std}" in row or f"**{mean}** +- {std}" in row


def test_heatmap_numbers_equal_the_store(training):
    s, report = training
    with Store(store_path(s), readonly=True) as store:
        runs = store.runs()
    rows = [r for r in csv.DictReader((report.folder / "heatmap.csv").open()) if r["metric"] == "final_top1"]
    assert len(rows) == len(runs)  # one seed: one run per cell
    values = sorted(float(r["mean"]) for r in rows)
    assert values == pytest.approx(sorted(r["final_top1"] for r in runs), abs=1e-12)


def test_the_pages_render_in_chromium(pairs, teachers, tmp_path):
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    for (_, report), expected in [(pairs, {"methods", "temperatures", "curves", "heatmap"}),
                                  (teachers, {"profiles", "heatmap", "curves"})]:
        rendered = rendered_figures(browser, report.html, tmp_path / report.folder.parent.name)
        assert expected <= rendered, expected - rendered

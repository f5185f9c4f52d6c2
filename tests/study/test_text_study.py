"""A two-stage text-classification study from one file (issue: text classification): a tiny random
BERT teacher fine-tuned by the study on GLUE SST-2's TSV layout, then three temperatures and DTS
distilled into a smaller one; killed once in each stage and resumed to the uninterrupted table, run
unchanged on the local executor, and reported (the page renders in Chromium)."""

import json

import pytest

pytest.importorskip("transformers", reason="the text task needs the text extra: pip install 'kdtemp[text]'")

from kdtemp.cli import main  # noqa: E402
from kdtemp.report import build_report  # noqa: E402
from kdtemp.study import Store, load_study, run_study, store_path  # noqa: E402

from helpers.report import find_browser, rendered_figures  # noqa: E402
from helpers.study import epoch_events as events, kill_in_each_stage, table  # noqa: E402
from helpers.text import tiny_bert, train_tokenizer, write_sst2  # noqa: E402
from helpers.trust import write_yaml  # noqa: E402

EPOCHS = 6


def text_study() -> dict:
    return {
        "name": "text-two-stage",
        "prepare": {"teacher": {"base": {"model": {"name": "tiny-teacher", "init": "random", "config": tiny_bert()},
                                         "optimizer": {"lr": 3.0e-3}, "epochs": 6, "label_smoothing": 0.0}}},
        "base": {"task": "text_classification",
                 "data": {"dataset": "sst2", "root": "SST-2", "tokenizer": "tokenizer", "max_length": 32},
                 "teacher": {"prepared": "teacher"}, "batch_size": 16,
                 "student": {"model": {"name": "tiny-student", "init": "random", "config": tiny_bert(layers=1)},
                             "epochs": EPOCHS, "optimizer": {"lr": 5.0e-3}, "loss_preset": "official"}},
        "zip": [{"student.temperature_policy": ["fixed", "fixed", "fixed", "dts"],
                 "student.temperature": [1, 4, 10, None]}],
        "seeds": [0],
        "executor": {"kind": "inline", "threads": 1},
    }


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text-study")
    write_sst2(folder / "SST-2")
    train_tokenizer(folder / "tokenizer")
    return write_yaml(folder / "study.yaml", text_study())


@pytest.fixture(scope="module")
def reference(study_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("reference") / "study"
    study = load_study(study_file, output=output)
    assert run_study(study, progress=False)["done"] == 4
    rows = table(study)
    assert "final_accuracy" in rows[0] and "best_accuracy" in rows[0]  # the export names the primary metric
    with Store(store_path(study), readonly=True) as store:  # the runs differ, so equal tables prove something
        assert len({json.dumps(run["curve"]) for run in store.runs()}) == 4
    return rows, output


@pytest.mark.slow
def test_killed_in_each_stage_and_resumed_to_the_same_table(study_file, reference, tmp_path):
    output = tmp_path / "study"
    stages = (lambda: events(output.parent / "prepared" / "runs") >= 2, lambda: events(output / "runs") >= 3)
    kill_in_each_stage(study_file, output, stages)
    assert events(output.parent / "prepared" / "runs") == 6  # the teacher's epochs, each once
    assert main(["study", "resume", study_file, "--output", str(output), "--quiet"]) == 0
    assert table(load_study(study_file, output=output)) == reference[0]


@pytest.mark.slow
def test_the_text_study_runs_unchanged_on_the_local_executor(study_file, reference, tmp_path):
    output = tmp_path / "study"
    assert main(["study", "run", study_file, "--output", str(output), "--executor", "local", "--workers", "2",
                 "--quiet"]) == 0
    assert table(load_study(study_file, output=output)) == reference[0]


@pytest.mark.slow
def test_its_report_reads_the_primary_metric_and_renders(reference, tmp_path):
    report = build_report(reference[1], tmp_path / "report")
    heatmap = (report.folder / "heatmap_final.md").read_text()
    assert "final accuracy" in heatmap and "T=10" in heatmap and r"DTS \[4, 8\]" in heatmap
    teachers = (report.folder / "teachers.md").read_text().splitlines()
    assert "(test accuracy on the validation split; relative entropies and accuracy on the un-augmented" in teachers[0]
    row = teachers[-1].split("|")  # | teacher | dataset | test | train | H(p) | H(p_bar) |
    assert row[3].strip() and row[4].strip()  # the teacher's test and training-split accuracy (train was empty)
    assert not (report.folder / "profiles.png").exists()  # a binary task: no softmax-profile panels
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    assert {"heatmap", "curves", "temperatures"} <= rendered_figures(browser, report.html, tmp_path / "profile")


def test_plan_shows_the_text_data_and_both_stages(study_file, tmp_path, capsys):
    assert main(["study", "plan", study_file, "--output", str(tmp_path / "study")]) == 0
    out = capsys.readouterr().out
    assert "stage prepare: 1 models in 1 cohorts, 0 prepared already" in out
    assert "data: sst2" in out and "2 classes, 96 train / 40 test inputs" in out and "4 runs in 1 cohorts" in out

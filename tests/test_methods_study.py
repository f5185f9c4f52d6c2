"""Every temperature method of the literature in one study: one cohort per seed, a curve over T
per method with a temperature, one value per method without, and the method table."""

import contextlib
import json

import pytest
import torch

from kdtemp.tasks.image.data import DataConfig, eval_images
from kdtemp.tasks.image.evaluate import predict
from kdtemp.tasks.image.models import ModelConfig, create_model
from kdtemp.objectives import energy_scores, energy_thresholds
from kdtemp.report import build_report
from kdtemp.study import Store, load_study, run_study, store_path

from trust_helpers import study, write_yaml

METHODS_WITH_T = ["kd", "ttm", "wttm", "normkd", "ats", "dtkd", "energy_kd", "ls_kd"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("methods")
    path = write_yaml(folder / "s.yaml", study(presets=["temperature_methods"], grid={"student.temperature": [1, 4]}))
    s = load_study(path, output=folder / "out")
    assert run_study(s, progress=False)["done"] == len(s.runs)
    return s


def test_one_cohort_and_no_duplicated_temperature_free_runs(finished):
    assert len(finished.cohorts) == 1
    assert len(finished.runs) == len(METHODS_WITH_T) * 2 + 2
    labels = [r.spec.student.label() for r in finished.runs]
    assert labels.count("ctkd-learned-T-adamw") == 1 and labels.count("kd-dts[4,8]-adamw") == 1
    assert all(r.spec.student.loss_preset == "official" for r in finished.runs)


def test_the_report_draws_every_method(finished):
    report = build_report(finished.output)
    heatmap = (report.folder / "heatmap_final.md").read_text()
    for method in METHODS_WITH_T:
        assert f"| objective={method}, policy=fixed |" in heatmap
    assert "| objective=ctkd, policy=ctkd |" in heatmap and "| objective=kd, policy=dts |" in heatmap
    table = (report.folder / "methods.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| all runs |")]
    assert len(rows) == len(METHODS_WITH_T) + 2
    kd = next(line for line in rows if "objective=kd, policy=fixed" in line)
    assert "| +0.00 (" in kd  # KD at its best is the baseline of the gain column
    assert {"methods.png", "methods.svg"} <= {p.name for p in report.files}


def test_energy_thresholds_come_from_one_teacher_pass_and_are_stored_with_the_run(finished):
    run = next(r for r in finished.runs if r.spec.student.objective == "energy_kd" and r.spec.student.temperature == 4)
    metrics = json.loads((finished.output / "runs" / run.run_id / "metrics.json").read_text())
    stored = metrics["derived"]["dataset_constants"]
    spec = run.spec
    data = DataConfig(**{**spec.data.__dict__})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the engine's randomly initialised teacher
        teacher = create_model(ModelConfig("resnet20"), 10, allow_new_head=False).eval()
    train = data.load("train")
    logits = predict(teacher, eval_images(train.images, spec.data.resolution, False), 512, contextlib.nullcontext)
    low, high = energy_thresholds(energy_scores(logits), 0.2, 0.2)
    assert stored == {"low": pytest.approx(low, abs=1e-5), "high": pytest.approx(high, abs=1e-5)}


def test_dtkd_logs_its_guarded_samples_per_epoch(finished):
    run = next(r for r in finished.runs if r.spec.student.objective == "dtkd")
    metrics = json.loads((finished.output / "runs" / run.run_id / "metrics.json").read_text())
    counts = metrics["derived"]["dtkd_guarded_samples"]
    assert len(counts) == 1 and 0 <= counts[0] <= 5 * 32  # one epoch of 5 batches of 32


def test_the_store_records_the_official_temperature_axis(finished):
    with Store(store_path(finished), readonly=True) as store:
        runs = store.runs()
    energy = [r for r in runs if r["config"]["student"]["objective"] == "energy_kd"]
    assert sorted(r["config"]["student"]["temperature"] for r in energy) == [1.0, 4.0]

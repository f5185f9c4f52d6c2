"""Trustworthy studies: one test per problem an outside audit observed (issue "Trustworthy studies").

Each test fails on the code before the fix: a wrong result returned with exit 0, a mistake found only
after the store was written, a traceback instead of one line, or a file whose loading runs code.
"""

import csv
import json
import math
import subprocess
import urllib.error

import pytest
import torch

from conftest import shared_data
from kdtemp.cli import main
from kdtemp.config import ConfigError, from_dict, parse_yaml
from kdtemp.tasks.image.data import TrainStream
from kdtemp.tasks.image.data.augment import normalize_float
from kdtemp.engine import CohortConfig, DistillConfig, MemberConfig, TeacherConfig, prepare_teacher, run_cohort
from kdtemp.tasks.image.models import IMAGENET_NORMALIZATION, ModelConfig, create_model, resolve_normalization
from kdtemp.objectives import OBJECTIVES, create_objective, standardize_logits
from kdtemp.report import build_report
from kdtemp.study import Store, load_study, run_study, store_path

from engine_helpers import cohort, member, tiny_augment, tiny_data
from trust_helpers import BASE, files_under, image_folder, plant, study, write_yaml


def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def assert_one_line(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("kdtemp: error: ") and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def objective(name):
    params = {"ls_global": {"coefficient": 0.1}, "energy_kd": {"low": -9.5, "high": -9.1}}  # set by the engine
    return create_objective(name, **params.get(name, {}))


# --- A checkpoint of another class count is refused, never given a random head ------------------------

@pytest.fixture(scope="module")
def ten_class_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    torch.save({"state_dict": create_model(ModelConfig("resnet20"), 10).state_dict()}, folder / "r20.th")
    return folder / "r20.th"


def test_teacher_checkpoint_of_another_class_count_is_refused(tmp_path, capsys, ten_class_weights):
    base = {**BASE, "data": {**BASE["data"], "classes": ["3", "5"]},
            "teacher": {"name": "resnet20", "init": "checkpoint", "weights": str(ten_class_weights)}}
    path = write_yaml(tmp_path / "s.yaml", study(base=base))
    code, _, err = run_cli(["study", "run", path, "--output", str(tmp_path / "out"), "--quiet"], capsys)
    assert_one_line(code, err, "teacher.weights:", "classifier has 10 classes but the data has 2")
    assert not (tmp_path / "out").exists()


def test_student_checkpoint_must_fit_but_pretrained_weights_get_a_new_head(tmp_path, capsys, ten_class_weights):
    base = {**BASE, "data": {**BASE["data"], "classes": ["3", "5"]}}
    checkpoint = {**base, "student": {**BASE["student"], "model": {"name": "resnet20", "init": "checkpoint",
                                                                    "weights": str(ten_class_weights)}}}
    code, _, err = run_cli(["study", "run", write_yaml(tmp_path / "a.yaml", study(base=checkpoint)),
                            "--output", str(tmp_path / "a"), "--quiet"], capsys)
    assert_one_line(code, err, "student.model.weights:", "classifier has 10 classes", "init: pretrained")
    pretrained = {**base, "student": {**BASE["student"], "model": {"name": "resnet20", "init": "pretrained",
                                                                    "weights": str(ten_class_weights)}}}
    code, _, err = run_cli(["study", "run", write_yaml(tmp_path / "b.yaml", study(base=pretrained, grid=None)),
                            "--output", str(tmp_path / "b"), "--quiet"], capsys)
    assert code == 0, err  # fine-tuning general weights on a 2-class target is what init: pretrained says


def test_timm_pretrained_teacher_of_another_class_count_is_refused_without_a_download(tmp_path, capsys):
    base = {**BASE, "teacher": {"name": "resnet18", "init": "pretrained"}}
    code, _, err = run_cli(["study", "plan", write_yaml(tmp_path / "s.yaml", study(base=base)),
                            "--output", str(tmp_path / "out")], capsys)
    assert_one_line(code, err, "teacher.init:", "has 1000 classes and the data has 10")


def test_the_audited_cifar10_resnet56_on_cat_and_dog_is_refused(tmp_path, capsys):
    weights = shared_data("resnet-cifar10-weights.tar")
    images = shared_data("cifar10-jpeg.tar.xz")
    subprocess.run(["tar", "-xf", str(weights), "-C", str(tmp_path)], check=True)
    wanted = [f"cifar10-jpeg/{split}/{name}" for split in ("train", "test") for name in ("cat", "dog")]
    subprocess.run(["tar", "-xJf", str(images), "-C", str(tmp_path), *wanted], check=True)
    (checkpoint,) = (tmp_path / "resnet-cifar10").glob("resnet56-*.th")
    base = {**BASE, "data": {"dataset": "folder", "root": str(tmp_path / "cifar10-jpeg"), "classes": ["cat", "dog"],
                             "train_per_class": 40, "test_per_class": 20, "resolution": 32},
            "teacher": {"name": "resnet56", "init": "checkpoint", "weights": str(checkpoint)}}
    path = write_yaml(tmp_path / "s.yaml", study(base=base))
    code, _, err = run_cli(["study", "run", path, "--output", str(tmp_path / "out"), "--quiet"], capsys)
    assert_one_line(code, err, "teacher.weights:", "classifier has 10 classes but the data has 2")
    assert not (tmp_path / "out").exists()


# --- Each model sees its input normalised the way its weights expect ------------------------------------

def test_normalisation_comes_from_the_weights_or_the_config():
    assert resolve_normalization(ModelConfig("vit_small_patch16_224"), None, None) == ((0.5,) * 3, (0.5,) * 3)
    assert resolve_normalization(ModelConfig("mobilevitv2_150"), None, None) == ((0.0,) * 3, (1.0,) * 3)
    assert resolve_normalization(ModelConfig("resnet20"), None, None) == IMAGENET_NORMALIZATION
    explicit = ModelConfig("resnet20", mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2])
    assert resolve_normalization(explicit, None, None) == ((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    recorded = {"normalization": {"mean": [0.1, 0.2, 0.3], "std": [0.3, 0.3, 0.3]}}
    assert resolve_normalization(ModelConfig("resnet20"), None, recorded) == ((0.1, 0.2, 0.3), (0.3, 0.3, 0.3))


def test_teacher_and_student_each_get_their_own_normalisation(tmp_path, monkeypatch):
    import kdtemp.engine.cohort as cohort_module
    import kdtemp.engine.member as member_module

    seen = {"teacher": [], "student": []}
    original = cohort_module.create_model

    def recording(config, num_classes, allow_new_head=None):
        model = original(config, num_classes, allow_new_head)
        role = "teacher" if allow_new_head is False else "student"

        def record(module, args):
            seen[role].append(args[0].clone())  # returns None: the input is unchanged

        model.register_forward_pre_hook(record)
        return model

    monkeypatch.setattr(cohort_module, "create_model", recording)
    monkeypatch.setattr(member_module, "create_model", recording)
    teacher = ModelConfig("resnet20", mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    config = cohort([member(epochs=1)], teacher=teacher)
    (result,) = run_cohort(config, output=tmp_path, progress=False)

    stream = TrainStream(config.data.load("train"), config.batch_size, config.augment, config.data.resolution,
                         config.data_seed)
    first = next(stream.epoch(1))
    # the first training batch (the teacher's first call scores it on the 100 test images)
    teacher_input = next(x for x in seen["teacher"] if x.shape[0] == config.batch_size)
    assert torch.allclose(teacher_input, normalize_float(first.images, ((0.5,) * 3, (0.25,) * 3)), atol=1e-6)
    assert torch.allclose(seen["student"][0], normalize_float(first.images, IMAGENET_NORMALIZATION), atol=1e-6)
    assert result.teacher["normalization"] == {"mean": [0.5] * 3, "std": [0.25] * 3}
    assert result.derived["normalization"]["mean"] == list(IMAGENET_NORMALIZATION[0])


def test_a_teacher_checkpoint_is_evaluated_with_the_normalisation_it_was_trained_with(tmp_path):
    unusual = ModelConfig("resnet20", mean=[0.9, 0.1, 0.5], std=[0.05, 0.5, 0.1])
    prepared = TeacherConfig(data=tiny_data(), augment=tiny_augment(), model=unusual, epochs=2, batch_size=32,
                             device="cpu", output=str(tmp_path / "teacher"))
    path, result = prepare_teacher(prepared, progress=False)
    meta = torch.load(path, weights_only=True)["kdtemp"]
    assert meta["normalization"] == {"mean": [0.9, 0.1, 0.5], "std": [0.05, 0.5, 0.1]}
    distill = from_dict(DistillConfig, {"data": {"dataset": "digits", "resolution": 8, "train_per_class": 16,
                                                 "test_per_class": 10},
                                        "teacher": {"name": "resnet20", "init": "checkpoint", "weights": str(path)},
                                        "student": {"epochs": 1}, "batch_size": 32, "device": "cpu"})
    (run,) = run_cohort(distill.cohort(), output=tmp_path / "runs", progress=False)
    assert run.teacher["top1"] == pytest.approx(result.final_primary, abs=1e-4)  # not re-normalised with ImageNet's


def test_an_explicit_normalisation_that_contradicts_the_checkpoint_is_refused(tmp_path, capsys):
    prepared = TeacherConfig(data=tiny_data(), augment=tiny_augment(), model=ModelConfig("resnet20"), epochs=1,
                             batch_size=32, device="cpu", output=str(tmp_path / "teacher"))
    path, _ = prepare_teacher(prepared, progress=False)
    base = {**BASE, "teacher": {"name": "resnet20", "init": "checkpoint", "weights": str(path),
                                "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}
    code, _, err = run_cli(["study", "plan", write_yaml(tmp_path / "s.yaml", study(base=base))], capsys)
    assert_one_line(code, err, "teacher.mean:", "was trained with mean [0.485, 0.456, 0.406]")


# --- Temperature-free methods are not multiplied by a temperature axis ----------------------------------

def test_kd_approaches_times_temperatures_trains_ctkd_once_per_seed(tmp_path):
    s = load_study(write_yaml(tmp_path / "s.yaml", study(grid=None, presets=["kd_approaches", "temperatures"],
                                                         seeds=[0, 1])))
    ctkd = [r for r in s.runs if r.spec.student.temperature_policy == "ctkd"]
    assert len(s.runs) == 2 * (7 * 9 + 1) and len(ctkd) == 2
    assert all(r.cell["temperatures"] is None and r.spec.student.temperature is None for r in ctkd)
    assert any("'temperatures' does not apply to ctkd" in note and "18 cells train 2 runs" in note for note in s.notes)


def test_dts_times_temperatures_trains_each_range_once(tmp_path):
    s = load_study(write_yaml(tmp_path / "s.yaml", study(grid=None, presets=["dts", "temperatures"])))
    assert len(s.runs) == 9 + 2
    assert sorted(r.cell["dts"] for r in s.runs if r.cell["temperatures"] is None) == ["dts_cross_family",
                                                                                        "dts_same_family"]


def test_fields_a_run_does_not_use_do_not_enter_its_identity():
    from kdtemp.engine.config import DTSConfig, OptimizerConfig, run_id

    shared = cohort([])
    same = [
        (MemberConfig(temperature_policy="dts", temperature=1.0), MemberConfig(temperature_policy="dts", temperature=7.0)),
        (MemberConfig(temperature=2.0), MemberConfig(temperature=2.0, dts=DTSConfig(5, 4, 6))),
        (MemberConfig(name="a"), MemberConfig(name="b")),
        (MemberConfig(optimizer=OptimizerConfig(momentum=0.5)), MemberConfig()),
        (MemberConfig(objective="dkd"), MemberConfig(objective="dkd", objective_params={"beta": 8})),
        (MemberConfig(objective="dkd", loss_preset="official"),
         MemberConfig(objective="dkd", ce_weight=1.0, kd_weight=1.0, warmup_epochs=20, temperature=4.0)),
    ]
    for a, b in same:
        assert run_id(shared, a) == run_id(shared, b), (a, b)
    assert run_id(shared, MemberConfig(temperature=2.0)) != run_id(shared, MemberConfig(temperature=3.0))
    assert run_id(shared, MemberConfig(optimizer=OptimizerConfig(name="sgd", momentum=0.5))) != \
        run_id(shared, MemberConfig(optimizer=OptimizerConfig(name="sgd")))


def test_an_axis_that_applies_to_no_run_is_refused(tmp_path, capsys):
    path = write_yaml(tmp_path / "s.yaml", study(grid={"student.dts.initial": [4, 5]}))
    code, _, err = run_cli(["study", "plan", path], capsys)
    assert_one_line(code, err, "student.dts.initial: applies to no run of this study")


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


# --- The official preset's temperature --------------------------------------------------------------------

def test_official_preset_uses_the_authors_temperature_unless_one_is_given(tmp_path):
    assert MemberConfig(objective="ls_kd", loss_preset="official").effective_temperature == 2.0
    assert MemberConfig(objective="ls_kd", loss_preset="official", temperature=4.0).effective_temperature == 4.0
    assert MemberConfig(objective="ls_kd").effective_temperature == 4.0
    assert MemberConfig(objective="ls_kd", loss_preset="official").label() == "ls_kd-T2-adamw"
    distill = from_dict(DistillConfig, {"data": {"dataset": "digits", "resolution": 8, "train_per_class": 16,
                                                 "test_per_class": 10}, "teacher": {"name": "resnet20"},
                                        "student": {"objective": "ls_kd", "loss_preset": "official", "epochs": 1},
                                        "batch_size": 32, "device": "cpu"})
    (run,) = run_cohort(distill.cohort(), output=tmp_path, progress=False)
    assert run.curve[0]["temperature"] == 2.0


# --- What used to be accepted silently -----------------------------------------------------------------

def test_yaml_reads_exponent_floats_and_refuses_duplicate_keys(tmp_path, capsys):
    assert parse_yaml("lr: 1e-3\nwd: 5E-4\nn: 1_000", "x") == {"lr": 0.001, "wd": 0.0005, "n": 1000}
    base = {**BASE, "student": {**BASE["student"], "optimizer": {"lr": "LR"}}}
    text = (tmp_path / "t.yaml")
    write_yaml(text, study(base=base))
    text.write_text(text.read_text().replace("lr: LR", "lr: 1e-3"))
    s = load_study(text)
    assert s.runs[0].spec.student.optimizer.lr == 0.001
    text.write_text(text.read_text() + "seeds: [1]\n")
    code, _, err = run_cli(["study", "plan", str(text)], capsys)
    assert_one_line(code, err, "key 'seeds' appears twice in one mapping")


@pytest.mark.parametrize("change, fragment", [
    ({"data": {**BASE["data"], "classes": ["1", "1"]}}, "data.classes: names '1' more than once"),
    ({"data": {**BASE["data"], "classes": []}}, "data.classes: needs at least 2 class names"),
    ({"data_seed": 3}, "base.data_seed: is set by `seeds`"),
    ({"student": {**BASE["student"], "seed": 3}}, "base.student.seed: is set by `seeds`"),
    ({"student": {**BASE["student"], "objective": "dkd", "objective_params": {"beta": -8}}},
     "objective_params.beta: must be a number >= 0; got -8"),
    ({"student": {**BASE["student"], "temperature": 1e9}}, "student.temperature: must be in [0.1, 100]"),
    ({"student": {**BASE["student"], "temperature": float("inf")}}, "student.temperature: must be in [0.1, 100]"),
])
def test_values_accepted_silently_before_are_refused(tmp_path, capsys, change, fragment):
    path = write_yaml(tmp_path / "s.yaml", study(base={**BASE, **change}, grid=None))
    code, _, err = run_cli(["study", "run", path, "--output", str(tmp_path / "out"), "--quiet"], capsys)
    assert_one_line(code, err, fragment)
    assert not (tmp_path / "out").exists()


def test_failed_runs_are_explained_on_the_console(tmp_path, capsys):
    base = {**BASE, "student": {**BASE["student"], "optimizer": {"name": "sgd", "lr": 1e30, "clip_norm": None}}}
    path = write_yaml(tmp_path / "s.yaml", study(base=base, grid=None))
    code, out, err = run_cli(["study", "run", path, "--output", str(tmp_path / "out"), "--quiet"], capsys)
    assert code == 1 and "1 failed" in out
    assert "failed (1): kd-T4-sgd: training loss became non-finite" in err


# --- One line instead of a traceback -------------------------------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    ("name: x\nbase:\n\tdata: {}\n", "line 3, column 1: found character '\\t' that cannot start any token"),
    ("name: x\nseeds: [0, 1\n", "line 3, column 1: expected ',' or ']'"),
    ("name: [x\n", "line 2, column 1"),
])
def test_yaml_syntax_errors_name_line_and_column(tmp_path, capsys, text, fragment):
    (tmp_path / "s.yaml").write_text(text)
    code, _, err = run_cli(["study", "plan", str(tmp_path / "s.yaml")], capsys)
    assert_one_line(code, err, fragment)


def test_a_binary_file_is_one_line(tmp_path, capsys):
    torch.save({"x": torch.zeros(3)}, tmp_path / "s.yaml")
    code, _, err = run_cli(["study", "plan", str(tmp_path / "s.yaml")], capsys)
    assert_one_line(code, err, "is not a UTF-8 text file")


def test_a_broken_override_value_is_one_line(tmp_path, capsys):
    (tmp_path / "teacher").mkdir()
    code, _, err = run_cli(["distill", write_yaml(tmp_path / "d.yaml", {"student": {}}), "student.temperature=[1,"],
                           capsys)
    assert_one_line(code, err, "override 'student.temperature=[1,'")


def test_diagnose_on_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = run_cli(["diagnose", str(tmp_path / "notes.txt")], capsys)
    assert_one_line(code, err, "teacher:", "is not a PyTorch weights file")


def test_an_offline_download_is_one_line(tmp_path, capsys, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    base = {**BASE, "data": {"dataset": "cifar10", "root": str(tmp_path / "cifar"), "download": True}}
    code, _, err = run_cli(["study", "run", write_yaml(tmp_path / "s.yaml", study(base=base)),
                            "--output", str(tmp_path / "out"), "--quiet"], capsys)
    assert_one_line(code, err, "data.download: could not download cifar10", "Temporary failure in name resolution")
    assert not (tmp_path / "out").exists()


# --- Files from users are data, not code ---------------------------------------------------------------------

@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "a planted payload ran"


def test_planted_teacher_and_student_weights_never_run(tmp_path, capsys, marker):
    weights = plant(tmp_path / "evil.th", create_model(ModelConfig("resnet20"), 10).state_dict(), marker)
    for role, change in (("teacher.weights", {"teacher": {"name": "resnet20", "init": "checkpoint", "weights": str(weights)}}),
                         ("student.model.weights", {"student": {**BASE["student"], "model": {
                             "name": "resnet20", "init": "pretrained", "weights": str(weights)}}})):
        path = write_yaml(tmp_path / "s.yaml", study(base={**BASE, **change}))
        code, _, err = run_cli(["study", "run", path, "--output", str(tmp_path / "out"), "--quiet"], capsys)
        assert_one_line(code, err, f"{role}:", "holds Python objects", "weights_only=True")


def test_planted_weights_in_teacher_preparation_diagnose_and_advise_never_run(tmp_path, capsys, marker):
    weights = plant(tmp_path / "evil.th", create_model(ModelConfig("resnet20"), 10).state_dict(), marker)
    config = write_yaml(tmp_path / "t.yaml", {"data": BASE["data"], "model": {"name": "resnet20", "init": "pretrained",
                                                                              "weights": str(weights)},
                                              "epochs": 1, "batch_size": 32, "output": str(tmp_path / "t")})
    code, _, err = run_cli(["teacher", config, "--quiet"], capsys)
    assert_one_line(code, err, "model.weights:", "holds Python objects")
    assert not (tmp_path / "t").exists()
    code, _, err = run_cli(["diagnose", str(weights), "--model", "resnet20"], capsys)
    assert_one_line(code, err, "holds Python objects")
    code, _, err = run_cli(["advise", "--teacher", str(weights), "--model", "resnet20"], capsys)
    assert_one_line(code, err, "holds Python objects")


def test_a_planted_resume_checkpoint_never_runs(tmp_path, marker):
    from kdtemp.engine.storage import RunFolder

    config = cohort([member(epochs=1)])
    folder = RunFolder(tmp_path, run_id_of(config))
    folder.path.mkdir(parents=True)
    plant(folder.checkpoint_path, {"w": torch.zeros(1)}, marker)
    (result,) = run_cohort(config, output=tmp_path, progress=False)
    # the planted file is moved aside unread, and only this run starts again from scratch
    assert result.status == "done" and result.epochs_done == 1
    assert "holds Python objects" in result.warnings[0] and "started again from scratch" in result.warnings[0]
    assert len([p for p in folder.path.glob("checkpoint.pt.damaged-*") if p.suffix != ".why"]) == 1


def run_id_of(config: CohortConfig) -> str:
    from kdtemp.engine.config import run_id

    return run_id(config, config.members[0])


def test_a_planted_cifar_batch_never_runs(tmp_path, capsys, marker):
    import pickle

    import numpy as np

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    from trust_helpers import Payload

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"x": Payload(marker)}, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [b"a", b"b"]}, handle)
    base = {**BASE, "data": {"dataset": "cifar10", "root": str(tmp_path), "resolution": 8}, "batch_size": 2}
    code, _, err = run_cli(["study", "plan", write_yaml(tmp_path / "s.yaml", study(base=base))], capsys)
    assert_one_line(code, err, "data.root:", "is not a CIFAR python batch file", "posix.system")


# --- Paths ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", ".hidden", "", "x" * 101])
def test_a_study_name_cannot_leave_the_studies_folder(tmp_path, capsys, name):
    code, _, err = run_cli(["study", "run", write_yaml(tmp_path / "s.yaml", study(name=name)), "--quiet"], capsys)
    assert_one_line(code, err, "name:", "is not allowed")


def test_a_hash_in_the_study_path_keeps_status_export_and_report_working(tmp_path, capsys):
    folder = tmp_path / "run #1?x=%41"
    path = write_yaml(tmp_path / "s.yaml", study(grid=None))
    assert main(["study", "run", path, "--output", str(folder), "--quiet"]) == 0
    for argv in (["study", "status", path, "--output", str(folder)], ["study", "export", path, "--output", str(folder)],
                 ["report", str(folder)], ["study", "plan", path, "--output", str(folder)]):
        code, out, err = run_cli(argv, capsys)
        assert code == 0, err
    assert "1 done" in run_cli(["study", "status", path, "--output", str(folder)], capsys)[1]


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


# --- Numerics -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_a_masked_teacher_class_gives_finite_loss_and_gradient(name):
    torch.manual_seed(0)
    student = torch.randn(8, 10, requires_grad=True)
    teacher = torch.randn(8, 10)
    teacher[:, 3] = float("-inf")
    target = torch.randint(0, 10, (8,))
    target[target == 3] = 0
    loss = objective(name)(student, teacher, target, 4.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


def test_a_masked_class_contributes_nothing_to_kd():
    from kdtemp.objectives import kd_loss

    torch.manual_seed(1)
    student, teacher = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    masked = teacher.clone()
    masked[:, 0] = float("-inf")
    p = torch.softmax(teacher[:, 1:] / 2, dim=1)
    log_q = torch.log_softmax(student / 2, dim=1)[:, 1:]
    expected = 4 * (p * (p.log() - log_q)).sum(1).mean()
    assert kd_loss(student, masked, 2.0).item() == pytest.approx(expected.item(), rel=1e-12)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_float16_constant_rows_give_finite_gradients(name):
    student = torch.zeros(8, 10, dtype=torch.float16, requires_grad=True)
    teacher = (torch.randn(8, 10, generator=torch.Generator().manual_seed(0)) * 3).half()
    loss = objective(name)(student, teacher, torch.arange(8) % 10, 4.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


def test_standardize_constant_row_gradient_is_the_documented_one():
    z = torch.full((1, 5), 2.0, dtype=torch.float64, requires_grad=True)
    upstream = torch.arange(5, dtype=torch.float64).view(1, 5)
    (standardize_logits(z) * upstream).sum().backward()
    expected = (upstream - upstream.mean()) / 1e-7
    assert torch.allclose(z.grad, expected, rtol=1e-9)
    assert math.isfinite(z.grad.abs().max().item())

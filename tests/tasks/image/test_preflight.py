"""Preflight (``kdtemp.tasks.image.preflight``): every weights file is checked against the data
before any work. A checkpoint of another class count is refused (never given a random head), an
explicit normalisation that contradicts the checkpoint is refused, and weights files that hold
Python objects are refused unloaded; each with one line on stderr and nothing written."""

import subprocess

import pytest
import torch

from kdtemp.engine import TeacherConfig, prepare_teacher
from kdtemp.tasks.image.models import ModelConfig, create_model

from helpers.cli import assert_one_line, run_cli
from helpers.engine import tiny_augment, tiny_data
from helpers.shared import shared_data
from helpers.trust import BASE, plant, study, write_yaml


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


def test_an_explicit_normalisation_that_contradicts_the_checkpoint_is_refused(tmp_path, capsys):
    prepared = TeacherConfig(data=tiny_data(), augment=tiny_augment(), model=ModelConfig("resnet20"), epochs=1,
                             batch_size=32, device="cpu", output=str(tmp_path / "teacher"))
    path, _ = prepare_teacher(prepared, progress=False)
    base = {**BASE, "teacher": {"name": "resnet20", "init": "checkpoint", "weights": str(path),
                                "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}
    code, _, err = run_cli(["study", "plan", write_yaml(tmp_path / "s.yaml", study(base=base))], capsys)
    assert_one_line(code, err, "teacher.mean:", "was trained with mean [0.485, 0.456, 0.406]")


def test_planted_teacher_and_student_weights_never_run(tmp_path, capsys, marker):
    weights = plant(tmp_path / "evil.th", create_model(ModelConfig("resnet20"), 10).state_dict(), marker)
    for role, change in (("teacher.weights", {"teacher": {"name": "resnet20", "init": "checkpoint", "weights": str(weights)}}),
                         ("student.model.weights", {"student": {**BASE["student"], "model": {
                             "name": "resnet20", "init": "pretrained", "weights": str(weights)}}})):
        path = write_yaml(tmp_path / "s.yaml", study(base={**BASE, **change}))
        code, _, err = run_cli(["study", "run", path, "--output", str(tmp_path / "out"), "--quiet"], capsys)
        assert_one_line(code, err, f"{role}:", "holds Python objects", "weights_only=True")

"""Class names and their order travel with every checkpoint (issue item 0).

A class list in another order permuted the labels against a checkpoint silently (wrong numbers,
exit 0): preflight compared only the class count, and ``teacher.pt`` recorded ``classes: None``.
Now every checkpoint kdtemp writes records its class names in label order; loading one onto data
whose classes differ in names or order is refused in preflight with one line, or remapped when the
model asks for it (``remap_classes: true``, ``kdtemp diagnose --remap-classes``); a foreign
checkpoint without names gets one warning that its order is assumed.
"""

import json

import pytest
import torch
import yaml

from kdtemp.cli import main
from kdtemp.tasks.image.models import ModelConfig, create_model

from helpers.cli import assert_one_line, run_cli
from helpers.trust import BASE, study, write_yaml

ORDER = ["7", "2", "5"]  # a subset of digits in an order of its own: labels 0, 1, 2 are 7, 2, 5
TEST_DATA = {"dataset": "digits", "resolution": 8, "train_per_class": 16}  # every test image: the same set in any order


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A kdtemp teacher.pt prepared on digits 7, 2, 5 (in that order), and its preparation folder."""
    folder = tmp_path_factory.mktemp("teacher")
    config = write_yaml(folder / "teacher.yaml", {
        "data": {**BASE["data"], "classes": ORDER}, "augment": BASE["augment"], "batch_size": 16, "device": "cpu",
        "model": {"name": "resnet20", "init": "random"}, "optimizer": {"lr": 5e-3}, "epochs": 2,
        "output": str(folder / "out"),
    })
    assert main(["teacher", config, "--quiet"]) == 0
    return folder / "out"


def diagnose(capsys, tmp_path, weights, *argv):
    out = tmp_path / "d.json"
    code, _, err = run_cli(["diagnose", str(weights), "--split", "test", "--temperatures", "1", "--json", str(out),
                            "--device", "cpu", *argv], capsys)
    return code, err, (json.loads(out.read_text()) if code == 0 else None)


def test_every_checkpoint_kdtemp_writes_records_its_class_names(teacher):
    meta = torch.load(teacher / "teacher.pt", map_location="cpu", weights_only=True)["kdtemp"]
    assert meta["classes"] == ORDER
    (run,) = (teacher / "runs").iterdir()
    run_meta = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["kdtemp"]
    assert run_meta["classes"] == ORDER
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["derived"]["classes"] == ORDER


def test_a_permuted_class_list_against_a_kdtemp_teacher_is_refused_by_plan(tmp_path, capsys, teacher):
    weights = str(teacher / "teacher.pt")
    base = {**BASE, "data": {**BASE["data"], "classes": ["5", "2", "7"]},
            "teacher": {"name": "resnet20", "init": "checkpoint", "weights": weights}}
    code, _, err = run_cli(["study", "plan", write_yaml(tmp_path / "s.yaml", study(base=base)),
                            "--output", str(tmp_path / "out")], capsys)
    assert_one_line(code, err, "teacher.weights:", "['7', '2', '5']", "['5', '2', '7']", "another order",
                    "teacher.remap_classes: true")
    # the same count, other names: refused as well
    base["data"]["classes"] = ["7", "2", "9"]
    code, _, err = run_cli(["study", "plan", write_yaml(tmp_path / "s.yaml", study(base=base)),
                            "--output", str(tmp_path / "out")], capsys)
    assert_one_line(code, err, "teacher.weights:", "only in the checkpoint: ['5']", "only in the data: ['9']")
    # a student starting from it (init: checkpoint) is refused the same way
    student = {**BASE, "data": {**BASE["data"], "classes": ["5", "2", "7"]},
               "student": {**BASE["student"], "model": {"name": "resnet20", "init": "checkpoint", "weights": weights}}}
    code, _, err = run_cli(["study", "plan", write_yaml(tmp_path / "s.yaml", study(base=student)),
                            "--output", str(tmp_path / "out")], capsys)
    assert_one_line(code, err, "student.model.weights:", "another order")
    # the checkpoint's own order passes, and so does a remap asked for explicitly
    base["data"]["classes"] = ORDER
    code, _, err = run_cli(["study", "plan", write_yaml(tmp_path / "s.yaml", study(base=base)),
                            "--output", str(tmp_path / "out")], capsys)
    assert code == 0 and err == "", err
    base["data"]["classes"] = ["5", "2", "7"]
    base["teacher"]["remap_classes"] = True
    code, _, err = run_cli(["study", "plan", write_yaml(tmp_path / "s.yaml", study(base=base)),
                            "--output", str(tmp_path / "out")], capsys)
    assert code == 0 and err == "", err


def test_diagnose_refuses_a_permuted_list_and_remaps_only_when_asked(tmp_path, capsys, teacher):
    weights = teacher / "teacher.pt"
    own = ["data.train_per_class=16", "data.test_per_class=null"]
    code, err, right = diagnose(capsys, tmp_path, weights, *own)
    assert code == 0 and err == "", err
    code, err, _ = diagnose(capsys, tmp_path, weights, *own, "data.classes=['5','2','7']")
    assert_one_line(code, err, "teacher.weights:", "another order", "--remap-classes")
    code, err, remapped = diagnose(capsys, tmp_path, weights, *own, "data.classes=['5','2','7']", "--remap-classes")
    assert code == 0 and err == "", err
    assert remapped["samples"] == right["samples"]
    assert remapped["top1"] == pytest.approx(right["top1"], abs=1e-9)  # the same answers, under the data's labels
    # a remap may also keep a subset of the checkpoint's classes
    code, err, subset = diagnose(capsys, tmp_path, weights, *own, "data.classes=['5','7']", "--remap-classes")
    assert code == 0 and err == "" and subset["classes"] == 2, err
    # without the remap, a subset is a class-count mismatch (as before)
    code, err, _ = diagnose(capsys, tmp_path, weights, *own, "data.classes=['5','7']")
    assert_one_line(code, err, "teacher.weights:", "classifier has 3 classes but the data has 2")
    # names the checkpoint does not have cannot be remapped
    code, err, _ = diagnose(capsys, tmp_path, weights, *own, "data.classes=['5','2','9']", "--remap-classes")
    assert_one_line(code, err, "teacher.weights:", "'9'", "not among")


def test_a_foreign_checkpoint_without_names_is_warned_and_cannot_be_remapped(tmp_path, capsys):
    path = tmp_path / "foreign.th"
    torch.save({"state_dict": create_model(ModelConfig("resnet20"), 10).state_dict()}, path)
    reversed_digits = "data.classes=[" + ",".join(f"'{d}'" for d in range(9, -1, -1)) + "]"
    code, err, _ = diagnose(capsys, tmp_path, path, "--model", "resnet20", reversed_digits)
    assert code == 0
    assert len(err.splitlines()) == 1 and err.startswith("kdtemp: warning: teacher.weights: "), err
    assert "records no class names" in err and "assumed" in err and "'9', '8', '7'" in err, err
    code, err, _ = diagnose(capsys, tmp_path, path, "--model", "resnet20", reversed_digits, "--remap-classes")
    assert_one_line(code, err, "teacher.weights:", "records no class names", "nothing to remap by")


def test_the_audited_resnet56_on_a_reversed_cifar10_list_is_warned(tmp_path, capsys, cifar10_jpeg_root,
                                                                    resnet_checkpoints):
    """The issue's reproduction: a foreign checkpoint scores 84.60 % with the alphabetical list and
    2.00 % with the reversed one; it records no names, so the reversed run is warned."""
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    data = ["--model", "resnet56", "data.dataset=folder", f"data.root={cifar10_jpeg_root}", "data.train_per_class=100",
            "data.test_per_class=50"]
    code, err, alphabetical = diagnose(capsys, tmp_path, resnet_checkpoints["resnet56"], *data,
                                       f"data.classes=[{','.join(names)}]")
    assert code == 0 and alphabetical["top1"] == pytest.approx(84.60, abs=0.01)
    code, err, reversed_ = diagnose(capsys, tmp_path, resnet_checkpoints["resnet56"], *data,
                                    f"data.classes=[{','.join(reversed(names))}]")
    assert code == 0 and reversed_["top1"] == pytest.approx(2.00, abs=0.01)
    assert "records no class names" in err and "'truck', 'ship', 'horse'" in err, err


def test_remap_classes_needs_a_weights_file_and_leaves_run_ids_alone(tmp_path, capsys):
    base = {**BASE, "teacher": {"name": "resnet20", "init": "random", "remap_classes": True}}
    code, _, err = run_cli(["study", "plan", write_yaml(tmp_path / "s.yaml", study(base=base)),
                            "--output", str(tmp_path / "out")], capsys)
    assert_one_line(code, err, "teacher.remap_classes:", "give a weights file")
    # a field that is not set is not part of a run's identity: runs keep the ids they had before it
    from kdtemp.engine import MemberConfig

    plain = MemberConfig(model=ModelConfig("resnet20"))
    assert "remap_classes" not in plain.identity()["model"]
    remapped = MemberConfig(model=ModelConfig("resnet20", init="checkpoint", weights="w.pt", remap_classes=True))
    assert remapped.identity()["model"]["remap_classes"] is True

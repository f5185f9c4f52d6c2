"""What a user can get wrong, through the command line: a study file, an override or a file it names.

Every case must stop with exactly one line on stderr (``kdtemp: error: <field>: ...``) naming the
field, exit non-zero, and write nothing: no study folder, no dataset cache; failed runs are
explained on the console."""

import copy
import os

import pytest
import torch

from kdtemp.cli import main
from kdtemp.tasks.image.models import ModelConfig, create_model

from helpers.cli import assert_one_line, run_cli
from helpers.trust import BASE, files_under, image_folder, plant, study, write_yaml


DELETE = object()


def default_study() -> dict:
    return {"name": "malformed", "base": copy.deepcopy(BASE), "grid": {"student.temperature": [1, 4]}, "seeds": [0],
            "executor": {"kind": "inline", "threads": 1}}


def patched(changes: dict, paths: dict) -> dict:
    """The default study with dotted ``changes`` applied (``DELETE`` removes a key); ``{name}``
    placeholders in string values become the fixture paths."""
    data = default_study()
    for key, value in changes.items():
        node, parts = data, key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = fill(value, paths)
    return data


def fill(value, paths):
    if isinstance(value, str):
        return value.format(**paths)
    if isinstance(value, list):
        return [fill(v, paths) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, paths) for k, v in value.items()}
    return value


S = "base.student"


CASES = [
    # the study file itself
    ("name-escapes", {"name": "../../x"}, "name:"),
    ("name-absolute", {"name": "/tmp/elsewhere"}, "name:"),
    ("name-missing", {"name": DELETE}, "name: required field is missing"),
    ("unknown-top-field", {"grids": {}}, "grids: unknown field"),
    ("seeds-not-a-list", {"seeds": "zero"}, "seeds: expected a list"),
    ("seeds-empty", {"seeds": []}, "seeds: give at least one seed"),
    ("seeds-twice", {"seeds": [0, 0]}, "seeds: has a seed twice"),
    ("seed-negative", {"seeds": [-1]}, "seeds[0]: must be in [0, 2**32 - 1]"),
    ("seed-huge", {"seeds": [2**70]}, "seeds[0]: must be in [0, 2**32 - 1]"),
    ("seed-float", {"seeds": [1.5]}, "seeds[0]: expected an integer"),
    ("preset-unknown", {"presets": ["warp_speed"]}, "presets: unknown preset 'warp_speed'"),
    ("preset-twice", {"grid": DELETE, "presets": ["temperatures", "temperatures"]}, "presets: names a preset twice"),
    ("grid-empty", {"grid": {}}, "grid: is empty"),
    ("grid-not-a-list", {"grid": {"student.temperature": 4}}, "grid.student.temperature: expected a list"),
    ("grid-empty-list", {"grid": {"student.temperature": []}}, "grid.student.temperature: needs a non-empty list"),
    ("grid-unknown-field", {"grid": {"student.tempreture": [1, 2]}}, "student.tempreture: unknown field"),
    ("grid-sets-seed", {"grid": {"student.seed": [1, 2]}}, "sets student.seed, which `seeds` controls"),
    ("zip-sets-data-seed", {"zip": [{"data_seed": [1, 2]}]}, "sets data_seed, which `seeds` controls"),
    ("zip-lengths", {"zip": [{"student.epochs": [1, 2], "student.optimizer.lr": [0.1]}]}, "lists differ in length"),
    ("zip-empty", {"zip": [{}]}, "zip[0]: is empty"),
    ("grid-same-value-twice", {"grid": {"student.temperature": [4, 4.0]}}, "resolve to the same configuration"),
    ("axis-applies-to-nothing", {"grid": {"student.dts.initial": [4, 5]}}, "student.dts.initial: applies to no run"),
    ("axis-twice", {"presets": ["temperatures"]}, "already varies"),
    ("axis-inside-another", {"grid": {"student.model": [{"name": "resnet20"}, {"name": "resnet32"}],
                                      "student.model.name": ["resnet44"]}},
     "student.model.name: varies 'student.model.name', which overlaps 'student.model'"),
    ("max-cohort-size", {"max_cohort_size": 0}, "max_cohort_size: must be >= 1"),
    ("executor-kind", {"executor": {"kind": "slurm"}}, "executor.kind: 'slurm' is not allowed"),
    ("executor-device-gpu", {"executor": {"device": "gpu"}}, "executor.device: must be auto, cpu, cuda or cuda:N; got 'gpu'"),
    ("executor-device-missing-cuda", {"executor": {"device": "cuda"}}, "executor.device: 'cuda' requested"),
    ("executor-workers", {"executor": {"workers": 0}}, "executor.workers: must be >= 1"),
    ("executor-threads", {"executor": {"threads": 0}}, "executor.threads: must be >= 1"),
    ("executor-checkpoint-every", {"executor": {"checkpoint_every": 0}}, "executor.checkpoint_every: must be >= 1"),
    ("base-data-seed", {"base.data_seed": 3}, "base.data_seed: is set by `seeds`"),
    ("base-student-seed", {f"{S}.seed": 3}, "base.student.seed: is set by `seeds`"),
    ("base-unknown-field", {f"{S}.tempreature": 4}, "base.student.tempreature: unknown field"),
    ("no-teacher", {"base.teacher": None}, "teacher: member"),
    # data
    ("batch-size-zero", {"base.batch_size": 0}, "base.batch_size: must be >= 1"),
    ("batch-size-exceeds-data", {"base.batch_size": 1000}, "batch_size: 1000 exceeds the 160 training images"),
    ("dataset-unknown", {"base.data.dataset": "imagenet"}, "base.data.dataset: unknown dataset 'imagenet'"),
    ("folder-without-root", {"base.data.dataset": "folder"}, "base.data.root: dataset 'folder' needs a root folder"),
    ("root-missing", {"base.data": {"dataset": "folder", "root": "{missing}"}}, "base.data.root:", ),
    ("root-one-level-too-high", {"base.data": {"dataset": "folder", "root": "{parent}", "resolution": 8}},
     "data.root: folder not found"),
    ("download-a-folder", {"base.data": {"dataset": "folder", "root": "{parent}", "download": True}},
     "base.data.download: dataset 'folder' cannot be downloaded"),
    ("root-empty", {"base.data": {"dataset": "folder", "root": "{empty}", "resolution": 8}}, "data.root:"),
    ("root-no-images", {"base.data": {"dataset": "folder", "root": "{hollow}", "resolution": 8}},
     "has no class folders with images"),
    ("root-classes-differ", {"base.data": {"dataset": "folder", "root": "{mismatch}", "resolution": 8}},
     "data.root: the training and test splits"),
    ("classes-repeated", {"base.data.classes": ["1", "1"]}, "base.data.classes: names '1' more than once"),
    ("classes-empty", {"base.data.classes": []}, "base.data.classes: needs at least 2 class names"),
    ("classes-one", {"base.data.classes": ["1"]}, "base.data.classes: needs at least 2 class names"),
    ("classes-unknown", {"base.data.classes": ["1", "cat"]}, "data.classes: 'cat' is not a class of this dataset"),
    ("classes-not-strings", {"base.data.classes": [1, 2]}, "base.data.classes[0]: expected a string"),
    ("train-per-class-zero", {"base.data.train_per_class": 0}, "base.data.train_per_class: must be >= 1"),
    ("train-per-class-too-many", {"base.data.train_per_class": 1000}, "data.train_per_class: 1000 requested"),
    ("test-per-class-too-many", {"base.data.test_per_class": 1000}, "data.test_per_class: 1000 requested"),
    ("resolution-tiny", {"base.data.resolution": 4}, "base.data.resolution: must be >= 8"),
    ("image-size-tiny", {"base.data.image_size": 2}, "base.data.image_size: must be >= 8"),
    ("magnitude", {"base.augment.randaugment_magnitude": 31}, "base.augment.randaugment_magnitude: must be in [0, 30]"),
    ("crop-scale", {"base.augment.crop_scale_min": 0}, "base.augment.crop_scale_min: must be in (0, 1]"),
    # teacher and student weights
    ("teacher-unknown-model", {"base.teacher.name": "resnet9000"}, "base.teacher.name: unknown model 'resnet9000'"),
    ("teacher-weights-missing", {"base.teacher": {"name": "resnet20", "init": "checkpoint", "weights": "{missing}"}},
     "base.teacher.weights:", ),
    ("teacher-weights-text", {"base.teacher": {"name": "resnet20", "init": "checkpoint", "weights": "{text}"}},
     "teacher.weights: '{text}' is not a PyTorch weights file"),
    ("teacher-weights-other-model", {"base.teacher": {"name": "resnet20", "init": "checkpoint", "weights": "{r32}"}},
     "teacher.weights:"),
    ("teacher-weights-class-count", {"base.data.classes": ["1", "2"],
                                     "base.teacher": {"name": "resnet20", "init": "checkpoint", "weights": "{r20}"}},
     "teacher.weights:"),
    ("teacher-weights-payload", {"base.teacher": {"name": "resnet20", "init": "checkpoint", "weights": "{payload}"}},
     "teacher.weights:"),
    ("teacher-checkpoint-without-weights", {"base.teacher.init": "checkpoint"}, "base.teacher.weights: init 'checkpoint'"),
    ("teacher-random-with-weights", {"base.teacher.weights": "{r20}"}, "base.teacher.weights:"),
    ("teacher-hub-class-count", {"base.teacher": {"name": "resnet18", "init": "pretrained"}}, "teacher.init:"),
    ("student-weights-payload", {f"{S}.model": {"name": "resnet20", "init": "pretrained", "weights": "{payload}"}},
     "student.model.weights:"),
    ("student-checkpoint-class-count", {"base.data.classes": ["1", "2"],
                                        f"{S}.model": {"name": "resnet20", "init": "checkpoint", "weights": "{r20}"}},
     "student.model.weights:"),
    ("student-drop-path-cifar", {f"{S}.model.drop_path_rate": 0.1}, "base.student.model.drop_path_rate:"),
    ("student-mean-two-values", {f"{S}.model.mean": [0.5, 0.5], f"{S}.model.std": [0.5, 0.5]},
     "base.student.model.mean: needs 3 values"),
    ("student-mean-without-std", {f"{S}.model.mean": [0.5, 0.5, 0.5]}, "base.student.model.mean: give both"),
    ("student-std-zero", {f"{S}.model.mean": [0.5, 0.5, 0.5], f"{S}.model.std": [0, 1, 1]}, "base.student.model.std:"),
    # objectives and temperatures
    ("objective-unknown", {f"{S}.objective": "kl2"}, "base.student.objective: unknown objective 'kl2'"),
    ("objective-param-unknown", {f"{S}.objective_params": {"gamma": 1}}, "base.student.objective_params.gamma: not a parameter"),
    ("dkd-beta-negative", {f"{S}.objective": "dkd", f"{S}.objective_params": {"beta": -8}},
     "base.student.objective_params.beta: must be a number >= 0; got -8"),
    ("dkd-beta-string", {f"{S}.objective": "dkd", f"{S}.objective_params": {"beta": "eight"}},
     "base.student.objective_params.beta: must be a number"),
    ("rld-alpha-temperature", {f"{S}.objective": "rld", f"{S}.objective_params": {"alpha_temperature": 0}},
     "objective_params.alpha_temperature: must be a number >= 0.1"),
    ("mlkd-relative-empty", {f"{S}.objective": "mlkd", f"{S}.objective_params": {"relative_temperatures": []}},
     "objective_params.relative_temperatures: must be a non-empty list"),
    ("keep-top-too-many", {f"{S}.objective": "shuffled_tail", f"{S}.objective_params": {"keep_top": 99}},
     "student.objective_params.keep_top: 99 exceeds the 10 classes"),
    ("temperature-zero", {"grid": {"student.temperature": [0, 4]}}, "student.temperature: must be in [0.1, 100]"),
    ("temperature-huge", {"grid": {"student.temperature": [1e9]}}, "student.temperature: must be in [0.1, 100]"),
    ("temperature-inf", {"grid": {"student.temperature": [float("inf")]}}, "student.temperature: must be in [0.1, 100]"),
    ("temperature-nan", {"grid": {"student.temperature": [float("nan")]}}, "student.temperature: must be in [0.1, 100]"),
    ("temperature-word", {"grid": {"student.temperature": ["hot"]}}, "student.temperature: expected a number; got 'hot'"),
    ("policy-unknown", {f"{S}.temperature_policy": "cosine"}, "base.student.temperature_policy: 'cosine' is not allowed"),
    ("ctkd-without-policy", {f"{S}.objective": "ctkd"}, "base.student.temperature_policy: objective 'ctkd' needs"),
    ("weights-both-zero", {f"{S}.loss_preset": "protocol", f"{S}.kd_weight": 0}, "base.student.kd_weight: the CE weight"),
    ("kd-weight-negative", {f"{S}.kd_weight": -1}, "base.student.kd_weight: must be >= 0"),
    ("ce-weight-inf", {f"{S}.ce_weight": float("inf")}, "base.student.ce_weight: must be >= 0 and finite"),
    ("no-objective-with-kd-weight", {f"{S}.objective": None, f"{S}.kd_weight": 1.0}, "base.student.kd_weight: needs an objective"),
    ("no-objective-with-dts", {f"{S}.objective": None, f"{S}.temperature_policy": "dts"}, "base.student.temperature_policy: needs an objective"),
    ("epochs-zero", {f"{S}.epochs": 0}, "base.student.epochs: must be >= 1"),
    ("epochs-float", {f"{S}.epochs": 2.5}, "base.student.epochs: expected an integer"),
    ("label-smoothing-one", {f"{S}.label_smoothing": 1.0}, "base.student.label_smoothing: must be in [0, 1)"),
    ("ctkd-ramp-zero", {f"{S}.ctkd_ramp_epochs": 0}, "base.student.ctkd_ramp_epochs: must be >= 1"),
    ("optimizer-unknown", {f"{S}.optimizer": {"name": "lamb"}}, "base.student.optimizer.name: 'lamb' is not allowed"),
    ("lr-zero", {f"{S}.optimizer": {"lr": 0}}, "base.student.optimizer.lr: must be > 0"),
    ("lr-typo", {f"{S}.optimizer": {"lr": "1e-3x"}}, "base.student.optimizer.lr: expected a number"),
    ("momentum", {f"{S}.optimizer": {"momentum": 1.5}}, "base.student.optimizer.momentum: must be in [0, 1)"),
    ("dts-bounds", {f"{S}.temperature_policy": "dts", f"{S}.dts": {"minimum": 5, "maximum": 4, "initial": 4}},
     "base.student.dts: needs minimum <= maximum"),
    ("dts-initial-outside", {f"{S}.temperature_policy": "dts", f"{S}.dts": {"initial": 9}}, "base.student.dts.initial:"),
    ("dts-huge", {f"{S}.temperature_policy": "dts", f"{S}.dts": {"initial": 1000, "maximum": 1000}},
     "base.student.dts.initial: must be in [0.1, 100]"),
]


TEXT_CASES = [
    ("duplicate-key", "name: a\nname: b\n", "line 2, column 1: key 'name' appears twice"),
    ("tab-indent", "name: a\nbase:\n\tdata: {}\n", "line 3, column 1: found character '\\t'"),
    ("unclosed-bracket", "name: a\nseeds: [0, 1\n", "expected ',' or ']'"),
    ("top-level-list", "- name: a\n", "must hold a mapping at the top level"),
    ("empty-file", "", "name: required field is missing"),
]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("malformed-files")
    image_folder(root / "parent" / "images")
    (root / "empty").mkdir()
    (root / "hollow" / "train").mkdir(parents=True)
    (root / "hollow" / "test").mkdir()
    image_folder(root / "mismatch")
    image_folder(root / "mismatch-test", classes=("ant", "bee", "dog"))
    os.rename(root / "mismatch" / "test", root / "mismatch" / "test-old")
    os.rename(root / "mismatch-test" / "test", root / "mismatch" / "test")
    (root / "notes.txt").write_text("not a checkpoint")
    torch.save(create_model(ModelConfig("resnet32"), 10).state_dict(), root / "r32.pt")
    torch.save({"state_dict": create_model(ModelConfig("resnet20"), 10).state_dict()}, root / "r20.th")
    plant(root / "payload.th", create_model(ModelConfig("resnet20"), 10).state_dict(), root / "payload-ran")
    return {"missing": str(root / "nowhere"), "parent": str(root / "parent"), "empty": str(root / "empty"),
            "hollow": str(root / "hollow"), "mismatch": str(root / "mismatch"), "text": str(root / "notes.txt"),
            "r32": str(root / "r32.pt"), "r20": str(root / "r20.th"), "payload": str(root / "payload.th"),
            "marker": str(root / "payload-ran")}


def check_refused(argv, output, capsys, fragment, paths):
    cache = __import__("pathlib").Path(os.environ["KDTEMP_CACHE"])
    before = files_under(cache)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("kdtemp: error: ") and len(err.splitlines()) == 1, err
    assert fill(fragment, paths) in err, err
    assert not output.exists(), "something was written"
    assert files_under(cache) == before, "the dataset cache was written"
    assert not os.path.exists(paths["marker"]), "a planted payload ran"


@pytest.mark.parametrize("changes, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_malformed_study_stops_before_any_work(tmp_path, capsys, paths, changes, fragment):
    data = patched(changes, paths)
    data["output"] = str(tmp_path / "out")
    path = write_yaml(tmp_path / "study.yaml", data)
    check_refused(["study", "run", path, "--quiet"], tmp_path / "out", capsys, fragment, paths)


@pytest.mark.parametrize("text, fragment", [c[1:] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES])
def test_a_malformed_study_text_stops_before_any_work(tmp_path, capsys, paths, text, fragment):
    (tmp_path / "study.yaml").write_text(text)
    check_refused(["study", "run", str(tmp_path / "study.yaml"), "--output", str(tmp_path / "out"), "--quiet"],
                  tmp_path / "out", capsys, fragment, paths)


def test_a_missing_or_binary_study_file(tmp_path, capsys, paths):
    check_refused(["study", "plan", str(tmp_path / "nope.yaml")], tmp_path / "out", capsys, "does not exist", paths)
    (tmp_path / "blob.yaml").write_bytes(bytes(range(256)))
    check_refused(["study", "run", str(tmp_path / "blob.yaml"), "--output", str(tmp_path / "out")], tmp_path / "out",
                  capsys, "is not a UTF-8 text file", paths)


@pytest.mark.parametrize("override, fragment", [
    ("student.temperature=[1,", "override 'student.temperature=[1,'"),
    ("student.epochs", "override 'student.epochs' must look like field.path=value"),
    ("student..epochs=2", "has an empty field name"),
    ("student.epochs=abc", "student.epochs: expected an integer; got 'abc'"),
    ("batch_size=9999", "batch_size: 9999 exceeds the 160 training images"),
    ("data.classes=[0,1]", "data.classes[0]: expected a string"),
    ("teacher.weights={payload}", "teacher.weights:"),
    ("device=cuda:3", "device: 'cuda:3' requested"),
])
def test_a_malformed_distill_override_stops_before_any_work(tmp_path, capsys, paths, override, fragment):
    config = write_yaml(tmp_path / "distill.yaml", {
        "data": BASE["data"], "augment": BASE["augment"], "batch_size": 32, "device": "cpu",
        "teacher": {"name": "resnet20", "init": "checkpoint", "weights": paths["r20"]},
        "student": {"model": {"name": "resnet20"}, "epochs": 1}, "output": str(tmp_path / "out")})
    check_refused(["distill", config, override.format(**paths), "--quiet"], tmp_path / "out", capsys, fragment, paths)


def test_plan_runs_the_same_checks(tmp_path, capsys, paths):
    data = patched({"base.batch_size": 1000}, paths)
    path = write_yaml(tmp_path / "study.yaml", {**data, "output": str(tmp_path / "out")})
    check_refused(["study", "plan", path], tmp_path / "out", capsys, "batch_size: 1000 exceeds", paths)


def test_the_suite_is_large_enough():
    assert len(CASES) + len(TEXT_CASES) + 2 + 8 + 1 >= 60


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

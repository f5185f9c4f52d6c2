"""Plug-ins by import path: a user's own model, dataset and objective, from a package that is not
part of kdtemp, used by a study on the local executor (so spawned workers import them too)."""

import textwrap

import pytest

from kdtemp.cli import main
from kdtemp.study import load_study, run_study

from helpers.trust import study, write_yaml

PACKAGE = '''
"""A user's package: a model, a dataset and an objective kdtemp has never heard of."""
import numpy as np
import torch
from torch import nn

from kdtemp.tasks.image.data import RawSplit
from kdtemp.objectives import Preset, kd_loss


class TinyNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, num_classes)
        self.kdtemp_classifier = "head"

    def forward(self, x):
        return self.head(self.body(x))


def make_net(num_classes):
    return TinyNet(num_classes)


def stripes(root, split, download):
    """Three classes of 8x8 images: a bright red, green or blue stripe."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    count = 24 if split == "train" else 9
    labels = np.arange(count) % 3
    images = rng.integers(0, 60, (count, 8, 8, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 2:5, :, label] = 250
    return RawSplit(images, labels, ["red", "green", "blue"])


def half_kd(student, teacher, target, temperature, scale=0.5):
    """KD scaled by a factor (a stand-in for a new objective)."""
    return scale * kd_loss(student, teacher, temperature)


half_kd.official = Preset(ce_weight=0.5, kd_weight=1.0, warmup_epochs=0, temperature=3.0)
'''


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    (folder / "my_kd_plugins").mkdir(parents=True)
    (folder / "my_kd_plugins" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))  # spawned workers import it too
    return "my_kd_plugins"


def test_plugin_model_dataset_and_objective_in_a_local_study(tmp_path, plugin_package):
    base = {"data": {"dataset": f"{plugin_package}:stripes", "resolution": 8},
            "augment": {"randaugment_ops": 0, "horizontal_flip": False, "mix": False},
            "teacher": {"name": f"{plugin_package}:make_net"}, "batch_size": 8,
            "student": {"model": {"name": f"{plugin_package}:make_net"}, "objective": f"{plugin_package}:half_kd",
                        "objective_params": {"scale": 2.0}, "loss_preset": "official", "epochs": 2}}
    path = write_yaml(tmp_path / "s.yaml", study(base=base, grid=None, seeds=[0, 1],
                                                 executor={"kind": "local", "workers": 2, "threads": 1}))
    s = load_study(path, output=tmp_path / "out")
    assert s.runs[0].spec.student.effective_temperature == 3.0  # the plug-in's official preset
    assert run_study(s, progress=False)["done"] == 2


def test_a_plugin_that_does_not_import_is_one_line(tmp_path, capsys, plugin_package):
    for field, value, fragment in [
        ("student", {"model": {"name": "no_such_pkg.nets:make"}}, "base.student.model.name: cannot import the plug-in "
                                                                  "model 'no_such_pkg.nets:make' (ModuleNotFoundError"),
        ("data", {"dataset": f"{plugin_package}:nothing"}, f"base.data.dataset: module '{plugin_package}' has no 'nothing'"),
        ("student", {"objective": f"{plugin_package}:TinyNet"}, "base.student.objective: the plug-in objective"),
    ]:
        base = {**study()["base"], field: {**study()["base"][field], **value}}
        path = write_yaml(tmp_path / "s.yaml", study(base=base))
        assert main(["study", "plan", path]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and fragment in err, err

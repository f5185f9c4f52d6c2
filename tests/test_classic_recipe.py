"""The classic CIFAR KD recipe: the batched pad-4 crop, and the named recipe a study starts from."""

import pytest
import torch

from kdtemp.tasks.image.data import AugmentConfig, TrainStream
from kdtemp.tasks.image.data.augment import pad_crop
from kdtemp.study import load_study
from kdtemp.study.recipes import CIFAR100_MEAN, CIFAR100_STD

from engine_helpers import tiny_data
from trust_helpers import BASE, study, write_yaml


def test_pad_crop_is_an_exact_window_of_the_padded_image():
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    shifts = torch.tensor([[0, 0], [8, 8], [4, 4], [0, 8], [8, 0], [3, 5]])
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    expected = torch.stack([padded[i, :, dy:dy + 8, dx:dx + 8] for i, (dy, dx) in enumerate(shifts.tolist())])
    assert torch.equal(pad_crop(images, shifts, 4), expected)
    assert torch.equal(pad_crop(images, torch.full((6, 2), 4), 4), images)  # the centre window is the image


def test_the_stream_draws_each_shift_uniformly_and_deterministically():
    split = tiny_data().load("train")
    augment = AugmentConfig(randaugment_ops=0, pad_crop=4, horizontal_flip=False, mix=False)
    stream = TrainStream(split, 32, augment, 8, data_seed=0)
    first = [b.images.clone() for b in stream.epoch(1)]
    again = [b.images.clone() for b in stream.epoch(1)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    generator = torch.Generator().manual_seed(0)
    draws = torch.randint(0, 9, (20000, 2), generator=generator)
    counts = torch.bincount(draws.flatten(), minlength=9).float() / draws.numel()
    assert torch.allclose(counts, torch.full((9,), 1 / 9), atol=0.01)


def test_the_classic_recipe_fills_what_the_base_does_not_set(tmp_path):
    base = {**BASE, "recipe": "classic_cifar", "student": {"model": {"name": "resnet20"}, "epochs": 30}}
    s = load_study(write_yaml(tmp_path / "s.yaml", study(base=base)))
    spec = s.runs[0].spec
    assert spec.student.optimizer.name == "sgd" and spec.student.optimizer.lr == 0.05
    assert spec.student.optimizer.schedule == "step" and spec.student.optimizer.milestones == [150, 180, 210]
    assert spec.student.epochs == 30  # the base's own value wins
    assert spec.augment.pad_crop == 4 and spec.augment.mix is True  # the recipe adds the crop; the base keeps mixing
    assert spec.student.model.mean == CIFAR100_MEAN and spec.student.model.std == CIFAR100_STD
    assert spec.batch_size == 32  # BASE's batch size wins over the recipe's 64


def test_the_classic_recipe_trains_with_each_objective_s_official_loss_weights(tmp_path):
    """CRD and its followers train KD with CE 0.1 and KD 0.9 (DKD with CE 1 and a 20-epoch warm-up);
    the study protocol's teacher matching only stays one line away."""
    base = {**BASE, "recipe": "classic_cifar", "student": {"model": {"name": "resnet20"}, "epochs": 30}}
    s = load_study(write_yaml(tmp_path / "s.yaml", study(base=base, grid={"student.objective": ["kd", "dkd"]})))
    kd, dkd = (run.spec.student.weights() for run in s.runs)
    assert (kd.ce_weight, kd.kd_weight) == (0.1, 0.9)
    assert (dkd.ce_weight, dkd.kd_weight, dkd.warmup_epochs) == (1.0, 1.0, 20)
    protocol = {**base, "student": {**base["student"], "loss_preset": "protocol"}}
    (run,) = load_study(write_yaml(tmp_path / "p.yaml", study(base=protocol, grid=None))).runs
    assert (run.spec.student.weights().ce_weight, run.spec.student.weights().kd_weight) == (0.0, 1.0)


def test_an_unknown_recipe_is_one_line(tmp_path, capsys):
    from kdtemp.cli import main

    path = write_yaml(tmp_path / "s.yaml", study(base={**BASE, "recipe": "modern"}))
    assert main(["study", "plan", path]) == 2
    assert "base.recipe: unknown recipe 'modern'; allowed: classic_cifar" in capsys.readouterr().err

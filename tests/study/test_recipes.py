"""Named recipes (``kdtemp.study.recipes``): the classic CIFAR KD recipe a study starts from fills
what the base does not set, also inside mappings an axis replaces."""

from kdtemp.study import load_study
from kdtemp.study.recipes import CIFAR100_MEAN, CIFAR100_STD

from helpers.trust import BASE, study, write_yaml


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


def test_a_recipe_fills_mappings_that_an_axis_replaces(tmp_path):
    base = {**BASE, "recipe": "classic_cifar", "student": {"model": {"name": "resnet20"}, "epochs": 3}}
    s = load_study(write_yaml(tmp_path / "s.yaml", study(base=base, grid={"student.model": [{"name": "resnet20"},
                                                                                              {"name": "resnet32"}]},
                                                         presets=["optimizers"])))
    for run in s.runs:  # the axis set whole mappings; the recipe still fills what they do not say
        assert run.spec.student.model.mean == CIFAR100_MEAN and run.spec.student.optimizer.schedule == "step"

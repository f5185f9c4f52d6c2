"""Run configuration (``kdtemp.engine.config``): a run's identity holds only the fields it uses,
its label, and the temperature an objective's official preset gives it."""

import pytest

from kdtemp.config import ConfigError, from_dict
from kdtemp.engine import DistillConfig, run_cohort
from kdtemp.engine.config import MemberConfig, OptimizerConfig, run_id, require_precision

from helpers.engine import cohort


def test_step_fields_do_not_change_a_cosine_run():
    shared = cohort([])
    assert run_id(shared, MemberConfig(optimizer=OptimizerConfig(milestones=[5]))) == run_id(shared, MemberConfig())
    step = MemberConfig(optimizer=OptimizerConfig(name="sgd", schedule="step"))
    assert run_id(shared, step) != run_id(shared, MemberConfig(optimizer=OptimizerConfig(name="sgd")))


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


def test_a_kd_weight_of_zero_is_labelled_as_cross_entropy_only():
    from helpers.engine import member

    assert member(temperature=4.0, kd_weight=0.0).label() == "ce-adamw"
    assert member(temperature=4.0).label() == "kd-T4-adamw"


@pytest.mark.parametrize("task", ["text_classification", "causal_lm"])
def test_float64_is_refused_by_a_task_that_does_not_compute_in_it(task):
    with pytest.raises(ConfigError, match=rf"^precision: {task} computes in auto, fp32, bf16; got 'fp64'$"):
        require_precision("fp64", task, "precision")
    require_precision("bf16", task, "precision")


def test_float64_is_an_image_precision():
    require_precision("fp64", "image_classification", "precision")
    with pytest.raises(ConfigError, match=r"^precision: image_classification computes in auto, fp32, bf16, fp64; got 'fp16'$"):
        require_precision("fp16", "image_classification", "precision")

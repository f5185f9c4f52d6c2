"""Learning-rate schedules: the study's half-cosine and the classic CIFAR recipe's step decay."""

import math

import pytest

from kdtemp.engine.config import MemberConfig, OptimizerConfig, run_id
from kdtemp.engine.member import lr_multiplier

from engine_helpers import cohort


def test_step_schedule_drops_at_the_classic_milestones():
    step = OptimizerConfig(name="sgd", lr=0.05, schedule="step", milestones=[150, 180, 210], gamma=0.1)
    multiplier = lr_multiplier(step, epochs=240, steps_per_epoch=10)
    # 1-based epoch e covers steps 10 (e - 1) .. 10 e - 1
    assert multiplier(0) == 1.0 and multiplier(150 * 10 - 1) == 1.0       # the last step of epoch 150
    assert multiplier(150 * 10) == pytest.approx(0.1)                       # the first step of epoch 151
    assert multiplier(180 * 10 - 1) == pytest.approx(0.1) and multiplier(180 * 10) == pytest.approx(0.01)
    assert multiplier(210 * 10) == pytest.approx(0.001) and multiplier(240 * 10 - 1) == pytest.approx(0.001)


def test_linear_warmup_then_schedule():
    config = OptimizerConfig(name="sgd", schedule="step", milestones=[3], lr_warmup_epochs=2)
    multiplier = lr_multiplier(config, epochs=4, steps_per_epoch=5)
    assert [multiplier(s) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert multiplier(10) == 1.0 and multiplier(15) == pytest.approx(0.1)
    cosine = lr_multiplier(OptimizerConfig(lr_warmup_epochs=1), epochs=3, steps_per_epoch=4)
    assert cosine(3) == 1.0 and cosine(4) == 1.0  # warm-up ends at 1, the cosine starts from 1
    assert cosine(4 + 4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))


def test_cosine_is_unchanged_without_warmup():
    multiplier = lr_multiplier(OptimizerConfig(), epochs=2, steps_per_epoch=5)
    assert [multiplier(s) for s in range(10)] == pytest.approx([0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)])


def test_step_fields_do_not_change_a_cosine_run():
    shared = cohort([])
    assert run_id(shared, MemberConfig(optimizer=OptimizerConfig(milestones=[5]))) == run_id(shared, MemberConfig())
    step = MemberConfig(optimizer=OptimizerConfig(name="sgd", schedule="step"))
    assert run_id(shared, step) != run_id(shared, MemberConfig(optimizer=OptimizerConfig(name="sgd")))

"""Temperature policies: DTS trajectories worked out by hand, CTKD's adversarial temperature."""

import math

import pytest
import torch

from kdtemp.objectives import kd_loss
from kdtemp.temperature import DynamicTemperature, FixedTemperature, LearnableTemperature, curriculum_lambda
from helpers.tolerance import float32_rel


def schedule(epoch, total):
    return 0.5 * (1 + math.cos(math.pi * epoch / total))


# Wide bounds so the adaptive factor shows; epoch 5 of 10 gives S = 0.5, so T_init * S = 4.
@pytest.mark.parametrize(
    "gap, factor",
    [
        (0.5, 1.0),
        (0.999, 1.0),            # just below 1: no scaling
        (1.0, 1.35),             # the guard: treated as a > 2
        (1.001, 1.35),           # just above 1: a = 1001 > 2, capped to 1.35
        (1.999, 1.35),           # just below 2: a = 2.001 > 2, capped
        (2.0, 2.0),              # a = 2 is not > 2
        (2.001, 2.001 / 1.001),  # just above 2: a just below 2, kept
        (3.0, 1.5),
    ],
)
def test_dts_one_step_around_gaps_1_and_2(gap, factor):
    dts = DynamicTemperature(initial=8.0, minimum=0.5, maximum=20.0, momentum=0.9)
    new = dts.update(student_ce=gap + 0.25, teacher_ce=0.25, epoch=5, total_epochs=10)
    assert new == pytest.approx(0.9 * 8.0 + 0.1 * 4.0 * factor, abs=1e-12)
    assert dts.value == new


def test_dts_clamps_at_both_ends():
    dts = DynamicTemperature.same_family()  # [4, 8], starts at 8
    # epoch 1 of 10 with g = 3: 8 * S(0.1) * 1.5 = 11.7 > 8, clamped to 8
    assert dts.update(3.25, 0.25, epoch=1, total_epochs=10) == pytest.approx(8.0)
    # last epoch: S = 0, target 0 clamped to 4
    assert dts.update(0.3, 0.25, epoch=10, total_epochs=10) == pytest.approx(0.9 * 8 + 0.1 * 4)


def test_dts_trajectory_with_momentum():
    dts = DynamicTemperature.cross_family()  # T_init = T_max = 3, T_min = 1
    steps = [(0.2, 1), (1.5, 1), (2.5, 2), (0.0, 3), (4.0, 4)]
    expected, value = [], 3.0
    for gap, epoch in steps:
        a = 1.0 if gap < 1 else (1.35 if gap / (gap - 1) > 2 else gap / (gap - 1))
        target = min(max(3.0 * schedule(epoch, 4) * a, 1.0), 3.0)
        value = 0.9 * value + 0.1 * target
        expected.append(value)
    got = [dts.update(gap, 0.0, epoch, 4) for gap, epoch in steps]
    assert got == pytest.approx(expected, abs=1e-12)
    # hand check of the first step: S(1/4) = 0.8536, target 2.5607, 0.9 * 3 + 0.1 * 2.5607
    assert got[0] == pytest.approx(2.7 + 0.1 * 3.0 * 0.5 * (1 + math.cos(math.pi / 4)), abs=1e-12)


def test_dts_batch_uses_value_before_its_update():
    dts = DynamicTemperature(initial=8.0, minimum=4.0, maximum=8.0)
    used = []
    for step in range(3):
        used.append(dts.value)  # what the batch's loss is computed with
        dts.update(0.2, 0.0, epoch=5, total_epochs=10)
    assert used[0] == 8.0
    assert used[1] == pytest.approx(0.9 * 8 + 0.1 * 4)
    assert used[2] == pytest.approx(0.9 * used[1] + 0.1 * 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(initial=8, minimum=5, maximum=4), "minimum <= maximum"),
        (dict(initial=9, minimum=4, maximum=8), "initial must lie in"),
        (dict(initial=8, minimum=4, maximum=8, momentum=1.0), "momentum"),
    ],
)
def test_dts_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DynamicTemperature(**kwargs)


def test_fixed_temperature():
    policy = FixedTemperature(4.0)
    assert policy.update(10.0, 0.0, 1, 10) == 4.0 and policy.value == 4.0
    with pytest.raises(ValueError, match="temperature must be > 0"):
        FixedTemperature(0.0)


def test_curriculum_lambda_ramp():
    assert curriculum_lambda(0) == 0.0
    assert curriculum_lambda(1) == pytest.approx((math.cos(math.pi / 10) + 1) / 2 - 1)
    assert curriculum_lambda(5) == pytest.approx(-0.5)
    assert curriculum_lambda(10) == pytest.approx(-1.0)
    assert curriculum_lambda(50) == pytest.approx(-1.0)
    assert curriculum_lambda(5, ramp_epochs=5) == pytest.approx(-1.0)


def _ctkd_setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g) * 3


def test_ctkd_starts_at_15_62():
    assert LearnableTemperature().value == pytest.approx(1 + 20 / (1 + math.exp(-1)), abs=1e-5)
    assert LearnableTemperature().value == pytest.approx(15.62, abs=0.01)


def test_ctkd_negative_lambda_reverses_the_gradient():
    student, teacher = _ctkd_setup()
    module = LearnableTemperature()
    module.set_lambda(-0.5)
    kd_loss(student, teacher, module()).backward()
    reversed_grad = module.theta.grad.item()
    # the plain gradient of the KD loss with respect to theta (no reversal)
    theta = module.theta.detach().clone().requires_grad_()
    (plain,) = torch.autograd.grad(kd_loss(student, teacher, 1 + 20 * torch.sigmoid(theta)), theta)
    assert reversed_grad == pytest.approx(-0.5 * plain.item(), rel=float32_rel(2 * 10))  # the same graph, scaled
    # a descent step on theta therefore increases the KD loss
    before = kd_loss(student, teacher, module()).item()
    with torch.no_grad():
        module.theta -= 0.5 * module.theta.grad
    assert kd_loss(student, teacher, module()).item() > before


def test_ctkd_zero_lambda_gives_zero_gradient():
    student, teacher = _ctkd_setup()
    module = LearnableTemperature()
    module.set_lambda(0.0)
    kd_loss(student, teacher, module()).backward()
    assert module.theta.grad.item() == 0.0


def test_ctkd_temperature_stays_in_open_interval():
    module = LearnableTemperature()
    for theta in torch.linspace(-15, 15, 61):
        module.theta.data.fill_(theta)
        assert 1.0 < module().item() < 21.0
    # many adversarial steps with the student's optimizer keep it inside too
    student, teacher = _ctkd_setup(1)
    module = LearnableTemperature()
    module.set_lambda(-1.0)
    optimizer = torch.optim.SGD(module.parameters(), lr=5.0)
    for _ in range(200):
        optimizer.zero_grad()
        kd_loss(student, teacher, module()).backward()
        optimizer.step()
        assert 1.0 < module.value < 21.0


def test_dts_on_device_tensors_follows_the_same_rule_as_floats():
    """The engine passes the batch's CEs as tensors so the gap never leaves the device; the
    tensor path must give the float path's trajectory (gaps around the guard and the cap included)."""
    gaps = [0.2, 1.0, 1.5, 2.0, 2.5, 0.0, 4.0, 1.000001, 0.999]
    floats, tensors = DynamicTemperature.cross_family(), DynamicTemperature.cross_family()
    for step, gap in enumerate(gaps):
        epoch = 1 + step // 3
        expected = floats.update(gap + 0.1, 0.1, epoch, 3)
        got = tensors.update(torch.tensor(gap + 0.1, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64), epoch, 3)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
        assert float(got) == pytest.approx(expected, abs=1e-12)
    assert tensors.state_dict() == {"value": pytest.approx(floats.value, abs=1e-12)}

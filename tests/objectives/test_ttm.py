"""TTM and WTTM (``kdtemp.objectives.ttm``): values worked out by hand (``math`` on plain floats,
from the method's formula), zero loss at the method's own target, and weights without gradient."""

import math

import pytest
import torch

from kdtemp.objectives import ttm_loss, wttm_weights

from helpers.logits import gradcheck, kl, sample, softmax, tensor


ln, exp, sqrt = math.log, math.exp, math.sqrt


def test_ttm_softens_the_teacher_only_without_t_squared():
    # teacher p = [.75, .25]; at T = 2 it is the power transform p^(1/2) / sum p^(1/2); student uniform at T = 1
    r = [sqrt(0.75), sqrt(0.25)]
    q = [v / sum(r) for v in r]
    expected = kl(q, [0.5, 0.5])
    value = ttm_loss(torch.zeros(1, 2, dtype=torch.float64), tensor([ln(0.75), ln(0.25)]), 2.0)
    assert value.item() == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.0363408, abs=1e-7)


def test_ttm_is_the_power_transform_against_an_untempered_student():
    # teacher p = [.5, .3, .2], gamma = 1/4; student logits [1, 0, -1] at T = 1
    gamma = 0.25
    powered = [p ** gamma for p in (0.5, 0.3, 0.2)]
    q = [v / sum(powered) for v in powered]
    expected = kl(q, softmax([1.0, 0.0, -1.0]))
    value = ttm_loss(tensor([1.0, 0.0, -1.0]), tensor([ln(0.5), ln(0.3), ln(0.2)]), 4.0)
    assert value.item() == pytest.approx(expected, abs=1e-12)


def test_wttm_weights_each_sample_by_the_teacher_power_sum():
    # U = sum_c p_c^(1/T): sqrt(.75) + sqrt(.25) for the first row; a uniform row of C = 4 at T = 2 gives 4^(1/2) = 2
    teacher = tensor([ln(0.75), ln(0.25), -1e9, -1e9], [0.0, 0.0, 0.0, 0.0])
    student = torch.zeros(2, 4, dtype=torch.float64)
    u = [sqrt(0.75) + sqrt(0.25), 2.0]
    assert wttm_weights(teacher, 2.0).tolist() == pytest.approx(u, abs=1e-12)
    r = [sqrt(0.75), sqrt(0.25)]
    q = [v / sum(r) for v in r] + [0.0, 0.0]
    per_sample = [kl(q, [0.25] * 4), 0.0]
    assert ttm_loss(student, teacher, 2.0, reduction="none").tolist() == pytest.approx(per_sample, abs=1e-12)
    expected = (u[0] * per_sample[0] + u[1] * per_sample[1]) / 2
    assert ttm_loss(student, teacher, 2.0, weighted=True).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("temperature", [1.5, 4.0, 20.0])
def test_wttm_weights_lie_between_one_and_c_to_the_one_minus_one_over_t(temperature):
    _, teacher, _ = sample(batch=32, classes=7, scale=4.0)
    u = wttm_weights(teacher, temperature)
    assert (u >= 1 - 1e-12).all() and (u <= 7 ** (1 - 1 / temperature) + 1e-12).all()


@pytest.mark.parametrize("weighted", [False, True])
def test_ttm_is_zero_when_the_student_equals_the_softened_teacher(weighted):
    _, teacher, _ = sample()
    assert ttm_loss(teacher / 3.0, teacher, 3.0, weighted=weighted).item() == pytest.approx(0.0, abs=1e-12)
    assert ttm_loss(teacher.clone(), teacher, 3.0, weighted=weighted).item() > 1e-3  # s = t is not TTM's target


def test_wttm_weights_carry_no_gradient():
    student, teacher, _ = sample()
    teacher.requires_grad_()
    assert not wttm_weights(teacher, 2.0).requires_grad
    weights = wttm_weights(teacher.detach(), 2.0)
    assert gradcheck(lambda s: (weights * ttm_loss(s, teacher.detach(), 2.0, reduction="none")).mean(), student)
    assert gradcheck(lambda s: ttm_loss(s, teacher.detach(), 2.0, weighted=True), student)

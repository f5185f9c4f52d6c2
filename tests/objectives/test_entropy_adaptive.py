"""Entropy-adaptive KD (``kdtemp.objectives.entropy_adaptive``): its weights and EA-KD."""

import math

import pytest
import torch

from kdtemp.objectives import create_objective, entropy_weights, kd_loss

from helpers.logits import logits_of, sample


ln = math.log


def test_entropy_weights_hand_case():
    teacher = torch.zeros(1, 2, dtype=torch.float64)  # H_t = ln 2
    student = logits_of([0.75, 0.25])  # H_s = -(.75 ln .75 + .25 ln .25)
    h_s = -(0.75 * ln(0.75) + 0.25 * ln(0.25))
    expected = (ln(2) + ln(2) * h_s / ln(2)) / 2
    assert entropy_weights(student, teacher, 1.0).item() == pytest.approx(expected, abs=1e-12)
    with_bound = (ln(2) + ln(2) * h_s / 100.0) / 2
    assert entropy_weights(student, teacher, 1.0, entropy_bound=100.0).item() == pytest.approx(with_bound, abs=1e-12)


def test_ea_kd_is_weighted_mean_of_per_sample_kd():
    teacher, student = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    weights = entropy_weights(student, teacher, 3.0)
    expected = (weights * kd_loss(student, teacher, 2.0, reduction="none")).mean()
    value = create_objective("ea_kd")(student, teacher, torch.zeros(3, dtype=torch.long), 2.0)
    assert value.item() == pytest.approx(expected.item(), abs=1e-12)


def test_entropy_weights_carry_no_gradient():
    student, teacher, _ = sample()
    student.requires_grad_()
    weights = entropy_weights(student, teacher, 3.0)
    assert not weights.requires_grad
    # the EA-KD gradient equals the weighted per-sample KD gradient with weights as constants
    loss = create_objective("ea_kd")(student, teacher, torch.zeros(6, dtype=torch.long), 2.0)
    (grad,) = torch.autograd.grad(loss, student)
    expected_loss = (weights * kd_loss(student, teacher, 2.0, reduction="none")).mean()
    (expected,) = torch.autograd.grad(expected_loss, student)
    assert torch.allclose(grad, expected)

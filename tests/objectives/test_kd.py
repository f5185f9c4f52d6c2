"""KD (``kdtemp.objectives.kd``) against values worked out by hand on small batches (B <= 2, C <= 4)."""

import math

import pytest
import torch

from kdtemp.objectives import kd_loss

from helpers.logits import logits_of


ln = math.log


def test_kd_loss_two_classes_at_t1():
    # p_t = [.75, .25], p_s = [.5, .5]: KL = .75 ln 1.5 + .25 ln .5
    expected = 0.75 * ln(1.5) + 0.25 * ln(0.5)
    value = kd_loss(torch.zeros(1, 2, dtype=torch.float64), logits_of([0.75, 0.25]), 1.0)
    assert value.item() == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.1308120, abs=1e-7)


def test_kd_loss_multiplies_by_t_squared_at_t2():
    # t / 2 = [ln 3 / 2, 0] -> p_t = [sqrt3, 1] / (1 + sqrt3)
    a = math.sqrt(3) / (1 + math.sqrt(3))
    expected = 4 * (a * ln(a / 0.5) + (1 - a) * ln((1 - a) / 0.5))
    value = kd_loss(torch.zeros(1, 2, dtype=torch.float64), logits_of([0.75, 0.25]), 2.0)
    assert value.item() == pytest.approx(expected, abs=1e-12)


def test_kd_loss_is_batchmean_not_elementwise_mean():
    teacher = logits_of([0.75, 0.25], [0.5, 0.5])
    student = torch.zeros(2, 2, dtype=torch.float64)  # second row matches its teacher exactly
    single = 0.75 * ln(1.5) + 0.25 * ln(0.5)
    assert kd_loss(student, teacher, 1.0).item() == pytest.approx(single / 2, abs=1e-12)
    per_sample = kd_loss(student, teacher, 1.0, reduction="none")
    assert per_sample.tolist() == pytest.approx([single, 0.0], abs=1e-12)


def test_kd_loss_separate_student_temperature():
    # teacher at T=1: [.75, .25]; student logits [ln 3, 0] at T_s = 2: [a, 1 - a]
    a = math.sqrt(3) / (1 + math.sqrt(3))
    expected = 2 * (0.75 * ln(0.75 / a) + 0.25 * ln(0.25 / (1 - a)))
    value = kd_loss(logits_of([0.75, 0.25]), logits_of([0.75, 0.25]), 1.0, student_temperature=2.0)
    assert value.item() == pytest.approx(expected, abs=1e-12)


def test_a_masked_class_contributes_nothing_to_kd():
    from kdtemp.objectives import kd_loss

    torch.manual_seed(1)
    student, teacher = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    masked = teacher.clone()
    masked[:, 0] = float("-inf")
    p = torch.softmax(teacher[:, 1:] / 2, dim=1)
    log_q = torch.log_softmax(student / 2, dim=1)[:, 1:]
    expected = 4 * (p * (p.log() - log_q)).sum(1).mean()
    assert kd_loss(student, masked, 2.0).item() == pytest.approx(expected.item(), rel=1e-12)

"""ATS (``kdtemp.objectives.ats``): values worked out by hand, its target and its ratio rule."""

import math

import pytest
import torch

from kdtemp.objectives import ats_loss, ttm_loss

from helpers.logits import gradcheck, kl, sample, softmax, tensor


ln, exp, sqrt = math.log, math.exp, math.sqrt


def test_ats_uses_the_ratio_times_t_on_the_target_class_only():
    # t = [2, 1, 0], T = 1, ratio 2: y = 0 -> [1, 1, 0]; y = 1 -> [2, .5, 0]. Student uniform at T = 1.
    teacher = tensor([2.0, 1.0, 0.0], [2.0, 1.0, 0.0])
    student = torch.zeros(2, 3, dtype=torch.float64)
    rows = [kl(softmax([1.0, 1.0, 0.0]), [1 / 3] * 3), kl(softmax([2.0, 0.5, 0.0]), [1 / 3] * 3)]
    value = ats_loss(student, teacher, torch.tensor([0, 1]), temperature=1.0, target_ratio=2.0)
    assert value.item() == pytest.approx(sum(rows) / 2, abs=1e-12)


def test_ats_at_the_official_setting():
    # T = 2 on the other classes, 4 on y = 2; student logits [0, 1, 0] at T = 1
    q = softmax([3.0 / 2, -1.0 / 2, 2.0 / 4])
    expected = kl(q, softmax([0.0, 1.0, 0.0]))
    value = ats_loss(tensor([0.0, 1.0, 0.0]), tensor([3.0, -1.0, 2.0]), torch.tensor([2]))
    assert value.item() == pytest.approx(expected, abs=1e-12)


def test_ats_kl_form_is_the_authors_soft_cross_entropy_minus_the_teacher_entropy():
    # same case: soft CE - H(q) = KL, and the gradients of the two agree
    q = softmax([3.0 / 2, -1.0 / 2, 2.0 / 4])
    p = softmax([0.0, 1.0, 0.0])
    soft_ce = -sum(a * ln(b) for a, b in zip(q, p))
    entropy = -sum(a * ln(a) for a in q)
    assert ats_loss(tensor([0.0, 1.0, 0.0]), tensor([3.0, -1.0, 2.0]), torch.tensor([2])).item() == pytest.approx(
        soft_ce - entropy, abs=1e-12)
    s = tensor([0.0, 1.0, 0.0]).requires_grad_()
    (grad,) = torch.autograd.grad(ats_loss(s, tensor([3.0, -1.0, 2.0]), torch.tensor([2])), s)
    assert grad[0].tolist() == pytest.approx([b - a for a, b in zip(q, p)], abs=1e-12)  # d soft CE / d s = p - q


def test_ats_is_zero_at_its_target_and_is_ttm_at_ratio_one():
    student, teacher, target = sample()
    scale = torch.where(torch.nn.functional.one_hot(target, 5).bool(), 1 / 6.0, 1 / 3.0)
    assert ats_loss(teacher * scale, teacher, target, 3.0, 2.0).item() == pytest.approx(0.0, abs=1e-12)
    assert ats_loss(student, teacher, target, 3.0, 1.0).item() == pytest.approx(
        ttm_loss(student, teacher, 3.0).item(), rel=1e-12)
    assert gradcheck(lambda s: ats_loss(s, teacher[:3, :4], target[:3] % 4, 2.0, 2.0), student[:3, :4])


def test_ats_rejects_a_non_positive_ratio():
    student, teacher, target = sample()
    with pytest.raises(ValueError, match="target_ratio must be > 0"):
        ats_loss(student, teacher, target, 2.0, 0.0)

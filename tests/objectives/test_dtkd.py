"""DTKD (``kdtemp.objectives.dtkd``): values worked out by hand, its guard of non-positive maxima,
and the gradient through the student's maximum."""

import pytest
import torch

from kdtemp.objectives import dtkd_loss, dtkd_parts, dtkd_temperatures

from helpers.logits import gradcheck, kl, sample, softmax, tensor


def test_dtkd_hand_case():
    # x = 3, y = 1, T = 2: T_t = 2*3/4*2 = 3, T_s = 2*1/4*2 = 1; L = 3 * 1 * KL(softmax(t/3) || softmax(s/1))
    teacher, student = tensor([3.0, 1.0, 0.0]), tensor([1.0, 1.0, -1.0])
    expected = 3.0 * kl(softmax([1.0, 1 / 3, 0.0]), softmax([1.0, 1.0, -1.0]))
    t_t, t_s, guarded = dtkd_temperatures(student, teacher, 2.0)
    assert (t_t.item(), t_s.item(), guarded.item()) == (pytest.approx(3.0), pytest.approx(1.0), False)
    assert dtkd_loss(student, teacher, 2.0).item() == pytest.approx(expected, abs=1e-12)


def test_dtkd_guards_non_positive_maxima_and_counts_them():
    # row 0: x = 3, y = 1 (as above); row 1: teacher max -1 <= 0; row 2: student max exactly 0. T = 2.
    teacher = tensor([3.0, 1.0, 0.0], [-1.0, -2.0, -3.0], [2.0, 0.0, 1.0])
    student = tensor([1.0, 1.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, -2.0])
    dynamic = 3.0 * kl(softmax([1.0, 1 / 3, 0.0]), softmax([1.0, 1.0, -1.0]))
    kd1 = 4 * kl(softmax([-0.5, -1.0, -1.5]), softmax([0.5, 0.0, 0.0]))
    kd2 = 4 * kl(softmax([1.0, 0.0, 0.5]), softmax([0.0, -0.5, -1.0]))
    per_sample, guarded = dtkd_parts(student, teacher, 2.0)
    assert per_sample.tolist() == pytest.approx([dynamic, kd1, kd2], abs=1e-12)
    assert guarded.tolist() == [False, True, True] and int(guarded.sum()) == 2
    assert dtkd_loss(student, teacher, 2.0).item() == pytest.approx((dynamic + kd1 + kd2) / 3, abs=1e-12)
    t_t, t_s, _ = dtkd_temperatures(student, teacher, 2.0)
    assert t_t.tolist() == pytest.approx([3.0, 2.0, 2.0]) and t_s.tolist() == pytest.approx([1.0, 2.0, 2.0])


def test_dtkd_temperatures_sum_to_twice_the_reference():
    student, teacher, _ = sample(batch=32)
    t_t, t_s, _ = dtkd_temperatures(student, teacher, 4.0)
    assert torch.allclose(t_t + t_s, torch.full_like(t_t, 8.0))


def test_dtkd_is_zero_when_the_student_is_a_positive_multiple_of_the_teacher():
    _, teacher, _ = sample()
    teacher = teacher.abs() + 0.1  # positive maxima: the dynamic branch
    for factor in (1.0, 0.25, 3.0):
        per_sample, guarded = dtkd_parts(factor * teacher, teacher, 4.0)
        assert not guarded.any() and per_sample.abs().max().item() < 1e-12


def test_dtkd_gradient_flows_through_the_student_maximum():
    student, teacher, _ = sample(batch=3, classes=4, scale=1.5)
    teacher[:, 0] = 2.0  # x > 0
    student[0] = torch.tensor([1.2, 0.3, -0.4, 0.1])
    student[1] = torch.tensor([-0.5, -0.2, -1.0, -0.3])  # guarded row (y < 0)
    assert gradcheck(lambda s: dtkd_loss(s, teacher, 2.0), student)
    # the same loss with y detached has another gradient
    s = student.clone().requires_grad_()
    (full,) = torch.autograd.grad(dtkd_loss(s, teacher, 2.0), s)
    x = teacher.max(dim=1, keepdim=True).values
    y = s.max(dim=1, keepdim=True).values.detach()
    on = (x > 0) & (y > 0)
    t_t = torch.where(on, 2 * x / (x + y) * 2.0, torch.full_like(x, 2.0))
    t_s = torch.where(on, 2 * y / (x + y) * 2.0, torch.full_like(y, 2.0))
    log_p, log_q = torch.log_softmax(teacher / t_t, dim=1), torch.log_softmax(s / t_s, dim=1)
    detached = ((log_p.exp() * (log_p - log_q)).sum(1) * (t_t * t_s).squeeze(1)).mean()
    (fixed,) = torch.autograd.grad(detached, s)
    assert detached.item() == pytest.approx(dtkd_loss(student, teacher, 2.0).item(), rel=1e-12)
    assert (full - fixed)[0].abs().max().item() > 1e-4  # the dynamic row differs
    assert torch.allclose(full[1], fixed[1])  # the guarded row has no path through y

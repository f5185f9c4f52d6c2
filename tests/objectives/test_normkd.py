"""NormKD (``kdtemp.objectives.normkd``): values worked out by hand, zero loss at its target, and
the gradient through the student's per-sample temperature."""

import math

import pytest
import torch

from kdtemp.objectives import normkd_dkd_loss, normkd_loss, normkd_temperatures

from helpers.logits import gradcheck, kl, sample, softmax, tensor


ln, exp, sqrt = math.log, math.exp, math.sqrt


def normkd_hand_case():
    # t = [2, 0, -2]: mean 0, unbiased std 2 -> T_t = 2 * 2 = 4, t / T_t = [.5, 0, -.5].
    # s = [1, 0, 0]: deviations [2/3, -1/3, -1/3], unbiased variance 1/3 -> T_s = 2 / sqrt 3, s / T_s ~ [sqrt3/2, 0, 0].
    p_t = softmax([0.5, 0.0, -0.5])
    p_s = softmax([sqrt(3) / 2, 0.0, 0.0])
    return tensor([1.0, 0.0, 0.0]), tensor([2.0, 0.0, -2.0]), p_t, p_s


def test_normkd_hand_case():
    student, teacher, p_t, p_s = normkd_hand_case()
    assert normkd_temperatures(teacher, 2.0).tolist() == pytest.approx([4.0], abs=1e-12)
    assert normkd_temperatures(student, 2.0).tolist() == pytest.approx([2 / sqrt(3)], abs=1e-12)
    assert normkd_loss(student, teacher, 2.0).item() == pytest.approx(16 * kl(p_t, p_s), abs=1e-12)


def test_normkd_dkd_hand_case():
    student, teacher, p_t, p_s = normkd_hand_case()
    target = torch.tensor([0])
    tckd = kl([p_t[0], 1 - p_t[0]], [p_s[0], 1 - p_s[0]])
    nckd = kl(softmax([0.0, -0.5]), [0.5, 0.5])  # normalised non-target logits: teacher [0, -.5], student [0, 0]
    assert normkd_dkd_loss(student, teacher, target, 2.0).item() == pytest.approx(16 * (tckd + 8 * nckd), abs=1e-12)
    value = normkd_dkd_loss(student, teacher, target, 2.0, alpha=2.0, beta=7.0)
    assert value.item() == pytest.approx(16 * (2 * tckd + 7 * nckd), abs=1e-12)


def test_normkd_is_batchmean_of_teacher_t_squared_times_kl():
    student, teacher, p_t, p_s = normkd_hand_case()
    students, teachers = torch.cat([student, torch.zeros(1, 3, dtype=torch.float64)]), torch.cat([teacher, teacher])
    # second row: a constant student (std 0, floored) is uniform
    expected = (16 * kl(p_t, p_s) + 16 * kl(p_t, [1 / 3] * 3)) / 2
    assert normkd_loss(students, teachers, 2.0).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("temperature", [0.5, 2.0, 10.0])
def test_normkd_is_zero_when_the_student_is_an_affine_copy_of_the_teacher(temperature):
    _, teacher, target = sample()
    for student in (teacher.clone(), 3.0 * teacher + 1.5):  # the std follows the scale
        assert normkd_loss(student, teacher, temperature).item() == pytest.approx(0.0, abs=1e-12)
        assert normkd_dkd_loss(student, teacher, target, temperature).item() == pytest.approx(0.0, abs=1e-12)


def test_normkd_gradient_flows_through_the_student_std():
    student, teacher, target = sample(batch=3, classes=4, scale=1.5)
    assert gradcheck(lambda s: normkd_loss(s, teacher, 2.0), student)
    assert gradcheck(lambda s: normkd_dkd_loss(s, teacher, target, 2.0), student)
    # the same loss with the student's std held fixed has another gradient
    s = student.clone().requires_grad_()
    (full,) = torch.autograd.grad(normkd_loss(s, teacher, 2.0), s)
    std_t = teacher.std(dim=1, keepdim=True)
    std_s = s.std(dim=1, keepdim=True).detach()
    log_p = torch.log_softmax(teacher / (2 * std_t), dim=1)
    log_q = torch.log_softmax(s / (2 * std_s), dim=1)
    detached = ((log_p.exp() * (log_p - log_q)).sum(1) * (2 * std_t.squeeze(1)) ** 2).mean()
    (fixed,) = torch.autograd.grad(detached, s)
    assert detached.item() == pytest.approx(normkd_loss(student, teacher, 2.0).item(), rel=1e-12)
    assert (full - fixed).abs().max().item() > 1e-3


def test_normkd_constant_student_row_is_finite():
    student = torch.full((2, 5), 3.0, requires_grad=True)
    teacher = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    loss = normkd_loss(student, teacher, 2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()

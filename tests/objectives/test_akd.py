"""Annealing KD (objectives.md section 15): phase 1's loss and the level staircase, by hand."""

import pytest
import torch

from kdtemp.objectives import akd_loss
from kdtemp.temperature import akd_level


def test_akd_loss_is_the_mean_squared_gap_to_the_scaled_teacher_by_hand():
    student = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    teacher = torch.tensor([[4.0, 2.0], [-1.0, 6.0]], dtype=torch.float64)
    # level 5 of 10: the teacher is halved -> [[2, 1], [-0.5, 3]]; gaps [[-1, -3], [1, 0]]
    assert float(akd_loss(student, teacher, 5)) == pytest.approx((1 + 9 + 1 + 0) / 4)
    assert float(akd_loss(student, teacher, 10, max_level=10)) == pytest.approx((9 + 16 + 2.25 + 9) / 4)


def test_akd_loss_gradient_by_hand_and_gradcheck():
    student = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor([[4.0, 2.0], [-1.0, 6.0]], dtype=torch.float64)
    akd_loss(student, teacher, 5).backward()
    # d/ds mean((s - t/2)^2) = 2 (s - t/2) / (B*C)
    expected = 2 * (student.detach() - teacher / 2) / 4
    assert torch.allclose(student.grad.double(), expected.double(), atol=1e-6)
    s64 = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    t64 = torch.randn(3, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: torch.nn.functional.mse_loss(s, 0.3 * t64), (s64,))
    assert float(akd_loss(s64, t64, 10).detach()) == pytest.approx(float(((s64 - t64) ** 2).mean().detach()), rel=1e-6)


def test_akd_loss_is_zero_when_the_student_equals_the_scaled_teacher_and_finite_at_large_logits():
    teacher = torch.randn(4, 7) * 1e4
    assert float(akd_loss(teacher * 0.3, teacher, 3)) == pytest.approx(0.0, abs=1e-2)
    assert torch.isfinite(akd_loss(torch.randn(4, 7) * 1e4, teacher, 1))
    with pytest.raises(ValueError, match="level must be in"):
        akd_loss(teacher, teacher, 11)


def test_the_staircase_for_200_epochs_and_10_levels():
    levels = [akd_level(e, 200) for e in range(1, 201)]
    assert levels == [k for k in range(1, 11) for _ in range(20)]  # each level lasts 20 epochs


def test_the_staircase_for_a_length_that_is_not_a_multiple_is_clamped():
    # floor(25 / 10) = 2 epochs a level: 1, 1, 2, 2, ..., 10, 10, then the authors' counter would
    # reach 11, 12, 13 in epochs 21-25; kdtemp clamps at 10
    assert [akd_level(e, 25) for e in range(1, 26)] == [k for k in range(1, 11) for _ in range(2)] + [10] * 5
    with pytest.raises(ValueError, match=r"phase1_epochs \(9\) must be >= max_level \(10\)"):
        akd_level(1, 9)


def test_the_study_objective_at_the_policy_s_annealing_temperature_is_akd_loss_at_its_level():
    from kdtemp.objectives import create_objective
    from kdtemp.temperature import create_policy

    student, teacher = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    policy = create_policy("akd", temperature=4.0, objective_params={"phase1_epochs": 25, "max_level": 10})
    objective = create_objective("akd", phase1_epochs=25)
    seen = []
    for epoch in range(1, 26):
        policy.begin_epoch(epoch)
        tau = policy.current()
        level = akd_level(epoch, 25)
        assert tau == 11 - level  # the paper's temperature: 10 at the first level, 1 at the last
        assert float(objective(student, teacher, None, tau)) == float(akd_loss(student, teacher, level))
        seen.append(tau)
    assert seen[0] == 10.0 and seen[-1] == 1.0
    state = policy.state_dict()
    again = create_policy("akd", temperature=4.0, objective_params={"phase1_epochs": 25, "max_level": 10})
    again.load_state_dict(state)
    assert again.current() == 1.0

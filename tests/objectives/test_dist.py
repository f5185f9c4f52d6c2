"""DIST (``kdtemp.objectives.dist``): a hand-worked value and its zero at equality."""

import pytest

from kdtemp.objectives import create_objective, dist_loss

from helpers.logits import logits_of, sample


def test_dist_loss_hand_case():
    # rows swapped between teacher and student; worked out by hand:
    # inter: rho = -1/2 for both rows -> 1.5; intra: rho = -1, -1, 0 -> 1 + 2/3
    teacher = logits_of([0.5, 0.25, 0.25], [0.25, 0.5, 0.25])
    student = logits_of([0.25, 0.5, 0.25], [0.5, 0.25, 0.25])
    assert dist_loss(student, teacher, 1.0).item() == pytest.approx(1.5 + 5 / 3, abs=1e-6)
    assert dist_loss(student, teacher, 1.0, beta=2.0, gamma=0.0).item() == pytest.approx(3.0, abs=1e-6)


def test_dist_near_zero_when_student_equals_teacher():
    _, teacher, target = sample()
    assert create_objective("dist")(teacher.clone(), teacher, target, 1.0).item() < 1e-6

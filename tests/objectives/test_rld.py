"""RLD (``kdtemp.objectives.rld``) against values worked out by hand."""

import math

import pytest
import torch

from kdtemp.objectives import create_objective, rld_loss

from helpers.logits import logits_of, sample


ln = math.log


def test_rld_loss_hand_case():
    # p_t = [.4, .3, .2, .1], y = 1, so m = argmax t = 0 != y; student uniform.
    teacher = logits_of([0.4, 0.3, 0.2, 0.1])
    student = torch.zeros(1, 4, dtype=torch.float64)
    scd = 0.4 * ln(0.4 / 0.25) + 0.6 * ln(0.6 / 0.75)
    # classes 0 and 1 have t_c >= t_y: masked; the rest renormalise to [2/3, 1/3] vs [.5, .5]
    mcd = (2 / 3) * ln(4 / 3) + (1 / 3) * ln(2 / 3)
    value = rld_loss(student, teacher, torch.tensor([1]), 1.0, alpha=1.0, beta=8.0)
    assert value.item() == pytest.approx(scd + 8 * mcd, abs=1e-12)


def test_rld_fully_masked_row_contributes_zero_mcd():
    # y is the teacher's lowest class: every class has t_c >= t_y
    teacher = logits_of([0.4, 0.3, 0.2, 0.1])
    student = torch.zeros(1, 4, dtype=torch.float64)
    value = rld_loss(student, teacher, torch.tensor([3]), 1.0, alpha=0.0, beta=8.0)
    assert value.item() == 0.0


def test_rld_alpha_temperature_only_changes_scd():
    teacher = logits_of([0.4, 0.3, 0.2, 0.1])
    student = torch.zeros(1, 4, dtype=torch.float64)
    # at Ta = 2, p_m(t) = sqrt(.4) / sum sqrt(p); SCD gets Ta^2 = 4
    r = [math.sqrt(p) for p in (0.4, 0.3, 0.2, 0.1)]
    pm = r[0] / sum(r)
    scd = 4 * (pm * ln(pm / 0.25) + (1 - pm) * ln((1 - pm) / 0.75))
    value = rld_loss(student, teacher, torch.tensor([1]), 1.0, alpha=1.0, beta=0.0, alpha_temperature=2.0)
    assert value.item() == pytest.approx(scd, abs=1e-12)


def test_rld_not_zero_at_equality_when_label_differs_from_teacher_top():
    _, teacher, _ = sample()
    target = teacher.argmin(dim=1)
    assert create_objective("rld")(teacher.clone(), teacher, target, 4.0).item() > 1e-3

"""DKD (``kdtemp.objectives.dkd``) against values worked out by hand."""

import math

import pytest
import torch

from kdtemp.objectives import dkd_loss

from helpers.logits import logits_of


ln = math.log


def test_dkd_loss_hand_case():
    # p_t = [.4, .4, .2], p_s uniform, y = 0.
    teacher = logits_of([0.4, 0.4, 0.2])
    student = torch.zeros(1, 3, dtype=torch.float64)
    target = torch.tensor([0])
    tckd = 0.4 * ln(0.4 / (1 / 3)) + 0.6 * ln(0.6 / (2 / 3))
    nckd = (2 / 3) * ln((2 / 3) / 0.5) + (1 / 3) * ln((1 / 3) / 0.5)
    assert dkd_loss(student, teacher, target, 1.0, alpha=1.0, beta=8.0).item() == pytest.approx(tckd + 8 * nckd, abs=1e-12)
    assert dkd_loss(student, teacher, target, 1.0, alpha=2.0, beta=0.0).item() == pytest.approx(2 * tckd, abs=1e-12)


def test_dkd_loss_t2_uses_t_squared_on_both_parts():
    teacher = logits_of([0.4, 0.4, 0.2])
    student = torch.zeros(1, 3, dtype=torch.float64)
    # at T = 2 the teacher probabilities are proportional to sqrt([.4, .4, .2])
    r = [math.sqrt(0.4), math.sqrt(0.4), math.sqrt(0.2)]
    p = [x / sum(r) for x in r]
    tckd = p[0] * ln(p[0] * 3) + (1 - p[0]) * ln((1 - p[0]) * 1.5)
    q = [r[1] / (r[1] + r[2]), r[2] / (r[1] + r[2])]
    nckd = q[0] * ln(q[0] * 2) + q[1] * ln(q[1] * 2)
    value = dkd_loss(student, teacher, torch.tensor([0]), 2.0, alpha=1.0, beta=8.0)
    assert value.item() == pytest.approx(4 * (tckd + 8 * nckd), abs=1e-12)

"""Multi-level KD (``kdtemp.objectives.mlkd``): hand-worked levels, temperatures and batch scaling."""

import math

import pytest
import torch

from kdtemp.objectives import batch_level_loss, class_level_loss, create_objective, mlkd_loss

from helpers.logits import logits_of, sample


ln = math.log


def test_mlkd_levels_hand_case():
    teacher = logits_of([0.75, 0.25])
    student = torch.zeros(1, 2, dtype=torch.float64)
    # Gram [1x1]: .75^2 + .25^2 = .625 vs .5 -> .125^2
    assert batch_level_loss(student, teacher, 1.0).item() == pytest.approx(0.015625, abs=1e-12)
    # class correlation: outer products differ by [[.3125, -.0625], [-.0625, -.1875]]; / C = 2
    assert class_level_loss(student, teacher, 1.0).item() == pytest.approx(0.140625 / 2, abs=1e-12)
    kd = 0.75 * ln(1.5) + 0.25 * ln(0.5)
    assert mlkd_loss(student, teacher, (1.0,)).item() == pytest.approx(kd + 0.015625 + 0.0703125, abs=1e-12)


def test_mlkd_objective_scales_the_authors_temperatures():
    teacher, student = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    objective = create_objective("mlkd")
    expected = mlkd_loss(student, teacher, (4.0, 3.0, 5.0, 2.0, 6.0))
    assert objective(student, teacher, torch.zeros(4, dtype=torch.long), 4.0).item() == pytest.approx(expected.item())


def test_mlkd_batch_and_class_levels_scale_with_duplication_as_defined():
    from kdtemp.objectives import batch_level_loss, class_level_loss

    student, teacher, _ = sample()
    s2, t2 = torch.cat([student, student]), torch.cat([teacher, teacher])
    assert batch_level_loss(s2, t2, 2.0).item() == pytest.approx(2 * batch_level_loss(student, teacher, 2.0).item())
    assert class_level_loss(s2, t2, 2.0).item() == pytest.approx(4 * class_level_loss(student, teacher, 2.0).item())

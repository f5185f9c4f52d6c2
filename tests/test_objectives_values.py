"""Objectives against values worked out by hand on small batches (B <= 2, C <= 4)."""

import math

import pytest
import torch

from kdtemp.objectives import (
    batch_level_loss,
    class_level_loss,
    create_objective,
    dist_loss,
    dkd_loss,
    entropy_weights,
    kd_loss,
    mlkd_loss,
    rld_loss,
    standardize_logits,
)

ln = math.log


def logits_of(*probs):
    """Logits whose softmax at T = 1 is ``probs``."""
    return torch.tensor([[ln(p) for p in row] for row in probs], dtype=torch.float64)


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


def test_standardize_logits_uses_unbiased_std():
    out = standardize_logits(torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64), eps=1e-7)
    # mean 2, unbiased std 1 (a biased std would give +-1.2247)
    assert out.tolist()[0] == pytest.approx([-1 / (1 + 1e-7), 0.0, 1 / (1 + 1e-7)], abs=1e-12)


def test_standardized_kd_runs_kd_on_standardized_logits():
    student = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    teacher = torch.tensor([[10.0, 0.0, 5.0]], dtype=torch.float64)  # mean 5, std 5 -> [1, -1, 0]
    eps = 1e-3  # eps must be > 0 (create_objective checks it); the standardized rows are divided by std + eps
    objective = create_objective("ls_kd", eps=eps)
    expected = kd_loss(torch.tensor([[-1.0, 0.0, 1.0]], dtype=torch.float64) / (1 + eps),
                       torch.tensor([[5.0, -5.0, 0.0]], dtype=torch.float64) / (5 + eps), 2.0)
    assert objective(student, teacher, torch.tensor([0]), 2.0).item() == pytest.approx(expected.item(), abs=1e-12)


def test_dist_loss_hand_case():
    # rows swapped between teacher and student; worked out by hand:
    # inter: rho = -1/2 for both rows -> 1.5; intra: rho = -1, -1, 0 -> 1 + 2/3
    teacher = logits_of([0.5, 0.25, 0.25], [0.25, 0.5, 0.25])
    student = logits_of([0.25, 0.5, 0.25], [0.5, 0.25, 0.25])
    assert dist_loss(student, teacher, 1.0).item() == pytest.approx(1.5 + 5 / 3, abs=1e-6)
    assert dist_loss(student, teacher, 1.0, beta=2.0, gamma=0.0).item() == pytest.approx(3.0, abs=1e-6)


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

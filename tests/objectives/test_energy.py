"""Energy KD (``kdtemp.objectives.energy``): energy scores, thresholds and the loss, by hand."""

import math

import pytest
import torch

from kdtemp.objectives import create_objective, energy_kd_loss, energy_scores, energy_temperatures, energy_thresholds

from helpers.logits import gradcheck, kl, sample, softmax, tensor


ln, exp, sqrt = math.log, math.exp, math.sqrt


def test_energy_scores_hand_values():
    teacher = tensor([0.0, 0.0], [ln(3.0), 0.0])
    assert energy_scores(teacher, 4.0).tolist() == pytest.approx([-4 * ln(2), -4 * ln(exp(ln(3) / 4) + 1)], abs=1e-12)
    assert energy_scores(teacher, 1.0).tolist() == pytest.approx([-ln(2), -ln(4)], abs=1e-12)


def test_energy_thresholds_index_the_sorted_scores():
    scores = torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0, 0.0, 9.0, 8.0, 7.0, 6.0])
    assert energy_thresholds(scores) == (2.0, 7.0)  # sorted[int(.2 * 10)], sorted[-(int(.2 * 10) + 1)]
    assert energy_thresholds(scores, 0.0, 0.0) == (0.0, 9.0)
    assert energy_thresholds(scores, 0.5, 0.5) == (5.0, 4.0)
    assert energy_thresholds(scores, 0.15, 0.35) == (1.0, 6.0)  # int(1.5) = 1, int(3.5) + 1 = 4


def test_energy_ties_at_a_threshold_fall_in_the_middle_group():
    # two-class rows [a, a] have energy -a - 4 ln 2 at temperature 4: energies 1,1,1,1,2,2,2,2,3,3 (+ const)
    levels = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3]
    teacher = torch.tensor([[-e, -e] for e in levels], dtype=torch.float64)
    low, high = energy_thresholds(energy_scores(teacher), 0.25, 0.25)  # sorted[2] and sorted[-3]: both tied
    assert (low, high) == (pytest.approx(1 - 4 * ln(2)), pytest.approx(2 - 4 * ln(2)))
    temperatures = energy_temperatures(teacher, low, high, (2.0, 4.0, 6.0))
    assert temperatures.tolist() == [4.0] * 8 + [6.0, 6.0]  # no sample is strictly below low; ties are middle


def test_energy_kd_hand_case():
    # energies at temperature 4: row 0 (confident) far below low, row 1 between, row 2 (flat) above high
    teacher = tensor([8.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    student = tensor([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [2.0, 0.0, 0.0])
    energies = [-4 * ln(exp(2.0) + 2), -4 * ln(exp(0.25) + 2), -4 * ln(3)]
    low, high = (energies[0] + energies[1]) / 2, (energies[1] + energies[2]) / 2
    assert energy_scores(teacher).tolist() == pytest.approx(energies, abs=1e-12)
    rows = [4 * kl(softmax([4.0, 0.0, 0.0]), softmax([0.5, 0.0, 0.0])),
            16 * kl(softmax([0.25, 0.0, 0.0]), softmax([0.0, 0.25, 0.0])),
            36 * kl([1 / 3] * 3, softmax([2 / 6, 0.0, 0.0]))]
    assert energy_temperatures(teacher, low, high).tolist() == [2.0, 4.0, 6.0]  # confident -> the LOW temperature
    assert energy_kd_loss(student, teacher, low, high).item() == pytest.approx(sum(rows) / 3, abs=1e-12)


def test_energy_kd_zero_at_equality_and_gradcheck():
    student, teacher, _ = sample(batch=4, classes=4, scale=1.5)
    low, high = energy_thresholds(energy_scores(teacher), 0.25, 0.25)
    assert energy_kd_loss(teacher.clone(), teacher, low, high).item() == pytest.approx(0.0, abs=1e-12)
    assert gradcheck(lambda s: energy_kd_loss(s, teacher, low, high), student)
    teacher.requires_grad_()
    assert not energy_temperatures(teacher, low, high).requires_grad  # the grouping carries no gradient


def test_energy_kd_without_thresholds_or_with_bad_rates_is_a_clear_error():
    student, teacher, target = sample()
    with pytest.raises(ValueError, match="thresholds low and high"):
        energy_kd_loss(student, teacher, None, -1.0)
    with pytest.raises(ValueError, match="energy_kd needs its energy thresholds low and high"):
        create_objective("energy_kd")(student, teacher, target, 4.0)
    with pytest.raises(ValueError, match=r"low_rate must be in \[0, 0.5\]"):
        energy_thresholds(torch.zeros(4), low_rate=0.6)
    with pytest.raises(ValueError, match="temperatures must be"):
        energy_kd_loss(student, teacher, -1.0, 1.0, (2.0, 4.0))

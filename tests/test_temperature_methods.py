"""The other temperature methods of the literature: TTM/WTTM, NormKD, ATS, DTKD and Energy KD.

Values are worked out by hand (``math`` on plain floats, from each method's formula), never by
calling the code under test; properties cover zero loss at the method's own target, gradients
(through the student's per-sample temperatures where the method says so, never into the
teacher), the numerical extremes, and the registry entries.
"""

import math

import pytest
import torch

from kdtemp.objectives import (
    ats_loss,
    create_objective,
    dtkd_loss,
    dtkd_parts,
    dtkd_temperatures,
    energy_kd_loss,
    energy_scores,
    energy_temperatures,
    energy_thresholds,
    get_spec,
    kd_loss,
    normkd_dkd_loss,
    normkd_loss,
    normkd_temperatures,
    preset,
    ttm_loss,
    wttm_weights,
)
from kdtemp.objectives.registry import OBJECTIVES, check_parameters

from test_objectives_properties import sample  # student, teacher and target logits

ln, exp, sqrt = math.log, math.exp, math.sqrt
NEW = ["ttm", "wttm", "normkd", "normkd_dkd", "ats", "dtkd", "energy_kd"]
THRESHOLDS = {"energy_kd": {"low": -8.0, "high": -6.0}}  # the engine sets them from the training split


def softmax(z):
    m = max(z)
    e = [exp(v - m) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * ln(a / b) for a, b in zip(p, q) if a > 0)


def tensor(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def gradcheck(fn, student):
    return torch.autograd.gradcheck(fn, (student.detach().clone().requires_grad_(),), eps=1e-6, atol=1e-5)


# --- TTM / WTTM ---------------------------------------------------------------------------------------------------

def test_ttm_softens_the_teacher_only_without_t_squared():
    # teacher p = [.75, .25]; at T = 2 it is the power transform p^(1/2) / sum p^(1/2); student uniform at T = 1
    r = [sqrt(0.75), sqrt(0.25)]
    q = [v / sum(r) for v in r]
    expected = kl(q, [0.5, 0.5])
    value = ttm_loss(torch.zeros(1, 2, dtype=torch.float64), tensor([ln(0.75), ln(0.25)]), 2.0)
    assert value.item() == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.0363408, abs=1e-7)


def test_ttm_is_the_power_transform_against_an_untempered_student():
    # teacher p = [.5, .3, .2], gamma = 1/4; student logits [1, 0, -1] at T = 1
    gamma = 0.25
    powered = [p ** gamma for p in (0.5, 0.3, 0.2)]
    q = [v / sum(powered) for v in powered]
    expected = kl(q, softmax([1.0, 0.0, -1.0]))
    value = ttm_loss(tensor([1.0, 0.0, -1.0]), tensor([ln(0.5), ln(0.3), ln(0.2)]), 4.0)
    assert value.item() == pytest.approx(expected, abs=1e-12)


def test_wttm_weights_each_sample_by_the_teacher_power_sum():
    # U = sum_c p_c^(1/T): sqrt(.75) + sqrt(.25) for the first row; a uniform row of C = 4 at T = 2 gives 4^(1/2) = 2
    teacher = tensor([ln(0.75), ln(0.25), -1e9, -1e9], [0.0, 0.0, 0.0, 0.0])
    student = torch.zeros(2, 4, dtype=torch.float64)
    u = [sqrt(0.75) + sqrt(0.25), 2.0]
    assert wttm_weights(teacher, 2.0).tolist() == pytest.approx(u, abs=1e-12)
    r = [sqrt(0.75), sqrt(0.25)]
    q = [v / sum(r) for v in r] + [0.0, 0.0]
    per_sample = [kl(q, [0.25] * 4), 0.0]
    assert ttm_loss(student, teacher, 2.0, reduction="none").tolist() == pytest.approx(per_sample, abs=1e-12)
    expected = (u[0] * per_sample[0] + u[1] * per_sample[1]) / 2
    assert ttm_loss(student, teacher, 2.0, weighted=True).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("temperature", [1.5, 4.0, 20.0])
def test_wttm_weights_lie_between_one_and_c_to_the_one_minus_one_over_t(temperature):
    _, teacher, _ = sample(batch=32, classes=7, scale=4.0)
    u = wttm_weights(teacher, temperature)
    assert (u >= 1 - 1e-12).all() and (u <= 7 ** (1 - 1 / temperature) + 1e-12).all()


@pytest.mark.parametrize("weighted", [False, True])
def test_ttm_is_zero_when_the_student_equals_the_softened_teacher(weighted):
    _, teacher, _ = sample()
    assert ttm_loss(teacher / 3.0, teacher, 3.0, weighted=weighted).item() == pytest.approx(0.0, abs=1e-12)
    assert ttm_loss(teacher.clone(), teacher, 3.0, weighted=weighted).item() > 1e-3  # s = t is not TTM's target


def test_wttm_weights_carry_no_gradient():
    student, teacher, _ = sample()
    teacher.requires_grad_()
    assert not wttm_weights(teacher, 2.0).requires_grad
    weights = wttm_weights(teacher.detach(), 2.0)
    assert gradcheck(lambda s: (weights * ttm_loss(s, teacher.detach(), 2.0, reduction="none")).mean(), student)
    assert gradcheck(lambda s: ttm_loss(s, teacher.detach(), 2.0, weighted=True), student)


# --- NormKD ------------------------------------------------------------------------------------------------------

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


# --- ATS ---------------------------------------------------------------------------------------------------------

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


# --- DTKD --------------------------------------------------------------------------------------------------------

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


# --- Energy KD ---------------------------------------------------------------------------------------------------

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


# --- Level dependence: documented, not a bug ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ats", "dtkd", "energy_kd"])
def test_temperatures_that_read_the_logit_level_change_when_a_constant_is_added(name):
    student, teacher, target = sample()
    objective = create_objective(name, **THRESHOLDS.get(name, {}))
    shifted = objective(student, teacher + 2.0, target, 3.0)
    assert abs(shifted.item() - objective(student, teacher, target, 3.0).item()) > 1e-6


# --- Numerics over every new function -----------------------------------------------------------------------------

def calls(student, teacher, target, temperature):
    low, high = energy_thresholds(energy_scores(teacher.detach()), 0.25, 0.25)
    return {
        "ttm": lambda: ttm_loss(student, teacher, temperature),
        "wttm": lambda: ttm_loss(student, teacher, temperature, weighted=True),
        "normkd": lambda: normkd_loss(student, teacher, temperature),
        "normkd_dkd": lambda: normkd_dkd_loss(student, teacher, target, temperature),
        "ats": lambda: ats_loss(student, teacher, target, temperature),
        "dtkd": lambda: dtkd_loss(student, teacher, temperature),
        "energy_kd": lambda: energy_kd_loss(student, teacher, low, high,
                                            (temperature / 2, temperature, 3 * temperature / 2)),
    }


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("temperature", [0.1, 1.0, 100.0])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_finite_values_and_gradients_at_extremes(name, temperature, scale):
    student, teacher, target = sample(batch=16, classes=10, scale=scale, dtype=torch.float32, seed=3)
    student[:3] = -student[:3].abs()  # some non-positive maxima (DTKD's guard)
    teacher[3:5] = -teacher[3:5].abs()
    student.requires_grad_()
    value = calls(student, teacher, target, temperature)[name]()
    value.backward()
    assert torch.isfinite(value) and value.item() >= 0
    assert torch.isfinite(student.grad).all()


@pytest.mark.parametrize("name", NEW)
def test_a_masked_teacher_class_gives_finite_values_and_gradients(name):
    # DTKD's teacher temperature carries the student's gradient: -inf / T_t must not send NaN back
    student, teacher, target = sample(batch=8, classes=10, dtype=torch.float32, seed=1)
    teacher[:, 3] = float("-inf")
    target[target == 3] = 0
    student.requires_grad_()
    value = calls(student, teacher, target, 4.0)[name]()
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(student.grad).all()


@pytest.mark.parametrize("name", NEW)
def test_float16_inputs_are_upcast(name):
    student, teacher, target = sample(batch=8, classes=10, dtype=torch.float32)
    s16, t16 = student.half().requires_grad_(), teacher.half()
    value = calls(s16, t16, target, 4.0)[name]()
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert torch.isfinite(s16.grad.float()).all()
    reference = calls(s16.detach().float(), t16.float(), target, 4.0)[name]()
    assert value.item() == pytest.approx(reference.item(), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", NEW)
def test_gradcheck_float64_through_the_registry(name):
    student, teacher, target = sample(batch=3, classes=4, scale=1.5)
    objective = create_objective(name, **THRESHOLDS.get(name, {}))
    assert gradcheck(lambda s: objective(s, teacher, target, 2.0), student)


# --- Registry -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, official, label",
    [
        ("ttm", (1.0, 45.0, 0, 10.0), False),
        ("wttm", (1.0, 45.0, 0, 10.0), False),
        ("normkd", (0.1, 0.9, 0, 2.0), False),
        ("normkd_dkd", (1.0, 1.0, 20, 2.0), True),
        ("ats", (0.5, 0.5, 0, 2.0), True),
        ("dtkd", (1.0, 1.0, 20, 4.0), False),
        ("energy_kd", (0.1, 0.9, 0, 4.0), False),
    ],
)
def test_registry_presets_and_calls(name, official, label):
    p = preset(name, "official")
    assert (p.ce_weight, p.kd_weight, p.warmup_epochs, p.temperature) == official
    assert get_spec(name).uses_label is label
    student, teacher, target = sample()
    value = create_objective(name, **THRESHOLDS.get(name, {}))(student, teacher, target, 4.0)
    assert value.dim() == 0 and torch.isfinite(value)


def test_registry_entries_use_t_as_each_method_defines_it():
    student, teacher, target = sample()
    call = lambda name, **params: create_objective(name, **params)(student, teacher, target, 3.0).item()  # noqa: E731
    assert call("ttm") == ttm_loss(student, teacher, 3.0).item()
    assert call("wttm") == ttm_loss(student, teacher, 3.0, weighted=True).item()
    assert call("normkd") == normkd_loss(student, teacher, 3.0).item()
    assert call("normkd_dkd", alpha=2.0, beta=7.0) == normkd_dkd_loss(student, teacher, target, 3.0, 2.0, 7.0).item()
    assert call("ats") == ats_loss(student, teacher, target, 3.0, 2.0).item()
    assert call("ats", target_ratio=1.5) == ats_loss(student, teacher, target, 3.0, 1.5).item()
    # DTKD: the authors' KD term 3 * DTKD + 1 * KD at the reference T
    dtkd = 3 * dtkd_loss(student, teacher, 3.0).item() + kd_loss(student, teacher, 3.0).item()
    assert call("dtkd") == pytest.approx(dtkd, rel=1e-12)
    # Energy KD: T sets (T/2, T, 3T/2)
    energy = energy_kd_loss(student, teacher, -8.0, -6.0, (1.5, 3.0, 4.5))
    assert call("energy_kd", low=-8.0, high=-6.0) == energy.item()
    assert create_objective("energy_kd", low=-8.0, high=-6.0)(student, teacher, target, 4.0).item() == pytest.approx(
        energy_kd_loss(student, teacher, -8.0, -6.0).item(), rel=1e-12)


def test_every_registered_parameter_has_a_rule():
    for name, spec in OBJECTIVES.items():
        assert set(spec.parameters) == set(spec.defaults), name  # its own rules, one per parameter


def test_new_parameter_rules():
    assert check_parameters("ats", {"target_ratio": 0.5})["target_ratio"] == 0.5  # the authors' sweep goes below 1
    for bad in (0, -1.0, "2"):
        with pytest.raises(ValueError, match="target_ratio: must be a number > 0"):
            check_parameters("ats", {"target_ratio": bad})
    merged = check_parameters("energy_kd", {"low": -9, "high": None, "low_rate": 0.5})
    assert (merged["low"], merged["high"], merged["low_rate"], merged["high_rate"]) == (-9.0, None, 0.5, 0.2)
    with pytest.raises(ValueError, match=r"high_rate: must be a number >= 0 and <= 0.5"):
        check_parameters("energy_kd", {"high_rate": 0.6})
    with pytest.raises(ValueError, match="weighted: not a parameter of 'ttm'"):
        check_parameters("ttm", {"weighted": True})
    with pytest.raises(ValueError, match=r"objective 'energy_kd': high_rate: must be a number >= 0 and <= 0.5"):
        create_objective("energy_kd", low=-8.0, high=-6.0, high_rate=0.6)  # create_objective checks values too
    assert set(get_spec("dtkd").defaults) == {"alpha", "beta"}
    assert get_spec("dtkd").defaults == {"alpha": 3.0, "beta": 1.0}

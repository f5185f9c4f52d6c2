"""Teacher-signal ablations (``kdtemp.signals``): label smoothing, the shuffled tail, targets."""

import math

import pytest
import torch

from kdtemp.objectives import kd_loss
from kdtemp.signals import (
    average_sorted_distribution,
    distill_to_targets,
    global_label_smoothing,
    global_smoothing_coefficient,
    instance_label_smoothing,
    shuffled_tail,
    smoothed_targets,
    smoothing_entropy,
)

from helpers.logits import teacher_logits


def entropy(p):
    p = p.double()
    return -torch.special.xlogy(p, p).sum(dim=-1)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
def test_instance_label_smoothing_matches_entropy(temperature):
    teacher = teacher_logits()
    q = instance_label_smoothing(teacher, temperature)
    target = entropy(torch.softmax(teacher.double() / temperature, dim=1))
    assert torch.allclose(entropy(q), target, atol=1e-5)
    assert torch.equal(q.argmax(dim=1), teacher.argmax(dim=1))
    # all non-top classes share one value
    others = q.sort(dim=1, descending=True).values[:, 1:]
    assert torch.allclose(others, others[:, :1].expand_as(others))
    assert torch.allclose(q.sum(dim=1), torch.ones(32))


def test_smoothing_entropy_endpoints():
    assert smoothing_entropy(torch.tensor(0.0, dtype=torch.float64), 10).item() == 0.0
    assert smoothing_entropy(torch.tensor(1.0, dtype=torch.float64), 10).item() == pytest.approx(math.log(10))


@pytest.mark.parametrize("temperature", [1.0, 5.0])
def test_global_label_smoothing_matches_average_sorted_entropy(temperature):
    teacher = teacher_logits(batch=200)
    alpha = global_smoothing_coefficient(teacher, temperature)
    q = global_label_smoothing(teacher, alpha)
    profile_entropy = entropy(average_sorted_distribution(teacher, temperature))
    assert entropy(q[0]).item() == pytest.approx(profile_entropy.item(), abs=1e-5)
    assert torch.allclose(entropy(q), entropy(q[0]).expand(200))  # one coefficient for all


@pytest.mark.parametrize("keep_top", [0, 1, 3, 5])
def test_shuffled_tail_keeps_top_k_and_permutes_the_rest(keep_top):
    teacher = teacher_logits()
    probs = torch.softmax(teacher / 2.0, dim=1)
    out = shuffled_tail(teacher, 2.0, keep_top, generator=torch.Generator().manual_seed(1))
    top = probs.argsort(dim=1, descending=True)[:, :keep_top]
    assert torch.equal(out.gather(1, top), probs.gather(1, top))
    assert torch.equal(out.sort(dim=1).values, probs.sort(dim=1).values)  # same multiset per row
    assert not torch.equal(out, probs)  # the tail really moved


def test_shuffled_tail_with_k_equal_c_is_the_teacher():
    teacher = teacher_logits()
    out = shuffled_tail(teacher, 3.0, keep_top=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, torch.softmax(teacher / 3.0, dim=1))


def test_shuffled_tail_is_seeded():
    teacher = teacher_logits()
    a = shuffled_tail(teacher, 3.0, 2, generator=torch.Generator().manual_seed(5))
    b = shuffled_tail(teacher, 3.0, 2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_distill_to_teacher_targets_equals_kd():
    teacher, student = teacher_logits(seed=1), teacher_logits(seed=2)
    targets = torch.softmax(teacher / 3.0, dim=1)
    assert distill_to_targets(student, targets, 3.0).item() == pytest.approx(kd_loss(student, teacher, 3.0).item(), rel=1e-5)


def test_a_float_smoothing_coefficient_gives_the_targets_a_tensor_gives():
    top = torch.tensor([0, 3, 2, 2])
    as_float = smoothed_targets(top, 0.3, 5)
    assert torch.equal(as_float, smoothed_targets(top, torch.full((4,), 0.3, dtype=torch.float64), 5))
    assert torch.allclose(as_float.sum(dim=1), torch.ones(4))
    assert as_float[0, 0].item() == pytest.approx(0.7 + 0.3 / 5)

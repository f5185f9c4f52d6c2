"""The two teacher-cache designs (``kdtemp.objectives.teacher_cache``): with k = V the top-k + tail cache is
the live teacher to float32 rounding; below, at T = 1 (where its normaliser is exact) its divergence is a
lower bound of the full one, its normaliser interval holds the truth at every T, hand-derived values,
float64 gradcheck, finite at extreme T and logits; sampled ids are unbiased at their sampling T; bad input
is one line."""

import math

import pytest
import torch

from kdtemp.objectives.teacher_cache import (Sampled, cached_divergence, sampled, sampled_divergence, top_k_tail)
from kdtemp.objectives.token import DIVERGENCES, token_divergence


def _pair(rows: int = 12, vocab: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaked teacher rows (a Zipf-like slope plus noise, shuffled) and a student near them."""
    g = torch.Generator().manual_seed(seed)
    slope = -torch.log1p(torch.arange(vocab, dtype=torch.float32)) * 2.0
    teacher = torch.stack([slope[torch.randperm(vocab, generator=g)] for _ in range(rows)])
    teacher = teacher + torch.randn(rows, vocab, generator=g)
    return teacher + 0.7 * torch.randn(rows, vocab, generator=g), teacher


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 8.0])
def test_with_k_equal_to_the_vocabulary_the_cache_is_the_live_teacher(divergence, T):
    student, teacher = _pair()
    cached = top_k_tail(teacher, teacher.shape[1])
    assert not cached.has_tail
    live_s = student.clone().requires_grad_(True)
    cache_s = student.clone().requires_grad_(True)
    live = token_divergence(live_s, teacher, T, divergence)
    value = cached_divergence(cache_s, cached, T, divergence)
    torch.testing.assert_close(value, live, rtol=1e-5, atol=1e-6)
    live.sum().backward()
    value.sum().backward()
    torch.testing.assert_close(cache_s.grad, live_s.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("k", [1, 8, 64])
def test_merging_the_tail_never_raises_a_divergence_where_the_normaliser_is_exact(divergence, k):
    """T = 1: the tail's log-sum is stored, so only the merge of the tail into one bin differs (data processing)."""
    student, teacher = _pair(seed=1)
    cached = top_k_tail(teacher, k)
    live = token_divergence(student, teacher, 1.0, divergence)
    value = cached_divergence(student, cached, 1.0, divergence)
    assert bool((value <= live + 1e-6).all())
    assert bool((value >= -1e-7).all())


@pytest.mark.parametrize("T", [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 40.0])
def test_the_normaliser_interval_holds_the_truth_at_any_temperature(T):
    _, teacher = _pair(rows=20, vocab=2000, seed=2)
    for bins, width in ((16, 1.0), (4, 0.5), (1, 1.0)):
        cached = top_k_tail(teacher, 16, bins=bins, width=width)
        estimate, low, high = cached.normaliser(T)
        truth = torch.logsumexp(teacher.double() / T, dim=1).float()
        assert bool(((low <= truth + 1e-5) & (truth <= high + 1e-5)).all())
        assert bool(((low <= estimate + 1e-5) & (estimate <= high + 1e-5)).all())
        if T == 1.0:
            torch.testing.assert_close(estimate, truth, rtol=0, atol=1e-5)


def test_the_tail_bins_count_and_sum_the_tail():
    _, teacher = _pair(rows=5, vocab=500, seed=3)
    cached = top_k_tail(teacher, 20, bins=6, width=0.75)
    assert cached.counts.sum(dim=1).tolist() == [480] * 5
    tail = teacher.scatter(1, cached.ids, -math.inf)
    torch.testing.assert_close(torch.logsumexp(cached.log_sums, dim=1), torch.logsumexp(tail, dim=1))
    torch.testing.assert_close(cached.floor, tail.masked_fill(tail == -math.inf, math.inf).amin(dim=1))


def test_a_hand_derived_forward_kl_over_the_top_two_and_the_tail():
    """Teacher logits (3, 1, 0, -1), k = 2, a uniform student, T = 1: categories {0}, {1}, {2, 3}."""
    e = [math.exp(3), math.exp(1), math.exp(0), math.exp(-1)]
    Z = sum(e)
    p = [e[0] / Z, e[1] / Z, (e[2] + e[3]) / Z]
    q = [0.25, 0.25, 0.5]
    expected = sum(a * math.log(a / b) for a, b in zip(p, q))
    cached = top_k_tail(torch.tensor([[3.0, 1.0, 0.0, -1.0]]), 2)
    assert cached.ids.tolist() == [[0, 1]]
    value = cached_divergence(torch.zeros(1, 4), cached, 1.0, "forward_kl")
    assert value.item() == pytest.approx(expected, rel=1e-6)
    # at T = 2 the tail's bins estimate exp(0/2) + exp(-1/2) from their log-sums: one bin each at width 1, exact
    p2 = [math.exp(v / 2) for v in (3, 1, 0, -1)]
    Z2 = sum(p2)
    expected2 = sum(a * math.log(a / b) for a, b in zip([p2[0] / Z2, p2[1] / Z2, (p2[2] + p2[3]) / Z2], q))
    assert cached_divergence(torch.zeros(1, 4), cached, 2.0, "forward_kl").item() == pytest.approx(expected2, rel=1e-6)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_float64_gradcheck(divergence):
    student, teacher = _pair(rows=3, vocab=40, seed=4)
    cached = top_k_tail(teacher.double(), 5, bins=4)
    s = student.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: cached_divergence(x, cached, 2.5, divergence), (s,))


@pytest.mark.parametrize("T", [0.05, 100.0])
def test_finite_at_extreme_temperatures_and_logits(T):
    student, teacher = _pair(rows=4, vocab=100, seed=5)
    for scale in (1.0, 1e4):
        cached = top_k_tail(teacher * scale, 8)
        s = (student * scale).requires_grad_(True)
        for divergence in DIVERGENCES:
            value = cached_divergence(s, cached, T, divergence)
            value.sum().backward()
            assert bool(torch.isfinite(value).all()) and bool(torch.isfinite(s.grad).all()), (divergence, scale)
            s.grad = None


def test_sampled_ids_are_unbiased_at_their_temperature():
    student, teacher = _pair(rows=2, vocab=12, seed=6)
    g = torch.Generator().manual_seed(0)
    draws = [sampled(teacher, 16, generator=g) for _ in range(3000)]
    target = torch.stack([torch.zeros_like(teacher).scatter_add_(1, d.ids, d.weights(1.0)) for d in draws]).mean(0)
    torch.testing.assert_close(target, torch.softmax(teacher, 1), rtol=0, atol=0.01)
    gradients = []
    for d in draws[:500]:
        s = student.clone().requires_grad_(True)
        sampled_divergence(s, d, 1.0).sum().backward()
        gradients.append(s.grad)
    s = student.clone().requires_grad_(True)
    token_divergence(s, teacher, 1.0).sum().backward()
    torch.testing.assert_close(torch.stack(gradients).mean(0), s.grad, rtol=0, atol=0.02)


def test_bad_input_is_one_line():
    student, teacher = _pair(rows=2, vocab=50)
    with pytest.raises(ValueError, match=r"^k: 60 is not a count of logits the vocabulary of 50 holds; allowed: 1 to 50$"):
        top_k_tail(teacher, 60)
    with pytest.raises(ValueError, match=r"^k: 0 "):
        sampled(teacher, 0)
    with pytest.raises(ValueError, match=r"^student logits have 51 columns; the cache holds a vocabulary of 50: a cache of another tokenizer$"):
        cached_divergence(torch.zeros(2, 51), top_k_tail(teacher, 5), 1.0)
    with pytest.raises(ValueError, match=r"^divergence: 'reverse_kl' needs the teacher where the student puts mass"):
        sampled_divergence(student, sampled(teacher, 5), 1.0, "reverse_kl")
    assert isinstance(sampled(teacher, 5), Sampled)

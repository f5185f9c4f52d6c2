"""Teacher diagnostics (``kdtemp.diagnostics``): relative entropies, sorted profiles, the one entropy."""

import math

import pytest
import torch

from kdtemp.diagnostics import relative_entropy, relative_entropy_without_top, sorted_profile, teacher_entropies

from helpers.logits import teacher_logits


def test_relative_entropies_hand_values():
    p = torch.tensor([[0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]])
    h = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)) / math.log(3)
    assert relative_entropy(p).tolist() == pytest.approx([h, 1.0, 0.0], abs=1e-6)
    # without the top: [.6, .4] -> H / log 2; uniform tail -> exactly 1
    h_bar = -(0.6 * math.log(0.6) + 0.4 * math.log(0.4)) / math.log(2)
    assert relative_entropy_without_top(p).tolist() == pytest.approx([h_bar, 1.0, 1.0], abs=1e-6)


def test_sorted_profile_hand_values():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]))
    assert sorted_profile(logits, 1.0, top_k=2).tolist() == pytest.approx([0.55, 0.3], abs=1e-6)
    flat = sorted_profile(logits, 1e6, top_k=None)
    assert flat.tolist() == pytest.approx([1 / 3] * 3, abs=1e-5)


def test_teacher_entropies_are_dataset_means():
    logits = teacher_logits(batch=50)
    p = torch.softmax(logits, dim=1)
    values = teacher_entropies(logits)
    assert values["relative_entropy"] == pytest.approx(relative_entropy(p).mean().item(), abs=1e-6)
    assert values["relative_entropy_without_top"] == pytest.approx(relative_entropy_without_top(p).mean().item(), abs=1e-6)


def test_teacher_entropies_tail_is_exact_when_probabilities_underflow():
    logits = torch.tensor([[1000.0, 1.0, 2.0, 3.0]])
    tail = torch.softmax(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), dim=0)
    expected = (-(tail * tail.log()).sum() / math.log(3)).item()
    assert teacher_entropies(logits)["relative_entropy_without_top"] == pytest.approx(expected, abs=1e-9)
    assert teacher_entropies(logits)["relative_entropy"] == pytest.approx(0.0, abs=1e-12)


# --- The one entropy definition ------------------------------------------------------------------------------------

def test_shannon_entropy_hand_values_from_probabilities_and_log_probabilities():
    from kdtemp.diagnostics import shannon_entropy

    p = torch.tensor([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]], dtype=torch.float64)
    expected = [math.log(4), 0.0, math.log(2)]
    assert shannon_entropy(p).tolist() == pytest.approx(expected, abs=1e-12)
    assert shannon_entropy(log_probs=p.log()).tolist() == pytest.approx(expected, abs=1e-12)  # log 0 = -inf adds 0
    assert shannon_entropy(p[0]).item() == pytest.approx(math.log(4), abs=1e-12)  # one distribution [C] -> []
    for bad in ({}, {"probs": p, "log_probs": p.log()}):
        with pytest.raises(ValueError, match="exactly one of probs and log_probs"):
            shannon_entropy(**bad)


def test_shannon_entropy_of_a_masked_class_has_a_finite_gradient():
    from kdtemp.diagnostics import shannon_entropy

    logits = torch.tensor([[1.0, 2.0, float("-inf")]], dtype=torch.float64, requires_grad=True)
    value = shannon_entropy(log_probs=torch.log_softmax(logits, dim=-1))
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(logits.grad).all() and logits.grad[0, 2] == 0


def test_every_entropy_is_the_shared_definition_bit_for_bit():
    # the formulas each caller used before the definition was shared; the values must not move by one bit
    from kdtemp.diagnostics import shannon_entropy
    from kdtemp.objectives import entropy as logits_entropy

    logits = teacher_logits(batch=64, classes=37, seed=3)
    logits[:, 5] = float("-inf")
    for temperature in (0.3, 1.0, 4.0, 40.0):
        p = torch.softmax(logits.double() / temperature, dim=1)
        assert torch.equal(relative_entropy(p), -torch.special.xlogy(p, p).sum(dim=-1) / math.log(37))
        log_p = torch.log_softmax(logits / temperature, dim=1)
        q = log_p.exp()
        by_hand = -torch.where(q > 0, q * torch.where(q > 0, log_p, torch.zeros_like(log_p)), torch.zeros_like(q)).sum(-1)
        assert torch.equal(logits_entropy(logits, temperature), by_hand)
        profile = sorted_profile(logits, temperature, top_k=None)  # the engine's profile entropy
        assert torch.equal(shannon_entropy(profile), -torch.special.xlogy(profile, profile).sum())

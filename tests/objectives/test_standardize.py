"""Logit standardization and LS-KD (``kdtemp.objectives.standardize``): values and gradients."""

import math

import pytest
import torch

from kdtemp.objectives import create_objective, kd_loss, standardize_logits


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


def test_constant_rows_standardize_without_nan_gradient():
    student = torch.ones(2, 4, requires_grad=True)
    create_objective("ls_kd")(student, torch.randn(2, 4), torch.zeros(2, dtype=torch.long), 2.0).backward()
    assert torch.isfinite(student.grad).all()


def test_standardize_constant_row_gradient_is_the_documented_one():
    z = torch.full((1, 5), 2.0, dtype=torch.float64, requires_grad=True)
    upstream = torch.arange(5, dtype=torch.float64).view(1, 5)
    (standardize_logits(z) * upstream).sum().backward()
    expected = (upstream - upstream.mean()) / 1e-7
    assert torch.allclose(z.grad, expected, rtol=1e-9)
    assert math.isfinite(z.grad.abs().max().item())

"""Logits for the maths tests (objectives, temperature methods, signals, diagnostics), and the
plain-float hand computations their expected values are worked out with."""

import math

import torch

ln, exp = math.log, math.exp


def sample(batch=6, classes=5, scale=3.0, dtype=torch.float64, seed=0):
    """Student, teacher and target logits."""
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, classes, generator=g, dtype=dtype) * scale
    teacher = torch.randn(batch, classes, generator=g, dtype=dtype) * scale
    target = torch.randint(0, classes, (batch,), generator=g)
    return student, teacher, target


def logits_of(*probs):
    """Logits whose softmax at T = 1 is ``probs``."""
    return torch.tensor([[ln(p) for p in row] for row in probs], dtype=torch.float64)


def teacher_logits(batch=32, classes=10, seed=0, scale=4.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, classes, generator=g) * scale


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

"""GLUE's metrics from predictions, in percent: accuracy, F1 of the positive class (label 1, for
MRPC and QQP) and Matthews' correlation coefficient (for CoLA, times 100 as GLUE reports it).

They follow scikit-learn's ``accuracy_score``, ``f1_score`` (binary, ``pos_label=1``, 0 where
precision and recall are undefined) and ``matthews_corrcoef`` (its multi-class form; 0 where the
denominator is 0), computed from integer counts on the device; the tests compare them with
scikit-learn itself.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .glue import ACCURACY, F1, MCC


def accuracy(predicted: Tensor, labels: Tensor) -> Tensor:
    return (predicted == labels).double().mean() * 100


def f1(predicted: Tensor, labels: Tensor, positive: int = 1) -> Tensor:
    tp = ((predicted == positive) & (labels == positive)).sum().double()
    fp = ((predicted == positive) & (labels != positive)).sum().double()
    fn = ((predicted != positive) & (labels == positive)).sum().double()
    denominator = 2 * tp + fp + fn
    return torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.zeros((), dtype=torch.float64)) * 100


def mcc(predicted: Tensor, labels: Tensor, classes: int) -> Tensor:
    confusion = torch.zeros(classes, classes, dtype=torch.float64, device=labels.device)
    confusion.index_put_((labels, predicted), torch.ones_like(labels, dtype=torch.float64), accumulate=True)
    t, p = confusion.sum(1), confusion.sum(0)
    correct, samples = confusion.trace(), confusion.sum()
    numerator = correct * samples - (t * p).sum()
    denominator = torch.sqrt((samples ** 2 - (p * p).sum()) * (samples ** 2 - (t * t).sum()))
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1e-300), torch.zeros_like(numerator)) * 100


def scores(logits: Tensor, labels: Tensor, metrics: tuple[str, ...], suffix: str = "") -> dict[str, Tensor]:
    """``metrics`` of ``logits`` against ``labels`` and the mean cross-entropy (``loss``), each name
    with ``suffix`` (MNLI's mismatched split: ``_mm``)."""
    predicted = logits.argmax(dim=1)
    out = {"loss": torch.nn.functional.cross_entropy(logits.float(), labels)}
    for name in metrics:
        if name == ACCURACY:
            out[name] = accuracy(predicted, labels)
        elif name == F1:
            out[name] = f1(predicted, labels)
        elif name == MCC:
            out[name] = mcc(predicted, labels, logits.shape[1])
    return {f"{name}{suffix}": value for name, value in out.items()}

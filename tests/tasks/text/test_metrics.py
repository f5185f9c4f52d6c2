"""GLUE's metrics (``kdtemp.tasks.text.metrics``) equal scikit-learn's on fixed predictions."""

import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from kdtemp.tasks.text.metrics import accuracy, f1, mcc, scores

CASES = [
    ([1, 0, 1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 0, 1, 1, 1]),
    ([0, 0, 0, 0], [0, 0, 0, 0]),  # no positive at all: F1 and MCC are 0 (scikit-learn's zero division)
    ([1, 1, 1, 1, 1], [1, 0, 1, 0, 1]),  # one predicted class: MCC's denominator is 0
    ([1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1]),  # every prediction wrong: MCC -1
]


@pytest.mark.filterwarnings("ignore:A single label was found")  # scikit-learn, on the all-zero case
@pytest.mark.parametrize("predicted, labels", CASES)
def test_binary_metrics_equal_scikit_learn(predicted, labels):
    p, y = torch.tensor(predicted), torch.tensor(labels)
    assert float(accuracy(p, y)) == pytest.approx(100 * accuracy_score(labels, predicted), abs=1e-12)
    assert float(f1(p, y)) == pytest.approx(100 * f1_score(labels, predicted, zero_division=0), abs=1e-12)
    assert float(mcc(p, y, 2)) == pytest.approx(100 * matthews_corrcoef(labels, predicted), abs=1e-12)


def test_multiclass_mcc_equals_scikit_learn():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (200,), generator=generator)
    predicted = torch.where(torch.rand(200, generator=generator) < 0.6, labels, torch.randint(0, 3, (200,), generator=generator))
    assert float(mcc(predicted, labels, 3)) == pytest.approx(100 * matthews_corrcoef(labels.numpy(), predicted.numpy()),
                                                             abs=1e-10)


def test_scores_take_the_argmax_and_name_the_mismatched_split():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0], [0.5, 0.4]])
    labels = torch.tensor([0, 1, 1, 0])
    out = scores(logits, labels, ("f1", "accuracy"), "_mm")
    assert set(out) == {"loss_mm", "f1_mm", "accuracy_mm"}
    assert float(out["accuracy_mm"]) == 75.0 and float(out["f1_mm"]) == pytest.approx(100 * 2 / 3)
    assert float(out["loss_mm"]) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)))

"""Evaluation (``kdtemp.tasks.image.evaluate``): accuracies come from integer counts of hits, so
the same count gives the same number (float32 gave 19.500000476837158 for 39 of 200)."""

import torch

from kdtemp.tasks.image.evaluate import accuracy


def test_accuracy_is_the_exact_share_of_hits():
    labels = torch.zeros(200, dtype=torch.long)
    logits = torch.zeros(200, 3)
    logits[:39, 0] = 1.0  # 39 hits of 200
    logits[39:, 1] = 1.0
    scores = accuracy(logits, labels)
    assert scores["top1"].item() == 19.5  # float32 gave 19.500000476837158
    assert scores["top5"].item() == 100.0  # top-3 of 3 classes
    logits = torch.zeros(100, 3)
    logits[:, 1] = 1.0
    logits[:15, 0] = 2.0  # 15 hits of 100: float32 gave 15.000000953674316
    assert accuracy(logits, torch.zeros(100, dtype=torch.long))["top1"].item() == 15.0

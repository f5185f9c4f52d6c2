"""Teacher preparation (``kdtemp.engine.teacher``): a prepared teacher records the normalisation it
was trained with, and is evaluated with it when it teaches."""

import pytest
import torch

from kdtemp.config import from_dict
from kdtemp.engine import DistillConfig, TeacherConfig, prepare_teacher, run_cohort
from kdtemp.tasks.image.models import ModelConfig

from helpers.engine import tiny_augment, tiny_data


def test_a_teacher_checkpoint_is_evaluated_with_the_normalisation_it_was_trained_with(tmp_path):
    unusual = ModelConfig("resnet20", mean=[0.9, 0.1, 0.5], std=[0.05, 0.5, 0.1])
    prepared = TeacherConfig(data=tiny_data(), augment=tiny_augment(), model=unusual, epochs=2, batch_size=32,
                             device="cpu", output=str(tmp_path / "teacher"))
    path, result = prepare_teacher(prepared, progress=False)
    meta = torch.load(path, weights_only=True)["kdtemp"]
    assert meta["normalization"] == {"mean": [0.9, 0.1, 0.5], "std": [0.05, 0.5, 0.1]}
    distill = from_dict(DistillConfig, {"data": {"dataset": "digits", "resolution": 8, "train_per_class": 16,
                                                 "test_per_class": 10},
                                        "teacher": {"name": "resnet20", "init": "checkpoint", "weights": str(path)},
                                        "student": {"epochs": 1}, "batch_size": 32, "device": "cpu"})
    (run,) = run_cohort(distill.cohort(), output=tmp_path / "runs", progress=False)
    assert run.teacher["top1"] == pytest.approx(result.final_primary, abs=1e-4)  # not re-normalised with ImageNet's

"""A validation split held out of the training data (``data.validation``): the same samples for every
run, never trained on, evaluated each epoch as ``val_<metric>`` (stored on the split ``validation``);
leaving it out changes no run id; a split that leaves nothing to train on is one line."""

import dataclasses

import numpy as np
import pytest
import torch

from kdtemp.config import ConfigError
from kdtemp.engine import run_cohort, run_id
from kdtemp.engine.results import long_form
from kdtemp.tasks.image.data import DataConfig
from kdtemp.tasks.text.data import TextSplit
from kdtemp.tasks.validation import carve, validation_count

from helpers.engine import cohort, member, tiny_data


def test_the_split_is_a_fixed_draw_disjoint_from_training():
    kept, held = carve(100, 0.2)
    assert len(held) == 20 and len(kept) == 80 and not set(kept) & set(held)
    assert sorted(np.concatenate([kept, held])) == list(range(100))
    again_kept, again_held = carve(100, 0.2)
    assert (held == again_held).all() and (kept == again_kept).all()  # every run holds out the same samples
    assert len(carve(100, 7)[1]) == 7 and validation_count(0.001, 100) == 1


def test_a_split_that_leaves_nothing_to_train_on_is_one_line():
    with pytest.raises(ConfigError, match=r"^data.validation: holds out 100 of the training split's 100 samples"):
        carve(100, 100)
    with pytest.raises(ConfigError, match=r"^data.validation: must be a fraction in \(0, 1\)"):
        DataConfig(dataset="digits", validation=1.0).validate()


def test_leaving_it_out_changes_no_run_id():
    plain = cohort([member()])
    assert "validation" not in plain.key()["data"]
    held = dataclasses.replace(plain, data=dataclasses.replace(tiny_data(), validation=0.25))
    assert held.key()["data"]["validation"] == 0.25 and run_id(held, held.members[0]) != run_id(plain, plain.members[0])


def test_validation_metrics_are_recorded_each_epoch_and_training_never_sees_them():
    config = cohort([member(epochs=2, temperature=4.0)], data=dataclasses.replace(tiny_data(), validation=0.25))
    seen = []
    from kdtemp.tasks.image.task import ImageClassification

    open_data = ImageClassification.open

    def spy(self, shared, runtime, progress=False):
        data = open_data(self, shared, runtime, progress)
        seen.append(data)
        return data

    ImageClassification.open = spy
    try:
        [result] = run_cohort(config)
    finally:
        ImageClassification.open = open_data
    data = seen[0]
    assert len(data.train) + len(data.validation) == 160 and len(data.validation) == 40
    train_rows = {tuple(x.flatten().tolist()) for x in data.train.images}
    assert not any(tuple(x.flatten().tolist()) in train_rows for x in data.validation.images)
    assert [sorted(k for k in row if k.startswith("val_")) for row in result.curve] == [["val_loss", "val_top1", "val_top5"]] * 2
    splits = {(split, metric) for _, split, metric, _ in long_form(result.curve)}
    assert ("validation", "top1") in splits and ("validation", "loss") in splits and ("test", "top1") in splits


def test_a_text_split_s_subset_is_gathered_exactly():
    ids = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9])
    offsets = torch.tensor([0, 2, 3, 7, 9])
    split = TextSplit(ids, offsets, ids * 10, torch.tensor([0, 1, 0, 1]), ["a", "b"], 0)
    picked = split.subset(torch.tensor([2, 0]))
    assert picked.ids.tolist() == [4, 5, 6, 7, 1, 2] and picked.offsets.tolist() == [0, 4, 6]
    assert picked.type_ids.tolist() == [40, 50, 60, 70, 10, 20] and picked.labels.tolist() == [0, 0]


def test_preflight_refuses_a_split_larger_than_the_data_before_any_work(tmp_path):
    from kdtemp.tasks import get_task

    config = cohort([member()], data=dataclasses.replace(tiny_data(), validation=500))
    with pytest.raises(ConfigError, match=r"^data.validation: holds out 500 of the training split's 160 samples"):
        get_task(config.task).preflight([(config, config.members)], device="cpu")


def test_a_split_too_small_to_rank_temperatures_is_warned_once(capsys):
    """100 samples give a top-1 standard error of up to 5 points (2026-12-04's CIFAR-10 bench chose T on
    such a split and missed by 1.4 points); preflight says so once, however many cohorts share the data."""
    from kdtemp.tasks import get_task
    from kdtemp.tasks.validation import noise_note

    assert noise_note(100) == ("data.validation: 100 samples; a top-1 accuracy measured on them has a standard error "
                               "of up to 5.0 points, so temperatures closer than that cannot be told apart on it "
                               "(kdtemp tune ranks by it); 500 or more are advised")
    assert noise_note(500) is None
    config = cohort([member()], data=dataclasses.replace(tiny_data(), validation=40))
    get_task(config.task).preflight([(config, config.members)] * 2, device="cpu")
    lines = [line for line in capsys.readouterr().err.splitlines() if "data.validation" in line]
    assert lines == ["kdtemp: warning: data.validation: 40 samples; a top-1 accuracy measured on them has a standard "
                     "error of up to 7.9 points, so temperatures closer than that cannot be told apart on it (kdtemp "
                     "tune ranks by it); 500 or more are advised"]

"""Fused students (``fuse: true``, :mod:`kdtemp.engine.fused`): members of one architecture train as
one stacked model and agree with unfused training to float32 rounding; members that cannot fuse
train unfused beside them, unchanged; a fused cohort resumes unfused and back."""

import pytest
import torch

from kdtemp.config import from_dict
from kdtemp.engine import CohortConfig, run_cohort
from kdtemp.engine.storage import RunFolder


def _member(**fields):
    return {"model": {"name": "resnet20"}, "epochs": 1, **fields}


MIXED = [_member(temperature=2.0, optimizer={"lr": 1e-3}),
         _member(temperature=6.0, optimizer={"lr": 3e-3}, seed=1),
         _member(temperature_policy="dts", dts={"initial": 3, "minimum": 1, "maximum": 3}, optimizer={"lr": 2e-3}, seed=2),
         _member(objective="ctkd", temperature_policy="ctkd", optimizer={"lr": 2e-3}, seed=3)]


def _config(members, **fields):
    # 50 training images in batches of 16: three optimizer steps per epoch
    return from_dict(CohortConfig, {"data": {"dataset": "digits", "resolution": 8, "train_per_class": 5,
                                             "test_per_class": 4},
                                    "teacher": {"name": "resnet20"}, "batch_size": 16, "device": "cpu",
                                    "members": members, **fields})


def _weights(folder, results):
    return [RunFolder(folder, r.run_id).load_checkpoint()["model"] for r in results]


def _largest_difference(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_fused_members_equal_unfused_ones_after_three_steps(tmp_path):
    plain = run_cohort(_config(MIXED), output=tmp_path / "plain", progress=False)
    fused = run_cohort(_config(MIXED, fuse=True), output=tmp_path / "fused", progress=False)
    assert all(r.derived.get("fused") for r in fused) and not any("fused" in r.derived for r in plain)
    assert [r.run_id for r in plain] == [r.run_id for r in fused]  # fusing is how, not what: the same runs
    for a, b in zip(_weights(tmp_path / "plain", plain), _weights(tmp_path / "fused", fused)):
        assert _largest_difference(a, b) <= 1e-5
    dts_plain, dts_fused = plain[2].temperature_trace, fused[2].temperature_trace
    # DTS's T is 1 + a bounded function of the loss gap, which stacked and unstacked kernels compute in
    # another order: within the training's own float32 rounding, as the weights above
    assert len(dts_plain) == 3 and dts_fused == pytest.approx(dts_plain, rel=1e-5)
    assert fused[3].curve[-1]["temperature"] == pytest.approx(plain[3].curve[-1]["temperature"], rel=1e-4)  # CTKD's T
    assert len({str(r.curve) for r in fused}) == len(MIXED)


def test_members_that_cannot_fuse_train_unfused_beside_them(tmp_path):
    other = _member(model={"name": "resnet8x4"}, temperature=4.0, seed=5)
    akd = _member(objective="akd", temperature_policy="akd", epochs=3, objective_params={"phase1_epochs": 2,
                                                                                      "max_level": 2}, seed=6)
    members = MIXED[:2] + [other, akd]
    fused = run_cohort(_config(members, fuse=True), output=tmp_path / "fused", progress=False)
    assert [bool(r.derived.get("fused")) for r in fused] == [True, True, False, False]
    for index in (2, 3):  # unfused members are exactly the runs they are alone
        (alone,) = run_cohort(_config([members[index]]), output=tmp_path / f"alone{index}", progress=False)
        assert alone.curve == fused[index].curve
        assert all(torch.equal(a, b) for a, b in zip(_weights(tmp_path / f"alone{index}", [alone])[0].values(),
                                                      _weights(tmp_path / "fused", [fused[index]])[0].values()))


class _Stop(Exception):
    pass


def _stop_in_epoch_two(epoch, step):
    if epoch == 2:
        raise _Stop


@pytest.mark.parametrize("first,then", [(True, False), (False, True)])
def test_a_fused_cohort_resumes_unfused_and_back(tmp_path, first, then):
    members = [dict(m, epochs=2) for m in MIXED]
    reference = run_cohort(_config(members), output=tmp_path / "reference", progress=False)
    with pytest.raises(_Stop):
        run_cohort(_config(members, fuse=first), output=tmp_path / "run", progress=False, step_callback=_stop_in_epoch_two)
    resumed = run_cohort(_config(members, fuse=then), output=tmp_path / "run", progress=False)
    assert all(r.status == "done" and r.epochs_done == 2 for r in resumed)
    for a, b in zip(_weights(tmp_path / "reference", reference), _weights(tmp_path / "run", resumed)):
        assert _largest_difference(a, b) <= 1e-4  # six steps, two of them fused: float32 rounding only


def test_a_study_with_executor_fuse_trains_its_members_fused(tmp_path):
    import json

    from kdtemp.study import load_study, run_study

    from helpers.trust import write_yaml

    path = write_yaml(tmp_path / "study.yaml", {
        "name": "fused", "base": {"data": {"dataset": "digits", "resolution": 8, "train_per_class": 5,
                                           "test_per_class": 4},
                                  "teacher": {"name": "resnet20"}, "batch_size": 16,
                                  "student": {"model": {"name": "resnet20"}, "epochs": 1}},
        "grid": {"student.temperature": [1, 4, 8]}, "executor": {"kind": "inline", "fuse": True}})
    study = load_study(path, output=tmp_path / "out")
    assert run_study(study, progress=False)["done"] == 3
    for run in study.runs:  # each run's folder says how it trained
        assert json.loads((study.output / "runs" / run.run_id / "metrics.json").read_text())["derived"]["fused"]

"""The cohort engine (``kdtemp.engine.cohort``): equivalence with solo runs, resume, failures,
each model's own input normalisation, and a planted resume checkpoint that is never unpickled."""

import json

import pytest
import torch

from kdtemp.engine import CohortConfig, run_cohort
from kdtemp.engine.storage import RunFolder
from kdtemp.tasks.image.data import TrainStream
from kdtemp.tasks.image.data.augment import normalize_float
from kdtemp.tasks.image.models import IMAGENET_NORMALIZATION, ModelConfig

from helpers.engine import cohort, member, varied_members
from helpers.trust import plant


def final_weights(output, result):
    return RunFolder(output, result.run_id).load_checkpoint()["model"]


def assert_same_run(a, b, weights_a, weights_b):
    assert a.run_id == b.run_id
    assert a.status == b.status == "done"
    assert a.curve == b.curve  # every epoch's losses, accuracies, temperature and lr, exactly
    assert a.temperature_trace == b.temperature_trace
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key


def test_cohort_member_equals_the_same_run_trained_alone(tmp_path):
    members = varied_members()
    together = run_cohort(cohort(members), output=tmp_path / "cohort", progress=False)
    assert [r.epochs_done for r in together] == [2, 2, 2, 2, 1]
    for index, config in enumerate(members):
        (alone,) = run_cohort(cohort([config]), output=tmp_path / f"solo{index}", progress=False)
        assert_same_run(together[index], alone,
                        final_weights(tmp_path / "cohort", together[index]), final_weights(tmp_path / f"solo{index}", alone))
    # the members really differ (otherwise equality would prove little)
    assert len({json.dumps(r.curve) for r in together}) == len(members)


def test_dts_member_records_the_temperature_before_each_update(tmp_path):
    (result,) = run_cohort(cohort([varied_members()[2]]), output=tmp_path, progress=False)
    trace = result.temperature_trace
    assert trace[0] == 3.0  # the first batch uses T_init
    assert len(trace) == 2 * 5 and all(1.0 <= t <= 3.0 for t in trace)
    assert result.curve[0]["temperature"] == pytest.approx(sum(trace[:5]) / 5)


def test_ctkd_temperature_is_learned_inside_its_interval(tmp_path):
    (result,) = run_cohort(cohort([varied_members()[3]]), output=tmp_path, progress=False)
    temperatures = [r["temperature"] for r in result.curve]
    assert all(1.0 < t < 21.0 for t in temperatures)
    assert temperatures[0] != pytest.approx(15.62, abs=1e-6)  # theta moved under the reversed gradient


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_mid_epoch_gives_the_same_results(tmp_path):
    members = varied_members()[:3]
    reference = run_cohort(cohort(members), output=tmp_path / "reference", progress=False)

    def crash(epoch, step):
        if epoch == 2 and step == 2:
            raise Interrupt()

    with pytest.raises(Interrupt):
        run_cohort(cohort(members), output=tmp_path / "resumed", progress=False, step_callback=crash)
    interrupted = [RunFolder(tmp_path / "resumed", r.run_id).read_metrics() for r in reference]
    assert [m["epochs_done"] for m in interrupted] == [1, 1, 1]  # epoch 1 was kept
    resumed = run_cohort(cohort(members), output=tmp_path / "resumed", progress=False)
    for a, b in zip(reference, resumed):
        assert_same_run(a, b, final_weights(tmp_path / "reference", a), final_weights(tmp_path / "resumed", b))


def test_finished_members_are_not_trained_again(tmp_path):
    members = varied_members()[:2]
    run_cohort(cohort(members), output=tmp_path, progress=False)
    steps = []
    again = run_cohort(cohort(members), output=tmp_path, progress=False, step_callback=lambda e, s: steps.append(s))
    assert steps == []
    assert all(r.status == "done" and r.epochs_done == 2 for r in again)


def test_a_diverging_member_fails_with_its_reason_while_the_others_finish(tmp_path):
    from kdtemp.engine import OptimizerConfig

    diverging = member(name="diverges", optimizer=OptimizerConfig(name="sgd", lr=1e30, clip_norm=None))
    healthy = member(name="healthy", temperature=2.0)
    results = run_cohort(cohort([diverging, healthy]), output=tmp_path, progress=False)
    assert results[0].status == "failed"
    assert "non-finite" in results[0].error and "epoch 1" in results[0].error
    assert results[1].status == "done" and results[1].epochs_done == 2
    stored = RunFolder(tmp_path, results[0].run_id).read_metrics()
    assert stored["status"] == "failed" and "non-finite" in stored["error"]


def test_member_init_is_seeded_and_independent_of_the_global_rng(tmp_path):
    torch.manual_seed(123)
    (a,) = run_cohort(cohort([member(epochs=1)]), output=tmp_path / "a", progress=False)
    torch.manual_seed(999)
    (b,) = run_cohort(cohort([member(epochs=1)]), output=tmp_path / "b", progress=False)
    assert a.curve == b.curve


def test_sparse_checkpoints_resume_to_the_same_results(tmp_path):
    members = [member(name="a", epochs=3), member(name="b", temperature=2.0, epochs=3, seed=1)]
    reference = run_cohort(cohort(members), output=tmp_path / "reference", progress=False)

    def crash(epoch, step):
        if epoch == 3 and step == 1:
            raise Interrupt()

    sparse = cohort(members, checkpoint_every=2)
    with pytest.raises(Interrupt):
        run_cohort(sparse, output=tmp_path / "sparse", progress=False, step_callback=crash)
    saved = RunFolder(tmp_path / "sparse", reference[0].run_id).load_checkpoint()
    assert saved["state"]["epochs_done"] == 2  # epoch 2 was checkpointed, epoch 1 was not needed
    resumed = run_cohort(sparse, output=tmp_path / "sparse", progress=False)
    for a, b in zip(reference, resumed):
        assert_same_run(a, b, final_weights(tmp_path / "reference", a), final_weights(tmp_path / "sparse", b))


def test_teacher_and_student_each_get_their_own_normalisation(tmp_path, monkeypatch):
    import kdtemp.tasks.image.task as task_module

    seen = {"teacher": [], "student": []}
    original = task_module.load_model

    def recording(config, num_classes, allow_new_head=None, **kwargs):
        loaded = original(config, num_classes, allow_new_head, **kwargs)
        role = "teacher" if allow_new_head is False else "student"

        def record(module, args):
            seen[role].append(args[0].clone())  # returns None: the input is unchanged

        loaded.module.register_forward_pre_hook(record)
        return loaded

    monkeypatch.setattr(task_module, "load_model", recording)  # the image task creates both through it
    teacher = ModelConfig("resnet20", mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    config = cohort([member(epochs=1)], teacher=teacher)
    (result,) = run_cohort(config, output=tmp_path, progress=False)

    stream = TrainStream(config.data.load("train"), config.batch_size, config.augment, config.data.resolution,
                         config.data_seed)
    first = next(stream.epoch(1))
    # the first training batch (the teacher's first call scores it on the 100 test images)
    teacher_input = next(x for x in seen["teacher"] if x.shape[0] == config.batch_size)
    assert torch.allclose(teacher_input, normalize_float(first.images, ((0.5,) * 3, (0.25,) * 3)), atol=1e-6)
    assert torch.allclose(seen["student"][0], normalize_float(first.images, IMAGENET_NORMALIZATION), atol=1e-6)
    assert result.teacher["normalization"] == {"mean": [0.5] * 3, "std": [0.25] * 3}
    assert result.derived["normalization"]["mean"] == list(IMAGENET_NORMALIZATION[0])


def test_a_planted_resume_checkpoint_never_runs(tmp_path, marker):
    from kdtemp.engine.storage import RunFolder

    config = cohort([member(epochs=1)])
    folder = RunFolder(tmp_path, run_id_of(config))
    folder.path.mkdir(parents=True)
    plant(folder.checkpoint_path, {"w": torch.zeros(1)}, marker)
    (result,) = run_cohort(config, output=tmp_path, progress=False)
    # the planted file is moved aside unread, and only this run starts again from scratch
    assert result.status == "done" and result.epochs_done == 1
    assert "holds Python objects" in result.warnings[0] and "started again from scratch" in result.warnings[0]
    assert len([p for p in folder.path.glob("checkpoint.pt.damaged-*") if p.suffix != ".why"]) == 1


def run_id_of(config: CohortConfig) -> str:
    from kdtemp.engine.config import run_id

    return run_id(config, config.members[0])


def test_the_progress_bar_shows_the_best_of_every_epoch_so_far_not_of_the_last():
    from types import SimpleNamespace

    from kdtemp.engine.cohort import _Cohort

    def member(*values):
        return SimpleNamespace(state=SimpleNamespace(curve=[{"top1": v} for v in values]))

    task = SimpleNamespace(primary_metric="top1", primary_goal="max")
    cohort = SimpleNamespace(task=task, members=[member(40.0, 35.0), member(20.0, 30.0)])
    assert _Cohort.best_so_far(cohort) == 40.0  # the last epoch's best is 35: it went down before
    cohort.task = SimpleNamespace(primary_metric="top1", primary_goal="min")
    assert _Cohort.best_so_far(cohort) == 20.0
    assert _Cohort.best_so_far(SimpleNamespace(task=task, members=[member()])) != _Cohort.best_so_far(cohort)  # NaN

"""A cohort member (``kdtemp.engine.member``): the learning-rate schedules, what the training
step does on a device (no host synchronisation in the step; every member's own device random
stream, so a cohort member draws what the same run draws alone), per-tensor clipping, and what a
member records: the dataset constants it computes, the derived per-epoch logs, no temperature for a
cross-entropy-only run.

The CUDA tests run where a GPU is present (``make bench-gpu`` runs them); the rest run anywhere."""

import contextlib
import json
import math
import types

import pytest
import torch

from kdtemp.engine import DTSConfig, run_cohort
from kdtemp.engine.config import OptimizerConfig
from kdtemp.engine.member import Member, lr_multiplier
from kdtemp.engine.runtime import Runtime
from kdtemp.objectives import energy_scores, energy_thresholds
from kdtemp.tasks import get_task
from kdtemp.tasks.image.data import DataConfig, eval_images
from kdtemp.tasks.image.data.augment import Batch
from kdtemp.tasks.image.evaluate import predict
from kdtemp.tasks.image.models import ModelConfig, create_model

from helpers.engine import cohort, member


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def build(config, device, num_classes=4):
    data = types.SimpleNamespace(num_classes=num_classes, classes=[str(c) for c in range(num_classes)], train_size=64,
                                 stream=types.SimpleNamespace(batches_per_epoch=4))
    m = Member(config, "run", get_task("image_classification"), data, Runtime.create(device))
    if m.needs_training_logits():
        m.bind_training_logits(torch.randn(64, num_classes, generator=torch.Generator().manual_seed(1)).to(device))
    return m


def test_a_member_s_random_streams_do_not_depend_on_who_was_built_before_it(monkeypatch):
    def global_seed(seed):  # it reseeds every CUDA device too: the last-built member's seed leaked there
        raise AssertionError("a member seeded the global generators with torch.manual_seed")

    monkeypatch.setattr(torch, "manual_seed", global_seed)
    alone = build(member(seed=3, objective="shuffled_tail"), "cpu")
    assert alone.cuda_rng_state is None  # no device stream on the CPU
    build(member(seed=9), "cpu")
    after_another = build(member(seed=3, objective="shuffled_tail"), "cpu")
    before = torch.random.get_rng_state()
    with alone.own_rng():
        first = torch.rand(5)
    with after_another.own_rng():
        second = torch.rand(5)
    assert torch.equal(first, second)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's stream is untouched


@needs_cuda
def test_on_cuda_a_member_s_device_stream_is_its_own():
    """``shuffled_tail`` draws on the device: a member must draw there what the same run draws
    alone, whoever was built or stepped before it."""
    alone = build(member(seed=3, objective="shuffled_tail"), "cuda")
    build(member(seed=9), "cuda")
    after_another = build(member(seed=3, objective="shuffled_tail"), "cuda")
    torch.cuda.manual_seed(12345)  # the caller's device stream, which must not leak in
    with alone.own_rng():
        first = torch.rand(5, device="cuda")
    with after_another.own_rng():
        second = torch.rand(5, device="cuda")
    assert torch.equal(first, second)


@needs_cuda
def test_on_cuda_training_steps_never_wait_for_the_device():
    """Fixed-T KD, DTS (its first step too, before its temperature is a device tensor), global
    label smoothing (a float coefficient) and the shuffled tail: two steps each under CUDA's sync
    debug mode "error"."""
    configs = [member(temperature=4.0), member(temperature_policy="dts", dts=DTSConfig(initial=3, minimum=1, maximum=3)),
               member(objective="ls_global", temperature=4.0), member(objective="shuffled_tail", temperature=4.0)]
    members = [build(c, "cuda") for c in configs]
    g = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, 8, 8, generator=g).cuda()
    labels = torch.randint(0, 4, (8,), generator=g).cuda()
    soft = torch.nn.functional.one_hot(labels, 4).float()
    teacher = torch.randn(8, 4, generator=g).cuda()
    batch = Batch(images, soft, labels)  # the members train under bf16 autocast, as the engine does on CUDA
    batch.normalized(members[0].model.normalization)  # made once per batch and normalisation, as in a cohort
    for m in members:
        m.begin_epoch(1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):
            for m in members:
                m.train_step(batch, teacher, 1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(m._loss_sum) for m in members)


def test_per_tensor_clipping_scales_each_gradient_as_its_own_norm_says():
    """Each gradient tensor is clipped to L2 norm ``max_norm`` on its own (factor
    ``min(1, max_norm / (norm + 1e-6))``), in a few batched kernels: values equal the per-tensor
    formula bit for bit; small gradients are left as they are."""
    from kdtemp.engine.member import clip_per_tensor

    g = torch.Generator().manual_seed(0)
    shapes = [(16, 3, 3, 3), (16,), (10, 64), (10,), (1,)]
    params = [torch.nn.Parameter(torch.zeros(shape)) for shape in shapes]
    for p, scale in zip(params, (5.0, 0.01, 2.0, 3.0, 0.5)):
        p.grad = torch.randn(p.shape, generator=g) * scale
    expected = [p.grad * torch.clamp(1.0 / (p.grad.norm() + 1e-6), max=1.0) for p in params]
    small = params[1].grad.clone()
    clip_per_tensor(params + [torch.nn.Parameter(torch.zeros(2))], 1.0)  # one without a gradient
    assert all(torch.equal(p.grad, e) for p, e in zip(params, expected))
    assert torch.equal(params[1].grad, small)  # its norm is below 1
    assert all(p.grad.norm() <= 1.0 + 1e-6 for p in params)


def test_step_schedule_drops_at_the_classic_milestones():
    step = OptimizerConfig(name="sgd", lr=0.05, schedule="step", milestones=[150, 180, 210], gamma=0.1)
    multiplier = lr_multiplier(step, epochs=240, steps_per_epoch=10)
    # 1-based epoch e covers steps 10 (e - 1) .. 10 e - 1
    assert multiplier(0) == 1.0 and multiplier(150 * 10 - 1) == 1.0       # the last step of epoch 150
    assert multiplier(150 * 10) == pytest.approx(0.1)                       # the first step of epoch 151
    assert multiplier(180 * 10 - 1) == pytest.approx(0.1) and multiplier(180 * 10) == pytest.approx(0.01)
    assert multiplier(210 * 10) == pytest.approx(0.001) and multiplier(240 * 10 - 1) == pytest.approx(0.001)


def test_linear_warmup_then_schedule():
    config = OptimizerConfig(name="sgd", schedule="step", milestones=[3], lr_warmup_epochs=2)
    multiplier = lr_multiplier(config, epochs=4, steps_per_epoch=5)
    assert [multiplier(s) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert multiplier(10) == 1.0 and multiplier(15) == pytest.approx(0.1)
    cosine = lr_multiplier(OptimizerConfig(lr_warmup_epochs=1), epochs=3, steps_per_epoch=4)
    assert cosine(3) == 1.0 and cosine(4) == 1.0  # warm-up ends at 1, the cosine starts from 1
    assert cosine(4 + 4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))


def test_cosine_is_unchanged_without_warmup():
    multiplier = lr_multiplier(OptimizerConfig(), epochs=2, steps_per_epoch=5)
    assert [multiplier(s) for s in range(10)] == pytest.approx([0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)])


def test_a_threshold_the_user_gave_is_kept(tmp_path):
    config = cohort([member(objective="energy_kd", objective_params={"low": -1e9}, epochs=1)])
    (result,) = run_cohort(config, output=tmp_path, progress=False)
    assert set(result.derived["dataset_constants"]) == {"high"}  # only the missing one was computed


def test_energy_thresholds_come_from_one_teacher_pass_and_are_stored_with_the_run(finished):
    run = next(r for r in finished.runs if r.spec.student.objective == "energy_kd" and r.spec.student.temperature == 4)
    metrics = json.loads((finished.output / "runs" / run.run_id / "metrics.json").read_text())
    stored = metrics["derived"]["dataset_constants"]
    spec = run.spec
    data = DataConfig(**{**spec.data.__dict__})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the engine's randomly initialised teacher
        teacher = create_model(ModelConfig("resnet20"), 10, allow_new_head=False).eval()
    train = data.load("train")
    logits = predict(teacher, eval_images(train.images, spec.data.resolution, False), 512, contextlib.nullcontext)
    low, high = energy_thresholds(energy_scores(logits), 0.2, 0.2)
    assert stored == {"low": pytest.approx(low, abs=1e-5), "high": pytest.approx(high, abs=1e-5)}


def test_dtkd_logs_its_guarded_samples_per_epoch(finished):
    run = next(r for r in finished.runs if r.spec.student.objective == "dtkd")
    metrics = json.loads((finished.output / "runs" / run.run_id / "metrics.json").read_text())
    counts = metrics["derived"]["dtkd_guarded_samples"]
    assert len(counts) == 1 and 0 <= counts[0] <= 5 * 32  # one epoch of 5 batches of 32


def test_a_cross_entropy_only_run_records_no_temperature(tmp_path):
    """Its label, its curve, metrics.csv and the store: no temperature anywhere (the curve said 4)."""
    import csv

    from kdtemp.study import Store, load_study, run_study, store_path

    from helpers.trust import study, write_yaml

    path = write_yaml(tmp_path / "s.yaml", study(grid={"student.objective": ["kd", None], "student.temperature": [1, 4]}))
    s = load_study(path, output=tmp_path / "study")
    assert run_study(s, progress=False)["done"] == 3  # the CE-only run once
    with Store(store_path(s), readonly=True) as store:
        runs = {r["run_id"]: r for r in store.runs()}
    ce = [r for r in runs.values() if r["config"]["student"]["objective"] is None]
    assert len(ce) == 1 and ce[0]["label"].startswith("ce-")
    assert [point["temperature"] for point in ce[0]["curve"]] == [None]
    rows = list(csv.DictReader((tmp_path / "study" / "runs" / ce[0]["run_id"] / "metrics.csv").open()))
    assert rows[0]["temperature"] == ""
    kd = [r for r in runs.values() if r["config"]["student"]["objective"] == "kd"]
    assert sorted(point["temperature"] for r in kd for point in r["curve"]) == [1.0, 4.0]

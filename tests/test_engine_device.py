"""What the training step does on a device: no host synchronisation in the step (DTS, the
label-smoothing signals, the normalisation constants), every member's own device random stream
(a cohort member draws what the same run draws alone), and the test-time resize in slices.

The CUDA tests run where a GPU is present (``make bench-gpu`` runs them); the rest run anywhere."""

import types

import pytest
import torch

from engine_helpers import member

from kdtemp.tasks.image.data import augment
from kdtemp.tasks.image.data.augment import eval_images, normalization_tensors, normalize_float
from kdtemp.engine import DTSConfig
from kdtemp.engine.runtime import Runtime
from kdtemp.tasks import get_task
from kdtemp.tasks.image.data.augment import Batch
from kdtemp.engine.member import Member
from kdtemp.signals import smoothed_targets

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_a_float_smoothing_coefficient_gives_the_targets_a_tensor_gives():
    top = torch.tensor([0, 3, 2, 2])
    as_float = smoothed_targets(top, 0.3, 5)
    assert torch.equal(as_float, smoothed_targets(top, torch.full((4,), 0.3, dtype=torch.float64), 5))
    assert torch.allclose(as_float.sum(dim=1), torch.ones(4))
    assert as_float[0, 0].item() == pytest.approx(0.7 + 0.3 / 5)


def test_normalisation_constants_made_once_normalise_as_numbers_do():
    images = torch.rand(2, 3, 4, 4)
    numbers = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    made = normalization_tensors(numbers, images.device)
    again = normalization_tensors(made, images.device)
    assert again[0] is made[0] and again[1] is made[1]  # reused as they are
    assert torch.equal(normalize_float(images, made), normalize_float(images, numbers))
    assert torch.allclose(normalize_float(images, numbers)[:, 1], (images[:, 1] - 0.4) / 0.25)


def test_the_test_time_resize_in_slices_equals_the_whole_resize(monkeypatch):
    images = torch.randint(0, 256, (7, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    whole = eval_images(images, 20, center_crop=False)
    monkeypatch.setattr(augment, "EVAL_RESIZE_SLICE", 3)  # 3 + 3 + 1 images
    assert torch.equal(eval_images(images, 20, center_crop=False), whole)
    assert whole.shape == (7, 3, 20, 20) and whole.dtype == torch.uint8


def build(config, device, num_classes=4):
    data = types.SimpleNamespace(num_classes=num_classes, stream=types.SimpleNamespace(batches_per_epoch=4))
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

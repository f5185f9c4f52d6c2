"""Properties every registered objective must have, checked over the whole registry."""

import pytest
import torch

from kdtemp.objectives import OBJECTIVES, create_objective, entropy_weights, kd_loss, dkd_parts

ALL = sorted(OBJECTIVES)
# Set by the engine in training (energy_kd's thresholds split sample()'s teachers into all three groups).
PARAMS = {"ls_global": {"coefficient": 0.3}, "energy_kd": {"low": -8.0, "high": -6.0}}
# Objectives whose value is a KL divergence (so exactly zero when student equals teacher).
KL_BASED = ["kd", "dkd", "ea_kd", "ea_dkd", "ctkd", "ls_kd", "ls_dkd", "mlkd", "rld",
            "normkd", "normkd_dkd", "dtkd", "energy_kd"]
# Temperatures that depend on the logits' level (ATS's per-class teacher temperature, DTKD's maxima,
# Energy KD's energy): adding a constant to a row changes them (tests/test_temperature_methods.py).
SHIFT_DEPENDENT = {"ats", "dtkd", "energy_kd"}
# Reduced with batchmean (or a batch-size-free statistic): unchanged when the batch is duplicated.
BATCH_INVARIANT = [name for name in ALL if name not in ("mlkd", "shuffled_tail")]  # shuffled: fresh per sample
ENTROPY_WEIGHTED = {"ea_kd", "ea_dkd"}


def create(name):
    """The objective, reseeding the global RNG before each call (shuffled_tail draws from it)."""
    objective = create_objective(name, **PARAMS.get(name, {}))

    def call(*args):
        torch.manual_seed(0)
        return objective(*args)

    return call


def sample(batch=6, classes=5, scale=3.0, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, classes, generator=g, dtype=dtype) * scale
    teacher = torch.randn(batch, classes, generator=g, dtype=dtype) * scale
    target = torch.randint(0, classes, (batch,), generator=g)
    return student, teacher, target


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_non_negative(name, temperature):
    objective = create(name)
    for seed in range(5):
        student, teacher, target = sample(seed=seed)
        assert objective(student, teacher, target, temperature).item() >= 0.0


@pytest.mark.parametrize("name", KL_BASED)
@pytest.mark.parametrize("temperature", [1.0, 4.0, 20.0])
def test_zero_when_student_equals_teacher(name, temperature):
    _, teacher, target = sample()
    if name == "rld":
        target = teacher.argmax(dim=1)  # SCD compares p_y(s) with p_m(t): equal only when y = m
    value = create(name)(teacher.clone(), teacher, target, temperature)
    assert abs(value.item()) < 1e-12


def test_rld_not_zero_at_equality_when_label_differs_from_teacher_top():
    _, teacher, _ = sample()
    target = teacher.argmin(dim=1)
    assert create_objective("rld")(teacher.clone(), teacher, target, 4.0).item() > 1e-3


def test_dist_near_zero_when_student_equals_teacher():
    _, teacher, target = sample()
    assert create_objective("dist")(teacher.clone(), teacher, target, 1.0).item() < 1e-6


@pytest.mark.parametrize("name", [name for name in ALL if name not in SHIFT_DEPENDENT])
def test_unchanged_when_a_constant_is_added_to_each_row(name):
    student, teacher, target = sample()
    g = torch.Generator().manual_seed(7)
    shift_s = torch.randn(student.shape[0], 1, generator=g, dtype=student.dtype) * 5
    shift_t = torch.randn(teacher.shape[0], 1, generator=g, dtype=teacher.dtype) * 5
    objective = create(name)
    base = objective(student, teacher, target, 3.0)
    shifted = objective(student + shift_s, teacher + shift_t, target, 3.0)
    assert shifted.item() == pytest.approx(base.item(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", BATCH_INVARIANT)
def test_unchanged_when_the_batch_is_duplicated(name):
    student, teacher, target = sample()
    objective = create(name)
    base = objective(student, teacher, target, 3.0)
    doubled = objective(torch.cat([student, student]), torch.cat([teacher, teacher]), torch.cat([target, target]), 3.0)
    assert doubled.item() == pytest.approx(base.item(), rel=1e-6)


def test_mlkd_batch_and_class_levels_scale_with_duplication_as_defined():
    from kdtemp.objectives import batch_level_loss, class_level_loss

    student, teacher, _ = sample()
    s2, t2 = torch.cat([student, student]), torch.cat([teacher, teacher])
    assert batch_level_loss(s2, t2, 2.0).item() == pytest.approx(2 * batch_level_loss(student, teacher, 2.0).item())
    assert class_level_loss(s2, t2, 2.0).item() == pytest.approx(4 * class_level_loss(student, teacher, 2.0).item())


@pytest.mark.parametrize("name", ALL)
def test_gradcheck_float64(name):
    student, teacher, target = sample(batch=3, classes=4, scale=1.5)
    objective = create(name)
    if name in ENTROPY_WEIGHTED:
        # The weights are detached by design, so finite differences (which see them move) would
        # disagree; check the weighted loss with the weights held at their value instead.
        weights = entropy_weights(student, teacher, 3.0)
        if name == "ea_kd":
            def fn(s):
                return (weights * kd_loss(s, teacher, 2.0, reduction="none")).mean()
        else:
            def fn(s):
                tckd, nckd = dkd_parts(s, teacher, target, 2.0)
                return (weights * (tckd + 8.0 * nckd)).mean()
    else:
        def fn(s):
            return objective(s, teacher, target, 2.0)
    assert torch.autograd.gradcheck(fn, (student.clone().requires_grad_(),), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("temperature", [0.1, 1.0, 40.0, 100.0])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_finite_values_and_gradients_at_extremes(name, temperature, scale):
    student, teacher, target = sample(batch=8, classes=10, scale=scale, dtype=torch.float32)
    student.requires_grad_()
    value = create(name)(student, teacher, target, temperature)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(student.grad).all()


@pytest.mark.parametrize("name", ALL)
def test_bf16_inputs_are_upcast(name):
    student, teacher, target = sample(batch=8, classes=10, dtype=torch.float32)
    s16, t16 = student.bfloat16().requires_grad_(), teacher.bfloat16()
    objective = create(name)
    value = objective(s16, t16, target, 4.0)
    value.backward()
    assert value.dtype == torch.float32
    assert torch.isfinite(s16.grad.float()).all()
    # the same rounded inputs in float32 give the same value: nothing was computed in bf16
    reference = objective(s16.detach().float(), t16.float(), target, 4.0)
    assert value.item() == pytest.approx(reference.item(), rel=1e-5, abs=1e-7)


def test_constant_rows_standardize_without_nan_gradient():
    student = torch.ones(2, 4, requires_grad=True)
    create_objective("ls_kd")(student, torch.randn(2, 4), torch.zeros(2, dtype=torch.long), 2.0).backward()
    assert torch.isfinite(student.grad).all()


def test_entropy_weights_carry_no_gradient():
    student, teacher, _ = sample()
    student.requires_grad_()
    weights = entropy_weights(student, teacher, 3.0)
    assert not weights.requires_grad
    # the EA-KD gradient equals the weighted per-sample KD gradient with weights as constants
    loss = create_objective("ea_kd")(student, teacher, torch.zeros(6, dtype=torch.long), 2.0)
    (grad,) = torch.autograd.grad(loss, student)
    expected_loss = (weights * kd_loss(student, teacher, 2.0, reduction="none")).mean()
    (expected,) = torch.autograd.grad(expected_loss, student)
    assert torch.allclose(grad, expected)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: create_objective("nope"), "unknown objective 'nope'; allowed:"),
        (lambda: create_objective("dkd", gamma=1.0), "objective 'dkd' has no parameter 'gamma'"),
        (lambda: create_objective("dkd", beta=-8), r"objective 'dkd': beta: must be a number >= 0; got -8"),
        (lambda: create_objective("ls_kd", eps=0.0), r"objective 'ls_kd': eps: must be a number > 0 and <= 1"),
        (lambda: create_objective("shuffled_tail", keep_top=1.5), "keep_top: must be an integer >= 0"),
        (lambda: kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), 0.0), "temperature must be > 0"),
        (lambda: kd_loss(torch.zeros(2, 3), torch.zeros(2, 4), 1.0), "differ in shape"),
        (lambda: kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), 1.0, reduction="mean"), "reduction must be"),
    ],
)
def test_bad_input_gives_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_presets_protocol_and_official():
    from kdtemp.objectives import PROTOCOL, preset

    assert preset("dkd", "protocol") == PROTOCOL
    assert (PROTOCOL.ce_weight, PROTOCOL.kd_weight, PROTOCOL.warmup_epochs) == (0.0, 1.0, 0)
    dkd = preset("dkd", "official")
    assert (dkd.ce_weight, dkd.warmup_epochs, dkd.temperature) == (1.0, 20, 4.0)
    assert dkd.warmup(1) == pytest.approx(1 / 20) and dkd.warmup(20) == 1.0 and dkd.warmup(25) == 1.0
    ls = preset("ls_kd", "official")
    assert (ls.kd_weight, ls.ce_weight, ls.temperature) == (9.0, 0.1, 2.0)
    assert preset("dist", "official").kd_weight == 2.0
    assert preset("mlkd", "official").ce_weight == 0.1
    with pytest.raises(ValueError, match="allowed: official, protocol"):
        preset("kd", "paper")

"""Properties every registered objective must have, checked over the whole registry."""

import pytest
import torch

from kdtemp.objectives import OBJECTIVES, create_objective, dkd_parts, entropy_weights, kd_loss

from helpers.logits import sample


ALL = sorted(OBJECTIVES)


# Set by the engine in training (energy_kd's thresholds split sample()'s teachers into all three groups).
PARAMS = {"ls_global": {"coefficient": 0.3}, "energy_kd": {"low": -8.0, "high": -6.0}}


# Objectives whose value is a KL divergence (so exactly zero when student equals teacher).
KL_BASED = ["kd", "dkd", "ea_kd", "ea_dkd", "ctkd", "ls_kd", "ls_dkd", "mlkd", "rld",
            "normkd", "normkd_dkd", "dtkd", "energy_kd"]


# Temperatures that depend on the logits' level (ATS's per-class teacher temperature, DTKD's maxima,
# Energy KD's energy): adding a constant to a row changes them (tests/objectives/test_temperature_methods.py).
SHIFT_DEPENDENT = {"ats", "dtkd", "energy_kd"}


# Regressions on the raw logits (Annealing KD's MSE to the scaled teacher): no softmax, so neither
# invariant to a constant added to a row nor finite where a teacher logit is -inf (as in its authors' code).
ON_RAW_LOGITS = {"akd"}

# KL(q || p) is infinite where the teacher gives a class probability 0 and the student does not: the
# reverse KL's true value at a masked teacher class (its skewed form mixes the student in and stays finite).
INFINITE_AT_A_MASKED_TEACHER_CLASS = {"reverse_kl"}


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


@pytest.mark.parametrize("name", [name for name in ALL if name not in SHIFT_DEPENDENT | ON_RAW_LOGITS])
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


def objective(name):
    params = {"ls_global": {"coefficient": 0.1}, "energy_kd": {"low": -9.5, "high": -9.1}}  # set by the engine
    return create_objective(name, **params.get(name, {}))


@pytest.mark.parametrize("name", sorted(set(OBJECTIVES) - ON_RAW_LOGITS - INFINITE_AT_A_MASKED_TEACHER_CLASS))
def test_a_masked_teacher_class_gives_finite_loss_and_gradient(name):
    torch.manual_seed(0)
    student = torch.randn(8, 10, requires_grad=True)
    teacher = torch.randn(8, 10)
    teacher[:, 3] = float("-inf")
    target = torch.randint(0, 10, (8,))
    target[target == 3] = 0
    loss = objective(name)(student, teacher, target, 4.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_float16_constant_rows_give_finite_gradients(name):
    student = torch.zeros(8, 10, dtype=torch.float16, requires_grad=True)
    teacher = (torch.randn(8, 10, generator=torch.Generator().manual_seed(0)) * 3).half()
    loss = objective(name)(student, teacher, torch.arange(8) % 10, 4.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()

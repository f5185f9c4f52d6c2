"""The temperature methods of the literature together: TTM/WTTM, NormKD, ATS, DTKD and Energy KD.

What holds over all of them (each method's own hand-worked values are in its module's file,
``test_ttm.py`` .. ``test_energy.py``): the documented dependence on the logits' level, finite
values and gradients at the numerical extremes, float16 inputs, gradcheck through the registry,
and their registry entries."""

import pytest
import torch

from kdtemp.objectives import (
    ats_loss,
    create_objective,
    dtkd_loss,
    energy_kd_loss,
    energy_scores,
    energy_thresholds,
    get_spec,
    kd_loss,
    normkd_dkd_loss,
    normkd_loss,
    preset,
    ttm_loss,
)
from kdtemp.objectives.registry import OBJECTIVES, check_parameters

from helpers.logits import gradcheck, sample


NEW = ["ttm", "wttm", "normkd", "normkd_dkd", "ats", "dtkd", "energy_kd"]


THRESHOLDS = {"energy_kd": {"low": -8.0, "high": -6.0}}  # the engine sets them from the training split


# --- Level dependence: documented, not a bug ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ats", "dtkd", "energy_kd"])
def test_temperatures_that_read_the_logit_level_change_when_a_constant_is_added(name):
    student, teacher, target = sample()
    objective = create_objective(name, **THRESHOLDS.get(name, {}))
    shifted = objective(student, teacher + 2.0, target, 3.0)
    assert abs(shifted.item() - objective(student, teacher, target, 3.0).item()) > 1e-6


# --- Numerics over every new function -----------------------------------------------------------------------------

def calls(student, teacher, target, temperature):
    low, high = energy_thresholds(energy_scores(teacher.detach()), 0.25, 0.25)
    return {
        "ttm": lambda: ttm_loss(student, teacher, temperature),
        "wttm": lambda: ttm_loss(student, teacher, temperature, weighted=True),
        "normkd": lambda: normkd_loss(student, teacher, temperature),
        "normkd_dkd": lambda: normkd_dkd_loss(student, teacher, target, temperature),
        "ats": lambda: ats_loss(student, teacher, target, temperature),
        "dtkd": lambda: dtkd_loss(student, teacher, temperature),
        "energy_kd": lambda: energy_kd_loss(student, teacher, low, high,
                                            (temperature / 2, temperature, 3 * temperature / 2)),
    }


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("temperature", [0.1, 1.0, 100.0])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_finite_values_and_gradients_at_extremes(name, temperature, scale):
    student, teacher, target = sample(batch=16, classes=10, scale=scale, dtype=torch.float32, seed=3)
    student[:3] = -student[:3].abs()  # some non-positive maxima (DTKD's guard)
    teacher[3:5] = -teacher[3:5].abs()
    student.requires_grad_()
    value = calls(student, teacher, target, temperature)[name]()
    value.backward()
    assert torch.isfinite(value) and value.item() >= 0
    assert torch.isfinite(student.grad).all()


@pytest.mark.parametrize("name", NEW)
def test_a_masked_teacher_class_gives_finite_values_and_gradients(name):
    # DTKD's teacher temperature carries the student's gradient: -inf / T_t must not send NaN back
    student, teacher, target = sample(batch=8, classes=10, dtype=torch.float32, seed=1)
    teacher[:, 3] = float("-inf")
    target[target == 3] = 0
    student.requires_grad_()
    value = calls(student, teacher, target, 4.0)[name]()
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(student.grad).all()


@pytest.mark.parametrize("name", NEW)
def test_float16_inputs_are_upcast(name):
    student, teacher, target = sample(batch=8, classes=10, dtype=torch.float32)
    s16, t16 = student.half().requires_grad_(), teacher.half()
    value = calls(s16, t16, target, 4.0)[name]()
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert torch.isfinite(s16.grad.float()).all()
    reference = calls(s16.detach().float(), t16.float(), target, 4.0)[name]()
    assert value.item() == pytest.approx(reference.item(), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", NEW)
def test_gradcheck_float64_through_the_registry(name):
    student, teacher, target = sample(batch=3, classes=4, scale=1.5)
    objective = create_objective(name, **THRESHOLDS.get(name, {}))
    assert gradcheck(lambda s: objective(s, teacher, target, 2.0), student)


# --- Registry -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, official, label",
    [
        ("ttm", (1.0, 45.0, 0, 10.0), False),
        ("wttm", (1.0, 45.0, 0, 10.0), False),
        ("normkd", (0.1, 0.9, 0, 2.0), False),
        ("normkd_dkd", (1.0, 1.0, 20, 2.0), True),
        ("ats", (0.5, 0.5, 0, 2.0), True),
        ("dtkd", (1.0, 1.0, 20, 4.0), False),
        ("energy_kd", (0.1, 0.9, 0, 4.0), False),
    ],
)
def test_registry_presets_and_calls(name, official, label):
    p = preset(name, "official")
    assert (p.ce_weight, p.kd_weight, p.warmup_epochs, p.temperature) == official
    assert get_spec(name).uses_label is label
    student, teacher, target = sample()
    value = create_objective(name, **THRESHOLDS.get(name, {}))(student, teacher, target, 4.0)
    assert value.dim() == 0 and torch.isfinite(value)


def test_registry_entries_use_t_as_each_method_defines_it():
    student, teacher, target = sample()
    call = lambda name, **params: create_objective(name, **params)(student, teacher, target, 3.0).item()  # noqa: E731
    assert call("ttm") == ttm_loss(student, teacher, 3.0).item()
    assert call("wttm") == ttm_loss(student, teacher, 3.0, weighted=True).item()
    assert call("normkd") == normkd_loss(student, teacher, 3.0).item()
    assert call("normkd_dkd", alpha=2.0, beta=7.0) == normkd_dkd_loss(student, teacher, target, 3.0, 2.0, 7.0).item()
    assert call("ats") == ats_loss(student, teacher, target, 3.0, 2.0).item()
    assert call("ats", target_ratio=1.5) == ats_loss(student, teacher, target, 3.0, 1.5).item()
    # DTKD: the authors' KD term 3 * DTKD + 1 * KD at the reference T
    dtkd = 3 * dtkd_loss(student, teacher, 3.0).item() + kd_loss(student, teacher, 3.0).item()
    assert call("dtkd") == pytest.approx(dtkd, rel=1e-12)
    # Energy KD: T sets (T/2, T, 3T/2)
    energy = energy_kd_loss(student, teacher, -8.0, -6.0, (1.5, 3.0, 4.5))
    assert call("energy_kd", low=-8.0, high=-6.0) == energy.item()
    assert create_objective("energy_kd", low=-8.0, high=-6.0)(student, teacher, target, 4.0).item() == pytest.approx(
        energy_kd_loss(student, teacher, -8.0, -6.0).item(), rel=1e-12)


def test_every_registered_parameter_has_a_rule():
    for name, spec in OBJECTIVES.items():
        assert set(spec.parameters) == set(spec.defaults), name  # its own rules, one per parameter


def test_new_parameter_rules():
    assert check_parameters("ats", {"target_ratio": 0.5})["target_ratio"] == 0.5  # the authors' sweep goes below 1
    for bad in (0, -1.0, "2"):
        with pytest.raises(ValueError, match="target_ratio: must be a number > 0"):
            check_parameters("ats", {"target_ratio": bad})
    merged = check_parameters("energy_kd", {"low": -9, "high": None, "low_rate": 0.5})
    assert (merged["low"], merged["high"], merged["low_rate"], merged["high_rate"]) == (-9.0, None, 0.5, 0.2)
    with pytest.raises(ValueError, match=r"high_rate: must be a number >= 0 and <= 0.5"):
        check_parameters("energy_kd", {"high_rate": 0.6})
    with pytest.raises(ValueError, match="weighted: not a parameter of 'ttm'"):
        check_parameters("ttm", {"weighted": True})
    with pytest.raises(ValueError, match=r"objective 'energy_kd': high_rate: must be a number >= 0 and <= 0.5"):
        create_objective("energy_kd", low=-8.0, high=-6.0, high_rate=0.6)  # create_objective checks values too
    assert set(get_spec("dtkd").defaults) == {"alpha", "beta"}
    assert get_spec("dtkd").defaults == {"alpha": 3.0, "beta": 1.0}

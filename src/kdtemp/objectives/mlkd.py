"""Multi-Level Logit Distillation (Jin et al., 2023)."""

from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor

from ._common import Temperature, check_logits, check_temperature, scaled_log_softmax
from .kd import kd_loss
from .registry import ParameterRule, Preset, register

MLKD_RELATIVE_TEMPERATURES = (1.0, 0.75, 1.25, 0.5, 1.5)
"""The registered ``mlkd``'s temperatures relative to the run's T: the authors' (4, 3, 5, 2, 6) at T = 4."""


def _probabilities(logits: Tensor, temperature: Temperature) -> Tensor:
    return scaled_log_softmax(logits, temperature).exp()


def batch_level_loss(student: Tensor, teacher: Tensor, temperature: Temperature) -> Tensor:
    """``||P_t P_t^T - P_s P_s^T||_F^2 / B`` with ``P = softmax(z / T)`` (no ``T^2``).

    Compares the ``[B, B]`` sample-similarity (Gram) matrices. Not batch-size invariant:
    duplicating the batch doubles it.
    """
    check_logits(student, teacher)
    check_temperature(temperature)
    p_s, p_t = _probabilities(student, temperature), _probabilities(teacher, temperature)
    return (p_t @ p_t.T - p_s @ p_s.T).square().sum() / student.shape[0]


def class_level_loss(student: Tensor, teacher: Tensor, temperature: Temperature) -> Tensor:
    """``||P_t^T P_t - P_s^T P_s||_F^2 / C`` with ``P = softmax(z / T)`` (no ``T^2``).

    Compares the ``[C, C]`` class-correlation matrices. Duplicating the batch multiplies it by 4.
    """
    check_logits(student, teacher)
    check_temperature(temperature)
    p_s, p_t = _probabilities(student, temperature), _probabilities(teacher, temperature)
    return (p_t.T @ p_t - p_s.T @ p_s).square().sum() / student.shape[1]


def mlkd_loss(student: Tensor, teacher: Tensor, temperatures: Sequence[float] = (4.0, 3.0, 5.0, 2.0, 6.0)) -> Tensor:
    """Sum over ``temperatures`` of instance (``T^2 * KL``, batchmean), batch and class levels.

    kdtemp runs MLKD on the cohort's single augmented view without the authors' weak/strong
    views and confidence mask. Uses no label. Official preset (authors): CE 0.1, KD 0.9.
    """
    if len(temperatures) == 0:
        raise ValueError("temperatures must name at least one temperature")
    total = student.new_zeros((), dtype=scaled_log_softmax(student[:1], 1.0).dtype)
    for temperature in temperatures:
        total = (
            total
            + kd_loss(student, teacher, temperature)
            + batch_level_loss(student, teacher, temperature)
            + class_level_loss(student, teacher, temperature)
        )
    return total


@register("mlkd", summary="multi-level KD: instance, batch and class levels over five temperatures",
          official=Preset(0.1, 0.9, 0, 4.0), display_name="MLKD", uses_label=False,
          parameters={"relative_temperatures": ParameterRule("numbers", 0.0, low_open=True)},
          notes="Temperatures are T x (1, .75, 1.25, .5, 1.5): the authors' (4, 3, 5, 2, 6) at T = 4. "
                "Single augmented view, no confidence mask.",
          no_token_form="its batch and class levels compare the rows of a batch (a C x C class matrix)")
def mlkd_objective(
    s: Tensor, t: Tensor, y: Tensor, T: Any, relative_temperatures: tuple = MLKD_RELATIVE_TEMPERATURES
) -> Tensor:
    return mlkd_loss(s, t, tuple(T * r for r in relative_temperatures))

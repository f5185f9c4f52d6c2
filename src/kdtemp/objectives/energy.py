"""Energy KD: per-sample temperatures from the teacher's energy (Kim et al., 2024)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from ._common import Temperature, check_logits, check_temperature, kl_from_log_probs, upcast
from .registry import ParameterRule, Preset, register

ENERGY_TEMPERATURE = 4.0
"""The temperature of the energy score in the authors' code, fixed whatever the KD temperatures."""

ENERGY_RELATIVE_TEMPERATURES = (0.5, 1.0, 1.5)
"""Energy KD's (low, middle, high) temperatures relative to the run's T: the authors' (2, 4, 6) at T = 4."""


def energy_scores(teacher: Tensor, temperature: Temperature = ENERGY_TEMPERATURE) -> Tensor:
    """``E_i = -temperature * logsumexp(t_i / temperature)``, shape ``[B]``.

    Low energy means a confident teacher. Computed in float32 or wider; a masked (``-inf``)
    class adds nothing. Pass the teacher's logits detached.
    """
    if teacher.dim() != 2:
        raise ValueError(f"teacher logits must be 2-D [batch, classes]; got {tuple(teacher.shape)}")
    check_temperature(temperature)
    return -temperature * torch.logsumexp(upcast(teacher) / temperature, dim=-1)


def _check_rate(rate: float, name: str) -> None:
    if not 0.0 <= rate <= 0.5:
        raise ValueError(f"{name} must be in [0, 0.5]; got {rate}")


def energy_thresholds(scores: Tensor, low_rate: float = 0.2, high_rate: float = 0.2) -> tuple[float, float]:
    """The dataset-level ``(low, high)`` energy thresholds, as Python floats.

    ``scores`` are :func:`energy_scores` of one teacher pass over the whole (un-augmented)
    training split, ``N`` values. With them sorted ascending (0-based):
    ``low = sorted[int(low_rate * N)]`` and ``high = sorted[-(int(high_rate * N) + 1)]``.
    Rates lie in ``[0, 0.5]`` (so the low and high groups never overlap on the training set).
    Ties are kept: every sample equal to a threshold falls in the middle group, since the
    groups use strict comparisons (:func:`energy_temperatures`).
    """
    _check_rate(low_rate, "low_rate")
    _check_rate(high_rate, "high_rate")
    values = scores.detach().reshape(-1)
    if values.numel() == 0:
        raise ValueError("energy_thresholds needs at least one energy score")
    if not bool(torch.isfinite(values).all()):
        raise ValueError("energy scores must be finite")
    ordered = torch.sort(values).values
    count = ordered.numel()
    low = ordered[int(low_rate * count)]
    high = ordered[-(int(high_rate * count) + 1)]
    return float(low), float(high)


def _check_temperatures(temperatures: Sequence[Temperature]) -> None:
    if len(temperatures) != 3:
        raise ValueError(f"temperatures must be (low, middle, high); got {tuple(temperatures)!r}")
    for value in temperatures:
        check_temperature(value, "temperatures")


def _check_thresholds(low: float | None, high: float | None) -> None:
    if low is None or high is None:
        raise ValueError("energy KD needs the dataset-level thresholds low and high: compute them with "
                         "energy_thresholds(energy_scores(teacher logits of the un-augmented training split))")


def energy_temperatures(
    teacher: Tensor,
    low: float,
    high: float,
    temperatures: Sequence[Temperature] = (2.0, 4.0, 6.0),
    energy_temperature: Temperature = ENERGY_TEMPERATURE,
) -> Tensor:
    """Per-sample temperature ``[B]``: ``temperatures[0]`` if ``E_i < low``, else
    ``temperatures[2]`` if ``E_i > high``, else ``temperatures[1]`` (strict comparisons, the
    low test first). Low-energy (confident) samples get the **low** temperature, as in the
    authors' code; their abstract says the opposite."""
    _check_thresholds(low, high)
    _check_temperatures(temperatures)
    energy = energy_scores(teacher.detach(), energy_temperature)
    cold, middle, hot = (value if isinstance(value, torch.Tensor) else torch.full_like(energy, float(value))
                         for value in temperatures)  # made on the device: no host-to-device copy per step
    return torch.where(energy < low, cold, torch.where(energy > high, hot, middle))


def energy_kd_loss(
    student: Tensor,
    teacher: Tensor,
    low: float,
    high: float,
    temperatures: Sequence[Temperature] = (2.0, 4.0, 6.0),
    energy_temperature: Temperature = ENERGY_TEMPERATURE,
) -> Tensor:
    """``mean_i T_i^2 * KL(p(t_i, T_i) || p(s_i, T_i))`` with ``T_i`` from the teacher's energy.

    ``T_i`` is :func:`energy_temperatures`'s: the low temperature for samples whose energy
    (at ``energy_temperature``, the authors' fixed 4) is below ``low``, the high one above
    ``high``, the middle one otherwise. ``low`` and ``high`` are **dataset-level**
    (:func:`energy_thresholds`), computed with the same ``energy_temperature``; a
    ``ValueError`` says so when either is missing. Uses no label.
    Official preset: CE 0.1, KD 0.9, temperatures (2, 4, 6) (the authors train 360 epochs).
    """
    check_logits(student, teacher)
    per_row = energy_temperatures(teacher, low, high, temperatures, energy_temperature).unsqueeze(-1)
    log_p = torch.log_softmax(upcast(teacher) / per_row, dim=-1)
    log_q = torch.log_softmax(upcast(student) / per_row, dim=-1)
    return (kl_from_log_probs(log_p, log_q) * per_row.squeeze(-1).square()).mean()


def _energy_constants(teacher: Tensor, T: Any, low_rate: float = 0.2, high_rate: float = 0.2, **params: Any) -> dict:
    low, high = energy_thresholds(energy_scores(teacher), low_rate, high_rate)
    return {"low": low, "high": high}


@register("energy_kd", summary="energy KD: temperature (T/2, T, 3T/2) by the teacher's energy",
          official=Preset(0.1, 0.9, 0, 4.0), display_name="Energy KD",
          uses_label=False, dataset_constants=_energy_constants,
          no_token_form="its energy thresholds come from the teacher over the whole training set",
          parameters={"low": ParameterRule("number", optional=True), "high": ParameterRule("number", optional=True),
                      "low_rate": ParameterRule("number", 0.0, 0.5), "high_rate": ParameterRule("number", 0.0, 0.5)},
          notes="low, high: dataset-level energy thresholds, computed from one teacher pass over the "
                "un-augmented training split; confident (low-energy) samples get T/2, as in the code.")
def energy_kd_objective(
    s: Tensor,
    t: Tensor,
    y: Tensor,
    T: Any,
    low: float | None = None,
    high: float | None = None,
    low_rate: float = 0.2,
    high_rate: float = 0.2,
) -> Tensor:
    # low_rate and high_rate are read by whoever computes the thresholds (dataset_constants), not here.
    if low is None or high is None:
        raise ValueError("energy_kd needs its energy thresholds low and high (computed from one teacher pass over "
                         "the un-augmented training split with low_rate and high_rate; see "
                         "kdtemp.objectives.energy_scores and energy_thresholds)")
    return energy_kd_loss(s, t, low, high, tuple(T * r for r in ENERGY_RELATIVE_TEMPERATURES))

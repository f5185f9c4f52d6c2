"""The teacher-signal ablations of the study's Fig. 5 as objectives: KD toward a modified teacher.

The targets are :mod:`kdtemp.signals`'s; the student matches them with ``T^2 * KL(q || p(s, T))``
(:func:`kdtemp.signals.distill_to_targets`). ``kdtemp.signals`` imports this package's numerics,
so it is imported when an objective runs, never at import time (no import circle).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .registry import PROTOCOL, ParameterRule, register


@register("ls_instance", summary="KD toward per-instance entropy-matched label smoothing of the teacher's argmax",
          official=PROTOCOL, display_name="per-instance label smoothing", uses_label=False)
def ls_instance_objective(s: Tensor, t: Tensor, y: Tensor, T: Any) -> Tensor:
    from ..signals import distill_to_targets, instance_label_smoothing

    return distill_to_targets(s, instance_label_smoothing(t, T), T)


def _ls_global_constants(teacher: Tensor, T: Any, **params: Any) -> dict:
    from ..signals import global_smoothing_coefficient

    return {"coefficient": global_smoothing_coefficient(teacher, T)}


@register("ls_global", summary="KD toward one entropy-matched label smoothing for the whole training set",
          official=PROTOCOL, display_name="global label smoothing", uses_label=False,
          dataset_constants=_ls_global_constants,
          parameters={"coefficient": ParameterRule("number", 0.0, 1.0, optional=True)},
          notes="coefficient: computed by the engine from the teacher on the un-augmented training set.",
          no_token_form="its coefficient comes from the teacher over the whole training set")
def ls_global_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, coefficient: float | None = None) -> Tensor:
    from ..signals import distill_to_targets, global_label_smoothing

    if coefficient is None:
        raise ValueError("ls_global needs its coefficient (the engine computes it from the teacher on the "
                         "un-augmented training set; see kdtemp.signals.global_smoothing_coefficient)")
    return distill_to_targets(s, global_label_smoothing(t, coefficient), T)


@register("shuffled_tail", summary="KD toward the teacher with its bottom C - k probabilities randomly permuted",
          official=PROTOCOL, display_name="shuffled tail (bottom N-k randomised)", uses_label=False,
          parameters={"keep_top": ParameterRule("integer", 0)},
          notes="Draws from the global RNG, which the engine keeps per member.",
          no_token_form="it draws random permutations, which a chunked recomputation would draw again")
def shuffled_tail_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, keep_top: int = 1) -> Tensor:
    from ..signals import distill_to_targets, shuffled_tail

    return distill_to_targets(s, shuffled_tail(t, T, keep_top), T)

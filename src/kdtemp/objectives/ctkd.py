"""Curriculum Temperature KD, CTKD (Li et al., 2023): KD at a learnable, adversarial temperature.

The loss is :func:`~kdtemp.objectives.kd_loss`; the temperature ``T = 1 + 20 sigmoid(theta)`` and its
gradient reversal are the ``ctkd`` temperature policy's (``kdtemp.temperature``).
"""

from __future__ import annotations

from .kd import kd_objective
from .registry import Preset, register

# Its published name; a report's curve of a ``ctkd``-policy run reads "CTKD (learned T)".
register("ctkd", summary="curriculum temperature KD: KD at a learnable, adversarial T",
         official=Preset(0.1, 0.9, 0, None), display_name="CTKD",
         uses_label=False, temperature_policy="ctkd",
         notes="T = 1 + 20 sigmoid(theta) is learned; a run's fixed temperature is ignored.")(kd_objective)

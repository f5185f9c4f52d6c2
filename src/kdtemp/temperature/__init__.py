"""Temperature policies behind one interface: fixed, the Dynamic Temperature Scheduler (DTS, batch-wise
and per sample), CTKD's learnable temperature and Annealing KD's staircase; and the study's
temperature grid."""

from .interface import AKDPolicy, CTKDPolicy, DTSPolicy, FixedPolicy, InstanceDTSPolicy, TemperaturePolicy, create_policy
from .policies import akd_level, DynamicTemperature, FixedTemperature, LearnableTemperature, curriculum_lambda, gradient_reversal

STUDY_TEMPERATURES: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 20.0, 40.0)
"""The study's temperature grid (Frank & Davis): every experiment scores each of these."""

__all__ = ["STUDY_TEMPERATURES", "AKDPolicy", "CTKDPolicy", "InstanceDTSPolicy", "DTSPolicy", "FixedPolicy", "TemperaturePolicy", "akd_level", "create_policy", "DynamicTemperature", "FixedTemperature", "LearnableTemperature",
           "curriculum_lambda", "gradient_reversal"]

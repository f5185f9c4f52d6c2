"""Temperature policies behind one interface, registered by name: fixed, the Dynamic Temperature
Scheduler (DTS, batch-wise and per sample), CTKD's learnable temperature and Annealing KD's staircase;
and the study's temperature grid."""

from .interface import TemperaturePolicy, create_policy
from .policies import akd_level, DynamicTemperature, FixedTemperature, LearnableTemperature, curriculum_lambda, gradient_reversal
from .registry import POLICIES, PolicyInputs, PolicySpec, get_policy, register_policy
# each module registers its policy where it is defined, in the order errors list them
from .fixed import FixedPolicy
from .dts import DTSPolicy
from .dts_instance import InstanceDTSPolicy
from .ctkd import CTKDPolicy
from .akd import AKDPolicy

STUDY_TEMPERATURES: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 20.0, 40.0)
"""The study's temperature grid (Frank & Davis): every experiment scores each of these."""

__all__ = ["STUDY_TEMPERATURES", "POLICIES", "AKDPolicy", "CTKDPolicy", "InstanceDTSPolicy", "DTSPolicy", "FixedPolicy",
           "PolicyInputs", "PolicySpec", "TemperaturePolicy", "akd_level", "create_policy", "get_policy",
           "register_policy", "DynamicTemperature", "FixedTemperature", "LearnableTemperature", "curriculum_lambda",
           "gradient_reversal"]

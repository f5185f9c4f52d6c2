"""The training engine: cohort distillation, teacher preparation, evaluation and checkpoints."""

from .cohort import RunResult, TeacherDiagnosis, run_cohort
from .config import CohortConfig, DTSConfig, MemberConfig, OptimizerConfig, run_id
from .distill import DistillConfig
from .teacher import TeacherConfig, prepare_teacher

__all__ = [
    "CohortConfig", "DTSConfig", "DistillConfig", "MemberConfig", "OptimizerConfig", "RunResult",
    "TeacherConfig", "TeacherDiagnosis", "prepare_teacher", "run_cohort", "run_id",
]

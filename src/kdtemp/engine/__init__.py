"""The training engine: cohort distillation, teacher preparation and checkpoints, through a task
(:mod:`kdtemp.tasks`); it knows no image, text or token."""

from .cohort import TeacherDiagnosis, run_cohort
from .results import RunResult
from .runtime import Runtime
from .config import CohortConfig, DTSConfig, MemberConfig, OptimizerConfig, run_id
from .distill import DistillConfig
from .teacher import TeacherConfig, prepare_teacher

__all__ = [
    "CohortConfig", "DTSConfig", "DistillConfig", "MemberConfig", "OptimizerConfig", "RunResult",
    "Runtime", "TeacherConfig", "TeacherDiagnosis", "prepare_teacher", "run_cohort", "run_id",
]

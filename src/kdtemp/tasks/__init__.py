"""Tasks: what a kind of problem gives the engine (:mod:`.base`): image classification, text
classification and causal language models."""

from .base import TASKS, ModelAdapter, Task, TaskData, TrainingBatch, get_task, register_task
from . import image  # noqa: F401  (registers image_classification)
from . import text  # noqa: F401  (registers text_classification; Transformers is imported only when it is used)
from . import lm  # noqa: F401  (registers causal_lm; likewise)

DEFAULT_TASK = "image_classification"

__all__ = ["DEFAULT_TASK", "TASKS", "ModelAdapter", "Task", "TaskData", "TrainingBatch", "get_task", "register_task"]

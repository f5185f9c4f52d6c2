"""Text classification (GLUE and your own labelled text) with Hugging Face models.

Importing this package registers the task and imports neither Transformers nor ``datasets``: they
are loaded when a text cohort opens its data (``pip install 'kdtemp[text]'``).
"""

from .config import TextAugmentConfig, TextDataConfig, TextModelConfig
from .glue import GLUE
from . import task  # noqa: F401  (registers text_classification)

__all__ = ["GLUE", "TextAugmentConfig", "TextDataConfig", "TextModelConfig"]

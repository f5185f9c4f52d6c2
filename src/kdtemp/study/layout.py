"""Where a study's files are: the layout that the driver writes and the report reads.

This module knows nothing of the driver, the executors or the engine, so the report may import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .spec import Study


def store_path(study: Study) -> Path:
    """The study's results store, ``<output>/study.sqlite``."""
    return study.output / "study.sqlite"

"""Studies: one file describes a grid of runs; it runs on one machine or a Ray cluster, resumably."""

from .driver import export, plan, rebuild, results_table, run_study, status, store_path
from .presets import PRESETS
from .spec import ExecutorConfig, RunSpec, Study, StudyFile, expand, load_study
from .store import Store

__all__ = [
    "ExecutorConfig", "PRESETS", "RunSpec", "Store", "Study", "StudyFile", "expand", "export", "load_study",
    "plan", "rebuild", "results_table", "run_study", "status", "store_path",
]

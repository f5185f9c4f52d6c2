"""Evaluating finished weights again, apart from training: a run's final checkpoint (or a prepared
teacher's ``teacher.pt``) under evaluation settings of the user's choosing (another protocol, more
generation seeds, other evaluation sets), without training anything. Results go beside the run, in
``<run>/evaluations/<evaluation id>/`` (``metrics.json`` and, for a task that writes them, the
generations in ``samples/``), so an evaluation done once is never done twice and an interrupted one
resumes with the runs it had not finished."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from ..config import to_dict
from ..files import atomic_write_text
from ..tasks import get_task
from .config import CohortConfig
from .results import evaluation_id
from .runtime import Runtime
from .storage import RunFolder


def evaluation_folder(run_folder: Path, settings: dict[str, Any]) -> Path:
    return run_folder / "evaluations" / evaluation_id(settings)


def read_evaluation(run_folder: Path, settings: dict[str, Any]) -> dict | None:
    """A finished evaluation's record (``settings``, ``metrics``, ``weights``, ``seconds``), or None."""
    path = evaluation_folder(run_folder, settings) / "metrics.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:  # cut short by a kill: evaluated again
        return None


class Evaluator:
    """Evaluates weights under one cohort configuration's evaluation settings (its data opened once);
    ``settings`` (:meth:`~kdtemp.engine.config.SharedConfig.evaluation`) is recorded with every result
    and names its folder."""

    def __init__(self, config: CohortConfig, progress: bool = False) -> None:
        self.config, self.settings = config, config.evaluation()
        self.runtime = Runtime.create(config.device, config.precision)
        self.task = get_task(config.task)
        self.data = self.task.open(config, self.runtime, progress=progress)

    def evaluate(self, model_config: Any, weights: dict[str, torch.Tensor], run_folder: Path, role: str = "student",
                 source: str = "") -> dict:
        """Evaluate ``weights`` (a state dict of ``model_config``'s module); written to ``run_folder``'s
        evaluation folder and returned. Already done: read back, nothing evaluated."""
        done = read_evaluation(run_folder, self.settings)
        if done is not None:
            return done
        folder = evaluation_folder(run_folder, self.settings)
        started = time.perf_counter()
        model = self.task.create_model(model_config, self.data, self.runtime, role)
        model.module.load_state_dict(weights)
        model.module.eval()
        extra = {}
        if self.task.writes_samples:
            samples = RunFolder(folder.parent, folder.name)
            extra["samples"] = samples.write_samples
        scores = self.task.evaluate(model, self.data, self.runtime, self.config.eval_batch_size, **extra)
        record = {"settings": self.settings, "metrics": {k: float(v) for k, v in scores.items()}, "weights": source,
                  "data": to_dict(self.config.data), "seconds": time.perf_counter() - started}
        atomic_write_text(folder / "metrics.json", json.dumps(record, indent=1))
        return record

"""A study's results as one flat table (CSV, or JSON with every run's curve), read from its store alone.

The driver and the report both export it; neither the driver nor the engine is needed to read it.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from .store import Store

if TYPE_CHECKING:
    from .spec import Study


IMAGE_METRICS = ("top1", "top5")
"""The evaluation metrics of image classification: the export's columns for a study of top-1 whose
runs have no result yet (so its columns are the same before and after its first results)."""


def metric_columns(runs: list[dict], primary: str) -> list[str]:
    """The metrics the export shows for each run at its final and best epoch: the primary metric
    first, then every other evaluation metric the runs recorded (a loss only when it is the primary
    metric), in the order they first appear."""
    names = [primary]
    for run in runs:
        for which in ("final", "best"):
            for metric in run.get(which) or {}:
                if metric not in names and not (metric == "loss" or metric.endswith("_loss")):
                    names.append(metric)
    if names == [primary] and primary == IMAGE_METRICS[0]:
        names = list(IMAGE_METRICS)
    return names


def results_table(study: Study | None, store: Store) -> list[dict[str, Any]]:
    """One flat row per run of the study (the runs of the study file last registered in the store
    when ``study`` is None): its axes, status, ``final_<metric>`` and ``best_<metric>`` for the
    study's primary metric and the other metrics of :func:`metric_columns` (``final_top1``,
    ``final_top5``, ``best_top1``, ``best_top5`` for images), its best epoch by the primary metric,
    its time and error."""
    ids = [r.run_id for r in study.runs] if study is not None else store.meta("run_ids")
    axes = store.meta("axes", [])
    runs = store.runs(ids)
    metrics = metric_columns(runs, store.primary()[0])
    rows = []
    for run in runs:
        row = {"run_id": run["run_id"], "cohort_id": run["cohort_id"], "label": run["label"]}
        row.update({axis: run["cell"].get(axis) for axis in axes})
        row.update({key: run[key] for key in ("seed", "status", "epochs", "epochs_done")})
        for which in ("final", "best"):
            row.update({f"{which}_{metric}": (run[which] or {}).get(metric) for metric in metrics})
        row.update({key: run[key] for key in ("best_epoch", "seconds", "error")})
        rows.append(row)
    return rows


def export(study: Study | None, store: Store, fmt: str) -> str:
    """The results table as CSV, or as JSON with every run's per-epoch curve."""
    rows = results_table(study, store)
    if fmt == "json":
        curves = {r["run_id"]: r for r in store.runs([row["run_id"] for row in rows])}
        return json.dumps([{**row, "config": curves[row["run_id"]]["config"], "curve": curves[row["run_id"]]["curve"]}
                           for row in rows], indent=1)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()

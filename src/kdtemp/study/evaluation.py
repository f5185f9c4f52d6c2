"""``kdtemp evaluate``: a study's finished runs and prepared models evaluated again under other
evaluation settings (``data.generation.protocol=minillm``, ``data.generation.seeds=[10,20]``,
``data.eval_sets=[dolly,self-inst]``), nothing trained. The settings are dotted overrides of ``data``
applied to each run's own configuration; every result lands beside its run
(:mod:`kdtemp.engine.evaluation`), so running the command again evaluates only what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import ConfigError, apply_overrides, from_dict, parse_override, to_dict
from ..engine import CohortConfig
from ..engine.evaluation import Evaluator, read_evaluation
from ..engine.storage import RunFolder
from ..weights import read_weights
from .layout import store_path
from .spec import Study
from .store import Store


def evaluation_settings(overrides: list[str]) -> dict[str, Any]:
    """The changed evaluation fields, ``{dotted key: value}``; one line for a field outside ``data``."""
    settings = {}
    for text in overrides:
        keys, value = parse_override(text)
        if keys[0] != "data" or len(keys) < 2:
            raise ConfigError(f"{'.'.join(keys)}: evaluate changes evaluation settings, fields of data "
                              "(data.generation.protocol=minillm, data.eval_sets=[...]); allowed: data.<field>")
        settings[".".join(keys)] = value
    return settings


def _config(spec_config: CohortConfig, overrides: list[str], where: str) -> CohortConfig:
    data = to_dict(spec_config)
    try:
        return from_dict(CohortConfig, apply_overrides(data, overrides))
    except ConfigError as error:
        raise ConfigError(f"{error} (evaluating {where})") from None


def evaluate_study(study: Study, overrides: list[str], progress: bool = True) -> list[dict[str, Any]]:
    """Evaluate every finished run and prepared model of ``study`` under ``overrides``; one row each
    (``kind``, ``label``, ``seed``, ``run_id``, ``metrics``, ``cached``: whether it was done before)."""
    settings = evaluation_settings(overrides)
    if not store_path(study).is_file():
        raise ConfigError(f"study {study.file.name!r} has no store at {store_path(study)}; run it first")
    with Store(store_path(study), readonly=True) as store:
        done_runs = {r["run_id"] for r in store.runs() if r["status"] == "done"}
        done_preparations = {p["prep_id"] for p in store.preparations() if p["status"] == "done"}
    jobs = []  # (kind, label, seed, id, cohort config, model config, weights reader, run folder)
    for preparation in study.preparations:
        if preparation.prep_id in done_preparations:
            config = _config(preparation.config.cohort(), overrides, f"prepared {preparation.label}")
            jobs.append(("prepared", preparation.label, preparation.config.cohort().members[0].seed, preparation.prep_id,
                         config, config.members[0].model, lambda p=preparation: read_weights(p.weights)[0],
                         preparation.folder.parent / "runs" / preparation.prep_id, str(preparation.weights)))
    runs_dir = study.output / "runs"
    for run in study.runs:
        if run.run_id in done_runs:
            config = _config(run.spec.cohort_config(), overrides, f"run {run.run_id}")
            folder = RunFolder(runs_dir, run.run_id)
            jobs.append(("run", run.spec.student.label(), run.spec.student.seed, run.run_id, config,
                         config.members[0].model, lambda f=folder: f.load_checkpoint()["model"], folder.path,
                         str(folder.checkpoint_path)))
    if not jobs:
        raise ConfigError(f"study {study.file.name!r} has no finished run or prepared model to evaluate")
    todo = [job for job in jobs if read_evaluation(job[7], settings) is None]
    if progress:
        print(f"evaluate: {len(jobs)} finished models, {len(jobs) - len(todo)} evaluated under these settings already"
              f" ({json.dumps(settings) if settings else 'the study file as it is'})")
    evaluators: dict[str, Evaluator] = {}
    rows = []
    for kind, label, seed, identity, config, model, weights, folder, source in jobs:
        cached = read_evaluation(folder, settings)
        if cached is None:
            key = json.dumps(config.key(), sort_keys=True)
            if key not in evaluators:  # the data opened once per cohort key
                evaluators[key] = Evaluator(config, settings, progress=progress)
            role = "teacher" if kind == "prepared" else "student"
            record = evaluators[key].evaluate(model, weights(), Path(folder), role, source)
            if progress:
                print(f"  evaluated {kind} {label} (seed {seed}) in {record['seconds']:.0f} s")
        else:
            record = cached
        rows.append({"kind": kind, "label": label, "seed": seed, "id": identity, "metrics": record["metrics"],
                     "cached": cached is not None})
    return rows


def evaluation_table(rows: list[dict[str, Any]]) -> str:
    """The evaluated models as a text table: each metric with its spread over generation seeds."""
    names = []
    for row in rows:
        names += [k for k in row["metrics"] if not k.startswith("seed_sd_") and k not in names]
    lines = ["kind\tlabel\tseed\tid\t" + "\t".join(names)]
    for row in rows:
        metrics = row["metrics"]
        cells = []
        for name in names:
            value, spread = metrics.get(name), metrics.get(f"seed_sd_{name}")
            cells.append("" if value is None else f"{value:.2f}" + ("" if spread is None else f" ± {spread:.2f}"))
        lines.append(f"{row['kind']}\t{row['label']}\t{row['seed']}\t{row['id']}\t" + "\t".join(cells))
    return "\n".join(lines)

"""Study files for the study, executor, driver and command-line tests."""

import csv
import io
from pathlib import Path

import yaml

from kdtemp.study import Store, export, store_path

BASE = {
    "data": {"dataset": "digits", "resolution": 8, "train_per_class": 16, "test_per_class": 10},
    "augment": {"randaugment_ops": 0, "horizontal_flip": False, "mix": True},
    "teacher": {"name": "resnet20", "init": "random"},
    "batch_size": 32,
    "student": {"model": {"name": "resnet20"}, "objective": "kd", "epochs": 2},
}

# 9 temperatures x 2 optimizers x 2 seeds = 36 runs, in 2 cohorts (one per seed).
DIGITS_STUDY = {
    "name": "digits-t-x-opt",
    "base": BASE,
    "presets": ["temperatures"],
    "zip": [{"student.optimizer.name": ["adamw", "sgd"], "student.optimizer.lr": [0.003, 0.05]}],
    "seeds": [0, 1],
    "executor": {"kind": "inline", "threads": 1},
}

# The methods of the ``temperature_methods`` preset that take a temperature (the ``finished``
# fixture of tests/conftest.py trains them at T = 1 and 4, plus CTKD and DTS once).
METHODS_WITH_T = ["kd", "ttm", "wttm", "normkd", "ats", "dtkd", "energy_kd", "ls_kd"]


def write_study(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def table(study, drop=("seconds",)):
    with Store(store_path(study), readonly=True) as store:
        rows = list(csv.DictReader(io.StringIO(export(study, store, "csv"))))
    return [{k: v for k, v in row.items() if k not in drop} for row in rows]

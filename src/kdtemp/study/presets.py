"""Named presets for the study's dimensions (Frank & Davis; see docs/studies.md).

A preset is an axis: a list of labelled variants, each a mapping of dotted field overrides.
Use them in a study file as ``presets: [temperatures, kd_approaches]``.
"""

from __future__ import annotations

from typing import Any

Variant = tuple[str, dict[str, Any]]

from ..temperature import STUDY_TEMPERATURES  # noqa: E402  (the study's grid; defined once, there)

SGD = {"name": "sgd", "lr": 0.05, "weight_decay": 5e-4, "momentum": 0.9}
ADAMW = {"name": "adamw", "lr": 2e-3, "weight_decay": 0.05}

PRESETS: dict[str, list[Variant]] = {
    # Every experiment's temperature grid.
    "temperatures": [(f"{t:g}", {"student.temperature": t}) for t in STUDY_TEMPERATURES],
    # Fig. 1: shared fixed-T KD against the comparison objectives, each with its own paper's
    # hyper-parameters (teacher matching only, as in the study).
    "kd_approaches": [
        ("kd", {"student.objective": "kd"}),
        ("dkd", {"student.objective": "dkd"}),
        ("ea_kd", {"student.objective": "ea_kd"}),
        ("ctkd", {"student.objective": "ctkd", "student.temperature_policy": "ctkd"}),
        ("ls_kd", {"student.objective": "ls_kd"}),
        ("mlkd", {"student.objective": "mlkd"}),
        ("rld", {"student.objective": "rld"}),
        ("dist", {"student.objective": "dist"}),
    ],
    # Figs. 2-3: optimizers (AdamW as in the baseline; SGD with momentum, a common CIFAR setting).
    "optimizers": [("adamw", {"student.optimizer": ADAMW}), ("sgd", {"student.optimizer": SGD})],
    "batch_sizes": [(str(b), {"batch_size": b}) for b in (64, 256)],
    "epochs_pets": [(str(e), {"student.epochs": e}) for e in (64, 128, 256, 512, 1024)],
    "epochs_cifar100": [(str(e), {"student.epochs": e}) for e in (32, 64, 128, 256, 512)],
    # Every temperature method of the literature on the user's pair, each with its authors' official
    # loss weighting; crossed with a temperature axis, each method's own temperature is swept
    # (the teacher's T for TTM/WTTM, the std multiplier for NormKD, the base T for ATS, the
    # reference T for DTKD, the middle T for Energy KD); CTKD and DTS set their own and are
    # trained once per seed (see docs/studies.md, "Run identity").
    "temperature_methods": [
        (name, {"student.objective": name, "student.loss_preset": "official", "student.temperature_policy": "fixed"})
        for name in ("kd", "ttm", "wttm", "normkd", "ats", "dtkd", "energy_kd", "ls_kd")
    ] + [
        ("ctkd", {"student.objective": "ctkd", "student.loss_preset": "official", "student.temperature_policy": "ctkd"}),
        ("dts", {"student.objective": "kd", "student.loss_preset": "official", "student.temperature_policy": "dts"}),
    ],
    # The DTS paper's comparison: fixed-T KD, DTS with its two ranges, and CTKD.
    "dts_comparison": [
        ("kd", {"student.objective": "kd", "student.temperature_policy": "fixed"}),
        ("dts_same_family", {"student.objective": "kd", "student.temperature_policy": "dts",
                             "student.dts": {"initial": 8.0, "minimum": 4.0, "maximum": 8.0}}),
        ("dts_cross_family", {"student.objective": "kd", "student.temperature_policy": "dts",
                              "student.dts": {"initial": 3.0, "minimum": 1.0, "maximum": 3.0}}),
        ("ctkd", {"student.objective": "ctkd", "student.temperature_policy": "ctkd"}),
    ],
    # The DTS paper's Table II: fixed-T KD, CTKD, Annealing KD (phase 1 two thirds of the run),
    # DTS with both ranges, and DTS per sample (instance-wise) with both ranges.
    "dts_table2": [
        ("kd", {"student.objective": "kd", "student.temperature_policy": "fixed"}),
        ("ctkd", {"student.objective": "ctkd", "student.temperature_policy": "ctkd"}),
        ("akd", {"student.objective": "akd", "student.temperature_policy": "akd"}),
        ("dts_same_family", {"student.objective": "kd", "student.temperature_policy": "dts",
                             "student.dts": {"initial": 8.0, "minimum": 4.0, "maximum": 8.0}}),
        ("dts_cross_family", {"student.objective": "kd", "student.temperature_policy": "dts",
                              "student.dts": {"initial": 3.0, "minimum": 1.0, "maximum": 3.0}}),
        ("dts_instance_same_family", {"student.objective": "kd", "student.temperature_policy": "dts_instance",
                                      "student.dts": {"initial": 8.0, "minimum": 4.0, "maximum": 8.0}}),
        ("dts_instance_cross_family", {"student.objective": "kd", "student.temperature_policy": "dts_instance",
                                       "student.dts": {"initial": 3.0, "minimum": 1.0, "maximum": 3.0}}),
    ],
    # DTS experiments: fixed-T KD against DTS with the paper's two ranges.
    "dts": [
        ("fixed", {"student.temperature_policy": "fixed"}),
        ("dts_same_family", {"student.temperature_policy": "dts",
                             "student.dts": {"initial": 8.0, "minimum": 4.0, "maximum": 8.0}}),
        ("dts_cross_family", {"student.temperature_policy": "dts",
                              "student.dts": {"initial": 3.0, "minimum": 1.0, "maximum": 3.0}}),
    ],
}

"""A validation split carved from the training data, for choosing a temperature without reading the test split.

``data.validation``: ``null`` (the default: no validation split, the training split whole), a fraction in
(0, 1) of the training split, or a count of its samples. The samples are a seeded draw
(:data:`VALIDATION_SEED`, the same for every run, every ``data_seed`` and every study of the data), taken
out of training; they are evaluated as the test split is (no augmentation) and their metrics are
recorded as ``val_<metric>`` (``val_top1``, ``val_loss``). The protocol's own numbers stay on test.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import ConfigError, require

VALIDATION_SEED = 0x6B6474  # "kdt": fixed, so every run of one dataset holds out the same samples
PREFIX = "val_"
"""How a validation metric is named in curves and stores (``val_top1``)."""


def check_validation(value: float | int | None, path: str = "data.validation") -> None:
    """``null``, a fraction in (0, 1) or a count >= 1 (one line otherwise)."""
    if value is None:
        return
    ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 1) or (
        isinstance(value, float) and 0 < value < 1)
    require(ok, path, f"must be a fraction in (0, 1) of the training split or a count >= 1 of its samples; got {value!r}")


def validation_count(value: float | int, size: int, path: str = "data.validation") -> int:
    """How many of ``size`` training samples ``value`` holds out; one line when it would leave none to train on."""
    count = max(1, round(value * size)) if isinstance(value, float) else int(value)
    if count >= size:
        raise ConfigError(f"{path}: holds out {count} of the training split's {size} samples; it must leave some to "
                          f"train on (a fraction in (0, 1), or a count below {size})")
    return count


ADVISED = 500
"""Fewer validation samples than this draw a warning: their top-1 is too noisy to rank temperatures by."""


def noise_note(count: int, path: str = "data.validation") -> str | None:
    """A warning when ``count`` validation samples are too few to tell temperatures apart, else None.

    A top-1 accuracy ``a`` measured on ``n`` samples has a binomial standard error of
    ``100 sqrt(a (1 - a) / n)`` points, at most ``50 / sqrt(n)`` (at ``a = 0.5``): 5 points on 100
    samples, 1.6 on 1,000. ``kdtemp tune`` ranks candidates by it, so differences below it are noise.
    """
    if count >= ADVISED:
        return None
    return (f"{path}: {count} samples; a top-1 accuracy measured on them has a standard error of up to "
            f"{50 / math.sqrt(count):.1f} points, so temperatures closer than that cannot be told apart on it "
            f"(kdtemp tune ranks by it); {ADVISED} or more are advised")


def carve(size: int, value: float | int, path: str = "data.validation") -> tuple[np.ndarray, np.ndarray]:
    """The training rows kept and the validation rows (each in the split's order) of a split of ``size``."""
    count = validation_count(value, size, path)
    order = np.random.default_rng(VALIDATION_SEED).permutation(size)
    return np.sort(order[count:]), np.sort(order[:count])

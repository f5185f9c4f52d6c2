"""Rank agreement: how well the ranking of the temperatures early in training predicts their final ranking.

For every setting of a study with a temperature axis (the fixed-temperature runs of one report row,
each trained for the same number of epochs), at every epoch ``e`` of ``E``:

* ``tau``: Kendall's tau-b between the temperatures' mean primary metric over seeds at epoch ``e`` and at
  the final epoch (1: the same order; 0: unrelated; ties count as tau-b counts them);
* ``seed_tau`` / ``seed_tau_sd``: the same per seed (that seed's values at ``e`` against its own final
  values), their mean and sample standard deviation (None with one seed: no spread known);
* ``top1`` / ``top3``: whether the final best temperature (by the mean; every tied best counts) is the
  best, or among the three best, at epoch ``e``.

The study's own warning is why this is measured, not assumed: smaller temperatures can lead early and
larger ones win with longer training (Table 2's SGD runs), so a search that stops early may pick too
small a T. Runs read their curve (the metric as training measured it, every epoch).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Sequence

from .tables import Record, markdown_text, natural_key

FRACTIONS = (0.1, 0.25, 0.5)
"""The fractions of training the summary table reads (the epoch ``ceil(f * E)``)."""


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two paired sequences (ties in either corrected for: :func:`scipy.stats.kendalltau`);
    None when fewer than two pairs, or when either sequence is constant (no order to agree with)."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau: {len(x)} and {len(y)} values")
    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic)


@dataclass
class Agreement:
    """One setting at one epoch (see the module's docstring)."""

    setting: str
    epoch: int
    epochs: int
    temperatures: int
    seeds: int
    tau: float | None
    seed_tau: float | None
    seed_tau_sd: float | None
    top1: bool
    top3: bool

    @property
    def fraction(self) -> float:
        return self.epoch / self.epochs


def _best(values: dict[float, float], goal: str) -> set[float]:
    target = max(values.values()) if goal == "max" else min(values.values())
    return {t for t, v in values.items() if v == target}


def _top(values: dict[float, float], goal: str, k: int) -> set[float]:
    ordered = sorted(values.items(), key=lambda item: -item[1] if goal == "max" else item[1])
    cut = ordered[min(k, len(ordered)) - 1][1]  # ties at the k-th value are in
    return {t for t, v in ordered if (v >= cut if goal == "max" else v <= cut)}


def rank_agreement(items: Iterable[Record], key=lambda r: r.label) -> list[Agreement]:
    """Every setting's :class:`Agreement` at every epoch, for settings with at least three fixed
    temperatures whose finished runs share one number of epochs (a setting whose runs differ in length is
    left out: their final epochs are not one point of training)."""
    groups: dict[str, list[Record]] = {}
    for r in items:
        if r.status == "done" and r.temperature is not None and r.curve:
            groups.setdefault(key(r), []).append(r)
    out = []
    for setting, runs in sorted(groups.items(), key=lambda item: natural_key(item[0])):
        lengths = {len(r.curve) for r in runs}
        temperatures = sorted({r.temperature for r in runs})
        if len(lengths) != 1 or len(temperatures) < 3:
            continue
        epochs, goal, metric = lengths.pop(), runs[0].goal, runs[0].metric
        by_seed: dict[int, dict[float, list[float]]] = {}
        for r in runs:
            values = [row.get(metric) for row in r.curve]
            if any(v is None or v != v for v in values):
                continue
            by_seed.setdefault(r.seed, {})[r.temperature] = values
        complete = {s: v for s, v in by_seed.items() if set(v) == set(temperatures)}  # seeds with every T
        if not complete:
            continue
        mean = {t: [statistics.fmean(complete[s][t][e] for s in complete) for e in range(epochs)] for t in temperatures}
        final = {t: mean[t][-1] for t in temperatures}
        best = _best(final, goal)
        for e in range(epochs):
            now = {t: mean[t][e] for t in temperatures}
            tau = kendall_tau([now[t] for t in temperatures], [final[t] for t in temperatures])
            per_seed = [kendall_tau([complete[s][t][e] for t in temperatures], [complete[s][t][-1] for t in temperatures])
                        for s in sorted(complete)]
            per_seed = [v for v in per_seed if v is not None]
            out.append(Agreement(setting, e + 1, epochs, len(temperatures), len(complete), tau,
                                 statistics.fmean(per_seed) if per_seed else None,
                                 statistics.stdev(per_seed) if len(per_seed) > 1 else None,
                                 bool(best & _best(now, goal)), bool(best & _top(now, goal, 3))))
    return out


def at_fraction(rows: list[Agreement], fraction: float) -> list[Agreement]:
    """Each setting's row at epoch ``ceil(fraction * E)`` (at least the first)."""
    return [r for r in rows if r.epoch == max(1, math.ceil(fraction * r.epochs - 1e-9))]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def rank_markdown(rows: list[Agreement], fractions: Sequence[float] = FRACTIONS) -> str:
    """The summary table: per setting, at each of ``fractions`` of training, tau, the per-seed tau with
    its spread and whether the final best T leads (top 1) or is among the three best (top 3)."""
    if not rows:
        return ""
    lines = ["**Rank agreement of temperatures** (Kendall's tau-b between the ranking of T at a fraction of training "
             "and the final ranking, by the mean over seeds; per seed: mean +- std of each seed's own tau; top 1 / "
             "top 3: whether the final best T is the best, or among the three best, then)", "",
             "| setting | T | seeds | epochs | fraction | epoch | tau | per-seed tau | final best top 1 | top 3 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for fraction in fractions:
        for r in at_fraction(rows, fraction):
            seed = "" if r.seed_tau is None else (f"{r.seed_tau:.2f}" + ("" if r.seed_tau_sd is None else
                                                                          f" +- {r.seed_tau_sd:.2f}"))
            if r.seeds < 2 and r.seed_tau is not None:
                seed += " (one seed)"
            lines.append(f"| {markdown_text(r.setting)} | {r.temperatures} | {r.seeds} | {r.epochs} | {fraction:.0%} | "
                         f"{r.epoch} | {_number(r.tau)} | {seed} | {'yes' if r.top1 else 'no'} | "
                         f"{'yes' if r.top3 else 'no'} |")
    lines += ["", "tau is empty where the ranking is constant (all temperatures tied at that epoch or at the end)."]
    return "\n".join(lines) + "\n"


def rank_csv_rows(rows: list[Agreement]) -> list[dict]:
    """Every setting at every epoch, as CSV rows."""
    return [{"setting": r.setting, "epoch": r.epoch, "epochs": r.epochs, "fraction": round(r.fraction, 6),
             "temperatures": r.temperatures, "seeds": r.seeds, "tau": r.tau, "seed_tau": r.seed_tau,
             "seed_tau_sd": r.seed_tau_sd, "final_best_top1": int(r.top1), "final_best_top3": int(r.top3)}
            for r in rows]

"""Report figures (matplotlib, Agg): the study's heatmap, curves, method comparison, profiles, ablation.

Each function returns a ``Figure``; :func:`save` writes it as PNG and SVG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .tables import SIGNALS, Cell, Record, aggregate, aggregate_points, best_temperatures, temperatures_of  # noqa: E402

plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 110})
HEATMAP_CMAP = "viridis"


def save(figure: Figure, folder: Path, name: str) -> dict[str, Path]:
    """Write ``name.png`` and ``name.svg``; return their paths."""
    paths = {"png": folder / f"{name}.png", "svg": folder / f"{name}.svg"}
    figure.savefig(paths["png"], bbox_inches="tight", dpi=130)
    figure.savefig(paths["svg"], bbox_inches="tight")
    plt.close(figure)
    return paths


def _temperature_axis(axis, temps: list[float]) -> None:
    axis.set_xscale("log")
    axis.set_xticks(temps)
    axis.set_xticklabels([f"{t:g}" for t in temps])
    axis.minorticks_off()
    axis.set_xlabel("temperature T")


def _own_temperature_lines(axis, points: dict[str, Cell], first_colour: int) -> None:
    """Methods that set their own temperature (DTS, CTKD): a dashed horizontal line at their mean
    with a +-1 std band across the whole T axis, never a point at some T."""
    for index, (row, cell) in enumerate(points.items()):
        colour = plt.cm.tab10((first_colour + index) % 10)
        axis.axhline(cell.mean, color=colour, linestyle="--", linewidth=1.4, label=f"{row} (own T)")
        if cell.std:
            axis.axhspan(cell.mean - cell.std, cell.mean + cell.std, color=colour, alpha=0.10, linewidth=0)


def heatmap(table: dict[str, dict[float, Cell]], title: str) -> Figure:
    """Rows a setting, columns T, colour and text the mean over seeds; the best per row boxed."""
    temps, rows = temperatures_of(table), list(table)
    values = np.full((len(rows), len(temps)), np.nan)
    for i, row in enumerate(rows):
        for j, t in enumerate(temps):
            if t in table[row]:
                values[i, j] = table[row][t].mean
    figure, axis = plt.subplots(figsize=(1.0 + 0.75 * len(temps), 0.9 + 0.42 * len(rows)))
    image = axis.imshow(values, cmap=HEATMAP_CMAP, aspect="auto")
    axis.set_xticks(range(len(temps)), [f"{t:g}" for t in temps])
    axis.set_yticks(range(len(rows)), rows)
    axis.set_xlabel("temperature T")
    axis.set_title(title)
    low, high = np.nanmin(values), np.nanmax(values)
    for i, row in enumerate(rows):
        best = best_temperatures(table[row])
        for j, t in enumerate(temps):
            if np.isnan(values[i, j]):
                continue
            light = (values[i, j] - low) / (high - low + 1e-12) < 0.6
            axis.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=8,
                      color="white" if light else "black", fontweight="bold" if t in best else "normal")
            if t in best:
                axis.add_patch(plt.Rectangle((j - 0.48, i - 0.48), 0.96, 0.96, fill=False, edgecolor="red", linewidth=1.6))
    figure.colorbar(image, ax=axis, label="top-1 (%)", fraction=0.046, pad=0.02)
    return figure


def curves(records: list[Record], metric: str, ylabel: str) -> Figure:
    """Accuracy vs T per setting, mean with a band of +- one std over seeds. When the number of
    epochs varies, the longest runs are drawn in colour and shorter ones in grey on a right axis."""
    epochs = sorted({r.epochs for r in records})
    longest, varies = _longest(records)
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    key = (lambda r: r.without("epochs")) if varies else (lambda r: r.label)
    table = aggregate(longest, metric, key)
    temps = temperatures_of(table) or [1.0]
    colours = plt.cm.tab10(np.arange(max(len(table), 1)) % 10)
    for colour, (row, cells) in zip(colours, table.items()):
        t = np.array(list(cells))
        mean = np.array([c.mean for c in cells.values()])
        std = np.array([c.std for c in cells.values()])
        axis.plot(t, mean, marker="o", color=colour, label=row + (f" ({epochs[-1]} ep)" if varies else ""), linewidth=1.6)
        axis.fill_between(t, mean - std, mean + std, color=colour, alpha=0.18, linewidth=0)
    _own_temperature_lines(axis, aggregate_points(longest, metric, key), len(table))
    if varies:
        right = axis.twinx()
        right.spines["right"].set_visible(True)
        for shade, count in zip(np.linspace(0.25, 0.7, len(epochs) - 1), epochs[:-1]):
            shorter = aggregate([r for r in records if r.epochs == count], metric, key)
            for row, cells in shorter.items():
                right.plot(list(cells), [c.mean for c in cells.values()], marker=".", color=str(shade), linewidth=1,
                           label=f"{row} ({count} ep)")
        right.set_ylabel(f"{ylabel}, shorter runs (grey)")
    _temperature_axis(axis, temps)
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=7, loc="best", frameon=False)
    axis.set_title("accuracy vs temperature (band: +-1 std over seeds)")
    return figure


def _longest(records: list[Record]) -> tuple[list[Record], bool]:
    """The runs with the most epochs when the number of epochs varies (and whether it does)."""
    epochs = sorted({r.epochs for r in records})
    varies = len(epochs) > 1 and any("epochs" in r.setting for r in records)
    return ([r for r in records if r.epochs == epochs[-1]] if varies else records), varies


def by_objective(records: list[Record], metric: str, ylabel: str, objectives: list[str], title: str) -> Figure:
    """One line per objective and setting (mean over seeds, longest runs), as in the study's Figs. 1 and 5;
    shared fixed-T KD is drawn in black."""
    chosen, varies = _longest([r for r in records if r.objective in objectives])
    table = aggregate(chosen, metric, key=lambda r: r.without("epochs") if varies else r.label)
    is_kd = {r.without("epochs") if varies else r.label: r.objective == "kd" for r in chosen}
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    for index, (row, cells) in enumerate(table.items()):
        style = dict(linewidth=2.4, color="black") if is_kd[row] else dict(linewidth=1.3, color=plt.cm.tab10(index % 10))
        axis.plot(list(cells), [c.mean for c in cells.values()], marker="o", label=row, **style)
    _own_temperature_lines(axis, aggregate_points(chosen, metric, key=lambda r: r.without("epochs") if varies else r.label),
                           len(table))
    _temperature_axis(axis, temperatures_of(table) or [1.0])
    axis.set_ylabel(ylabel)
    axis.set_title(title + (f" ({chosen[0].epochs} epochs)" if varies else ""))
    axis.legend(fontsize=7, frameon=False, ncol=2)
    return figure


def profiles(teachers: list[dict], top_k: int = 20) -> Figure:
    """Each teacher's average sorted softmax (top ``top_k`` classes), one panel per T (Fig. 4)."""
    temps = sorted({float(t) for teacher in teachers for t in teacher["diagnostics"]["profiles"]})
    columns = min(3, len(temps))
    rows = int(np.ceil(len(temps) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.3 * rows), squeeze=False)
    for axis, t in zip(axes.flat, temps):
        for index, teacher in enumerate(teachers):
            profile = teacher["diagnostics"]["profiles"][f"{t:g}"][:top_k]
            name = f"{teacher['config']['teacher']['name']} {teacher['teacher_id'][:6]}"
            axis.plot(range(1, len(profile) + 1), profile, marker=".", color=plt.cm.tab10(index % 10), label=name)
        axis.set_title(f"T = {t:g}")
        axis.set_xlabel("rank")
    for axis in list(axes.flat)[len(temps):]:
        axis.set_visible(False)
    axes.flat[0].set_ylabel("mean sorted probability")
    axes.flat[0].legend(fontsize=6, frameon=False)
    figure.suptitle("teachers' average sorted temperature-scaled softmax")
    figure.tight_layout()
    return figure


def signal_objectives(records: list[Record]) -> list[str]:
    present = {r.objective for r in records}
    return ["kd", *[s for s in SIGNALS if s in present]] if present & set(SIGNALS) else []


def method_objectives(records: list[Record]) -> list[str]:
    present = [o for o in dict.fromkeys(r.objective for r in records) if o and o not in SIGNALS]
    return present if len(present) > 1 else []

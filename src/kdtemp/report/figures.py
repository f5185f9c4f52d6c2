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

from ..temperature import POLICIES  # noqa: E402
from ..temperature.registry import used_temperature  # noqa: E402
from .tables import (SIGNALS, Cell, Record, aggregate, aggregate_points, best_temperatures, method_name,  # noqa: E402
                     natural_key, readable, relabel, setting_label, temperatures_of, within_best_spread)

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


def _own_temperature_lines(axis, points: dict[str, Cell], first_colour: int, without_kd: set[str]) -> None:
    """Runs without a fixed temperature: a dashed horizontal line at their mean with a +-1 std band
    across the whole T axis, never a point at some T. Methods that set their own temperature (DTS,
    CTKD) say so; cross-entropy-only runs (rows in ``without_kd``) are labelled "no KD"."""
    for index, (row, cell) in enumerate(points.items()):
        colour = plt.cm.tab10((first_colour + index) % 10)
        if row in without_kd:
            label = row if "no KD" in row else f"{row} (no KD)"
        elif row.startswith("CTKD") or " + CTKD" in row:  # "CTKD (learned T)"
            name, _, rest = row.partition(", ")
            label = f"{name} (learned T)" + (f", {rest}" if rest else "")
        else:
            label = row if "learned T" in row or "DTS" in row else f"{row} (own T)"
        axis.axhline(cell.mean, color=colour, linestyle="--", linewidth=1.4, label=label)
        if cell.std:
            axis.axhspan(cell.mean - cell.std, cell.mean + cell.std, color=colour, alpha=0.10, linewidth=0)


def heatmap(table: dict[str, dict[float, Cell]], title: str, row_scale: bool = False,
            label: str = "top-1 (%)") -> Figure:
    """Rows a setting, columns T, colour and text the mean over seeds; the best per row boxed, the
    cells whose mean lies within the best cell's seed std hatched (with a legend saying so; none
    with one seed), so noise does not read as a finding. ``label``: the colour bar's (the metric's
    name). Better values are brighter: for a metric whose lower values are better (the cells' goal
    ``min``), the colour scale is reversed.

    ``row_scale``: each row gets its own colour scale (its worst cell darkest, its best brightest),
    so the differences within a row show even when rows differ a lot in accuracy."""
    lower_is_better = any(cell.goal == "min" for cells in table.values() for cell in cells.values())
    temps, rows = temperatures_of(table), list(table)
    values = np.full((len(rows), len(temps)), np.nan)
    for i, row in enumerate(rows):
        for j, t in enumerate(temps):
            if t in table[row]:
                values[i, j] = table[row][t].mean
    shown = values
    if row_scale:
        low_row = np.nanmin(values, axis=1, keepdims=True)
        span = np.nanmax(values, axis=1, keepdims=True) - low_row
        shown = (values - low_row) / np.where(span > 0, span, 1.0)
    figure, axis = plt.subplots(figsize=(1.0 + 0.75 * len(temps), 0.9 + 0.42 * len(rows)))
    image = axis.imshow(shown, cmap=HEATMAP_CMAP + ("_r" if lower_is_better else ""), aspect="auto")
    axis.set_xticks(range(len(temps)), [f"{t:g}" for t in temps])
    axis.set_yticks(range(len(rows)), rows)
    axis.set_xlabel("temperature T")
    axis.set_title(title + (" (colour: each row on its own scale)" if row_scale else ""))
    low, high = np.nanmin(shown), np.nanmax(shown)
    hatched = None
    for i, row in enumerate(rows):
        best, near = best_temperatures(table[row]), within_best_spread(table[row])
        for j, t in enumerate(temps):
            if np.isnan(values[i, j]):
                continue
            position = (shown[i, j] - low) / (high - low + 1e-12)
            light = (1 - position if lower_is_better else position) < 0.6
            axis.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=8,
                      color="white" if light else "black", fontweight="bold" if t in best else "normal")
            if t in best:
                axis.add_patch(plt.Rectangle((j - 0.48, i - 0.48), 0.96, 0.96, fill=False, edgecolor="red", linewidth=1.6))
            elif t in near:  # not distinguishable from the best by these seeds
                hatched = axis.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1.0, 1.0, fill=False, hatch="///",
                                                       edgecolor="white" if light else "black", linewidth=0,
                                                       alpha=0.55))
    if row_scale:
        figure.colorbar(image, ax=axis, label="within-row position (0 worst, 1 best)", fraction=0.046, pad=0.02)
    else:
        figure.colorbar(image, ax=axis, label=label, fraction=0.046, pad=0.02)
    if hatched is not None:
        from matplotlib.patches import Patch

        handles = [Patch(facecolor="none", edgecolor="red", linewidth=1.6, label="best of the row"),
                   Patch(facecolor="#888888", edgecolor="white", hatch="///", linewidth=0,
                         label="within the best cell's seed std (not distinguishable from it)")]
        figure.canvas.draw()  # under the axis label, wherever the layout put it
        below = axis.xaxis.label.get_window_extent().transformed(figure.transFigure.inverted()).y0
        figure.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, below - 0.01), ncol=2, fontsize=7,
                      frameon=False)
    return figure


PAIR_KEYS = ("dataset", "teacher model", "teacher", "teachers", "student", "init", "student weights")
"""Setting fields that make a teacher/student/dataset pair: the method figure has a panel per pair."""
TRAINING_KEYS = ("optimizer", "batch")
"""Setting fields of the training configuration: the curves have a panel per optimizer x batch."""


def panel_groups(records: list[Record], keys: tuple[str, ...]) -> dict[str, list[Record]]:
    """``{panel title: records}``, one panel per combination of the ``keys`` present in the settings."""
    present = [k for k in keys if any(k in r.setting for r in records)]
    groups: dict[str, list[Record]] = {}
    for record in records:
        title = ", ".join(f"{k}={record.setting[k]}" for k in present if k in record.setting) or ""
        groups.setdefault(title, []).append(record)
    return dict(sorted(groups.items(), key=lambda item: natural_key(item[0])))


def _panels(count: int, width: float = 5.2, height: float = 3.4):
    columns = min(count, 2)
    rows = int(np.ceil(count / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    for axis in list(axes.flat)[count:]:
        axis.set_visible(False)
    return figure, list(axes.flat)[:count]


def _legend_outside(figure: Figure, axes: list) -> None:
    """One legend for the figure, right of the panels (never over an axis label or a curve)."""
    handles, labels = {}, {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            if label not in labels:
                handles[label], labels[label] = handle, label
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="upper left", bbox_to_anchor=(1.0, 0.98),
                      fontsize=7, frameon=False)
    figure.tight_layout()


def _constant_keys(records: list[Record]) -> list[str]:
    """Setting fields with one value across ``records`` (a panel's title or common to all its lines)."""
    keys = {k for r in records for k in r.setting}
    return [k for k in keys if len({r.setting.get(k) for r in records}) == 1]


def curves(records: list[Record], metric: str, ylabel: str, quantity: str = "accuracy") -> Figure:
    """Accuracy vs T per setting, mean with a band of +- one std over seeds; one panel per
    optimizer x batch size (or per dataset) when those vary. When the number of epochs varies, the
    longest runs are drawn in colour and each shorter length in a shade of grey, on a right axis
    (the study's Fig. 3), each labelled with its length."""
    keys = TRAINING_KEYS if any(k in r.setting for r in records for k in TRAINING_KEYS) else ("dataset",)
    groups = panel_groups(records, keys)
    figure, axes = _panels(len(groups))
    for axis, (title, group) in zip(axes, groups.items()):
        _curve_panel(axis, group, metric, ylabel, [k for k in keys])
        if title:
            axis.set_title(title, fontsize=9)
    figure.suptitle(f"{quantity} vs temperature (band: +-1 std over seeds)", fontsize=10)
    _legend_outside(figure, axes + [getattr(a, "_kdtemp_right", a) for a in axes])
    return figure


def _curve_panel(axis, records: list[Record], metric: str, ylabel: str, panel_keys: list[str]) -> None:
    epochs = sorted({r.epochs for r in records})
    longest, varies = _longest(records)
    hidden = panel_keys + _constant_keys(records)  # what the panel's title, or every line, already says
    key, names = _lines(records, hidden + (["epochs"] if varies else []))
    table = relabel(aggregate(longest, metric, key), names)
    temps = temperatures_of(table) or [1.0]
    colours = plt.cm.tab10(np.arange(max(len(table), 1)) % 10)
    for colour, (row, cells) in zip(colours, table.items()):
        t = np.array(list(cells))
        mean = np.array([c.mean for c in cells.values()])
        std = np.array([c.std for c in cells.values()])
        axis.plot(t, mean, marker="o", color=colour, label=row + (f" ({epochs[-1]} ep)" if varies else ""), linewidth=1.6)
        axis.fill_between(t, mean - std, mean + std, color=colour, alpha=0.18, linewidth=0)
    _own_temperature_lines(axis, relabel(aggregate_points(longest, metric, key), names), len(table),
                           {names[key(r)] for r in longest if not r.distills})
    if varies:
        right = axis.twinx()
        right.spines["right"].set_visible(True)
        for shade, count in zip(np.linspace(0.2, 0.75, len(epochs) - 1), epochs[:-1]):
            shorter = relabel(aggregate([r for r in records if r.epochs == count], metric, key), names)
            for index, (row, cells) in enumerate(shorter.items()):
                right.plot(list(cells), [c.mean for c in cells.values()], marker=".", color=str(shade), linewidth=1,
                           label=f"{count} epochs (grey)" if index == 0 else None)
        right.set_ylabel("shorter runs (grey)", fontsize=8)
        axis._kdtemp_right = right
    _temperature_axis(axis, temps)
    axis.set_ylabel(ylabel)


def _lines(records: list[Record], hidden: list[str]):
    """The key that orders a panel's lines (its runs' settings without the ``hidden`` fields) and
    ``{key: the line's label}``: the methods' published names (:meth:`Record.name`)."""
    def key(r: Record) -> str:
        return setting_label({k: v for k, v in r.setting.items() if k not in hidden})

    return key, readable(records, key=key, drop=lambda r: hidden)


def _longest(records: list[Record]) -> tuple[list[Record], bool]:
    """The runs with the most epochs when the number of epochs varies (and whether it does)."""
    epochs = sorted({r.epochs for r in records})
    varies = len(epochs) > 1 and any("epochs" in r.setting for r in records)
    return ([r for r in records if r.epochs == epochs[-1]] if varies else records), varies


def by_objective(records: list[Record], metric: str, ylabel: str, objectives: list[str], title: str) -> Figure:
    """One line per method (mean over seeds, longest runs), one panel per teacher/student/dataset pair,
    as in the study's Figs. 1 and 5: shared fixed-T KD thick and black, every other method its own
    colour and marker, methods that set their own temperature (DTS, CTKD) dashed across the T axis."""
    chosen, varies = _longest([r for r in records if r.objective in objectives])
    groups = panel_groups(chosen, PAIR_KEYS)
    figure, axes = _panels(len(groups))
    markers = "osD^vP*Xh<>"
    for axis, (panel, group) in zip(axes, groups.items()):
        hidden = list(PAIR_KEYS) + [k for k in _constant_keys(group) if k not in ("objective", "policy")]
        order, names = _lines(group, hidden + (["epochs"] if varies else []))

        def key(r, order=order, names=names):
            return names[order(r)]

        table = aggregate(group, metric, key=order)
        table = relabel(table, names)
        is_kd = {key(r): r.objective == "kd" and r.temperature is not None for r in group}
        for index, (row, cells) in enumerate(table.items()):
            style = dict(linewidth=2.6, color="black", marker="o", zorder=3) if is_kd.get(row) else \
                dict(linewidth=1.3, color=plt.cm.tab10(index % 10), marker=markers[index % len(markers)])
            axis.plot(list(cells), [c.mean for c in cells.values()], label=row, **style)
        _own_temperature_lines(axis, relabel(aggregate_points(group, metric, key=order), names), len(table),
                               {key(r) for r in group if not r.distills})
        _temperature_axis(axis, temperatures_of(table) or [1.0])
        axis.set_ylabel(ylabel)
        if panel:
            axis.set_title(panel, fontsize=9)
    figure.suptitle(title + (f" ({chosen[0].epochs} epochs)" if varies else ""), fontsize=10)
    _legend_outside(figure, axes)
    return figure


def _method_name(label: str, distills: bool = True) -> str:
    """A setting label in configuration fields -> the method's published name (what
    :meth:`Record.name` gives a record): ``objective=kd, policy=fixed`` -> ``KD``,
    ``objective=kd, policy=dts, minimum=4, maximum=8`` -> ``DTS [4, 8]``, ``objective=ctkd,
    policy=ctkd`` -> ``CTKD``; a run without a distillation term (``distills`` false) ->
    ``cross-entropy only (no KD)``; labels without an objective stay as they are."""
    parts = dict(part.split("=", 1) for part in label.split(", ") if "=" in part)
    objective, policy = parts.pop("objective", None), parts.pop("policy", "fixed")
    if not distills:
        rest = ", ".join(f"{k}={v}" for k, v in parts.items())
        return method_name(None, distills=False) + (f", {rest}" if rest else "")
    if objective is None:
        return label
    bounds = None
    spec = POLICIES.get(policy)
    if spec is not None and spec.bounded and "minimum" in parts and "maximum" in parts:
        try:
            bounds = (float(parts["minimum"]), float(parts["maximum"]))
            parts.pop("minimum"), parts.pop("maximum")
        except ValueError:
            pass
    name = method_name(objective, policy, True, bounds)  # the paper's name, registered with the objective
    parts.pop("initial", None)
    rest = ", ".join(f"{k}={v}" for k, v in parts.items())
    return name + (f", {rest}" if rest else "")


def profiles(teachers: list[dict], names: dict[str, str] | None = None, top_k: int = 20, log: bool = False) -> Figure:
    """Each teacher's average sorted softmax (top ``top_k`` classes), one panel per T (the study's
    Fig. 4), with the entropy-matched label smoothing of the same average as a dashed grey line (what
    Fig. 5's global smoothing distils from). ``log``: a logarithmic probability axis, where the tail
    differences of about 1e-4 the study discusses show."""
    from ..signals import smoothed_targets, smoothing_for_entropy
    import torch

    names = names or {}
    temps = sorted({float(t) for teacher in teachers for t in teacher["diagnostics"]["profiles"]})
    columns = min(3, len(temps))
    rows = int(np.ceil(len(temps) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.5 * rows), squeeze=False)
    for axis, t in zip(axes.flat, temps):
        for index, teacher in enumerate(teachers):
            profile = np.asarray(teacher["diagnostics"]["profiles"][f"{t:g}"][:top_k])
            name = names.get(teacher["teacher_id"], f"{teacher['config']['teacher']['name']} {teacher['teacher_id'][:6]}")
            ranks = np.arange(1, len(profile) + 1)
            colour = plt.cm.tab10(index % 10)
            axis.plot(ranks, profile, marker=".", color=colour, label=name)
            classes = teacher["diagnostics"].get("classes")
            entropy = (teacher["diagnostics"].get("profile_entropy") or {}).get(f"{t:g}")
            if classes and entropy is not None:  # stores written by older versions lack the entropy
                alpha = smoothing_for_entropy(torch.tensor([entropy], dtype=torch.float64), classes)
                smooth = smoothed_targets(torch.zeros(1, dtype=torch.long), alpha, classes)[0].double().numpy()
                axis.plot(ranks, smooth[:top_k], linestyle="--", color=colour, alpha=0.5, linewidth=1,
                          label=f"{name}: entropy-matched label smoothing")
        if log:
            axis.set_yscale("log")
        axis.set_title(f"T = {t:g}", fontsize=9)
        axis.set_xlabel("rank")
    for axis in list(axes.flat)[len(temps):]:
        axis.set_visible(False)
    axes.flat[0].set_ylabel("mean sorted probability" + (" (log)" if log else ""))
    figure.suptitle("teachers' average sorted temperature-scaled softmax; dashed: label smoothing of equal entropy",
                    fontsize=10)
    _legend_outside(figure, [axes.flat[0]])
    return figure


def temperature_traces(runs: list[dict], label_of) -> Figure | None:
    """The temperature each run that sets its own used over training (mean over seeds per setting),
    against the fraction of training done: DTS per step; CTKD and AKD per epoch (AKD's annealing
    temperature over its phase 1, nothing over its hard-label phase 2); instance-wise DTS per epoch
    as the mean of its samples' temperatures, their interquartile range shaded and, lighter, their
    whole range."""
    series: dict[str, list[tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...] | None]]] = {}
    for run in runs:
        if run["status"] != "done":
            continue
        trace = run.get("temperature_trace") or []
        curve = run["curve"] or []
        spec = used_temperature(run["config"]["student"]).spec
        draws = spec.draws if spec is not None else "epochs"  # a policy no longer registered: its epochs' T
        band = None
        if draws == "steps" and trace:
            values = np.asarray(trace, dtype=float)
            progress = (np.arange(len(values)) + 1) / len(values)
        elif draws == "epochs" and curve:
            rows = [r for r in curve if r.get("temperature") is not None]
            values = np.asarray([r["temperature"] for r in rows], dtype=float)
            progress = np.asarray([r["epoch"] for r in rows], dtype=float) / len(curve)
        elif draws == "distribution" and curve and all(r.get("temperature_distribution") for r in curve):
            spread = [r["temperature_distribution"] for r in curve]
            values = np.asarray([d["mean"] for d in spread], dtype=float)
            band = tuple(np.asarray([d[k] for d in spread], dtype=float) for k in ("q1", "q3", "min", "max"))
            progress = np.asarray([r["epoch"] for r in curve], dtype=float) / len(curve)
        else:
            continue
        if len(values):
            series.setdefault(label_of(run), []).append((progress, values, band))
    if not series:
        return None
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for index, (label, traces) in enumerate(sorted(series.items(), key=lambda item: natural_key(item[0]))):
        length = min(len(v) for _, v, _ in traces)
        colour = plt.cm.tab10(index % 10)
        mean = np.mean([v[:length] for _, v, _ in traces], axis=0)
        x = traces[0][0][:length]
        axis.plot(x, mean, color=colour, linewidth=1.4, marker="o" if length <= 50 else None, markersize=3,
                  label=f"{label} ({len(traces)} seed{'s' if len(traces) > 1 else ''})")
        if traces[0][2] is not None:  # quartiles 1-3, and lighter the whole range
            q1, q3, low, high = (np.mean([b[i][:length] for _, _, b in traces], axis=0) for i in range(4))
            axis.fill_between(x, q1, q3, color=colour, alpha=0.3, linewidth=0)
            axis.fill_between(x, low, high, color=colour, alpha=0.1, linewidth=0)
    axis.set_xlabel("fraction of training")
    axis.set_ylabel("temperature")
    shaded = any(b is not None for traces in series.values() for _, _, b in traces)
    axis.set_title("temperature over training, mean over seeds" + ("\n(shaded: per-sample quartiles 1-3, lighter: min-max)" if shaded
                                                                   else ""), fontsize=10)
    _legend_outside(figure, [axis])
    return figure


def signal_objectives(records: list[Record]) -> list[str]:
    present = {r.objective for r in records}
    return ["kd", *[s for s in SIGNALS if s in present]] if present & set(SIGNALS) else []


def method_objectives(records: list[Record]) -> list[str]:
    present = [o for o in dict.fromkeys(r.objective for r in records) if o and o not in SIGNALS]
    return present if len(present) > 1 else []


def rank_agreement(rows: list, title: str = "Rank agreement of temperatures") -> Figure:
    """Kendall's tau-b of the temperatures' ranking at each fraction of training against the final ranking
    (:func:`kdtemp.report.rank.rank_agreement`), one line per setting; the per-seed spread shaded."""
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    settings: dict[str, list] = {}
    for row in rows:
        settings.setdefault(row.setting, []).append(row)
    for index, (setting, points) in enumerate(settings.items()):
        points = [p for p in points if p.tau is not None]
        if not points:
            continue
        x = [p.fraction for p in points]
        colour = f"C{index % 10}"
        axis.plot(x, [p.tau for p in points], marker="o", markersize=3, color=colour, label=setting)
        spread = [(p.fraction, p.seed_tau, p.seed_tau_sd) for p in points if p.seed_tau is not None and p.seed_tau_sd is not None]
        if spread:
            xs, mean, sd = zip(*spread)
            axis.fill_between(xs, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)], color=colour,
                              alpha=0.15, linewidth=0)
    axis.axhline(0.0, color="grey", linewidth=0.8, linestyle=":")
    axis.set_xlim(0, 1.02)
    axis.set_ylim(-1.05, 1.05)
    axis.set_xlabel("fraction of training")
    axis.set_ylabel("Kendall's tau vs the final ranking")
    axis.set_title(title, fontsize=10)
    if settings:
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure

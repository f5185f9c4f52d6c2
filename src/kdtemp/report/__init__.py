"""``kdtemp report``: the study's tables and figures, from the store alone.

Writes into ``<study>/report/``: ``heatmap.{png,svg}`` and ``heatmap_final.md`` / ``heatmap_best.md``
(rows a setting, columns T, mean over seeds, the best per row marked and the cells within the best
cell's seed std marked too), ``heatmap.csv`` (long form with std, n, the row's name and that mark),
``curves.{png,svg}`` (accuracy vs T with the seed spread; shorter runs in grey),
``methods.{png,svg}`` (the method comparison, when objectives vary), ``profiles.{png,svg}`` and
``teachers.md`` (teachers' sorted softmax per T and relative entropies), ``signals.{png,svg}``
(the teacher-signal ablation, when present), ``runs.csv`` and one self-contained ``index.html``.
Methods are named as their papers name them (``KD``, ``WTTM``, ``DTS [4, 8]``, ``CTKD``), not by
their configuration fields.
Files an earlier report wrote there and this one does not are removed (``.kdtemp-report.json``
lists the report's files); other files in the folder are left alone.
"""

from __future__ import annotations

import csv
import dataclasses
import io

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..study.results import export
from ..study.store import Store
from . import figures
from .rank import rank_agreement, rank_csv_rows, rank_markdown
from .html import image_tag, page, points_html, rows_html, table_html
from .tables import (Metric, Record, aggregate, aggregate_points, evaluation_split, heatmap_csv, heatmap_markdown,
                     method_rows, methods_markdown, points_markdown, readable, records, relabel, teacher_table_markdown,
                     evaluated_teachers, evaluated_teachers_markdown, flagged, generation_rows, generations_markdown,
                     spread, teachers_markdown, teachers_rows)


def _trace_label(run: dict, items: list[Record]) -> str:
    record = next((r for r in items if r.run_id == run["run_id"]), None)
    return record.name() if record is not None else run["label"]


@dataclass
class Report:
    """Where a report's files are."""

    folder: Path
    html: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader should know about what it covers


def resolve_store(target: str | Path) -> Path:
    """A study folder (holding ``study.sqlite``), the store itself, or a study file."""
    path = Path(target)
    if path.is_dir():
        path = path / "study.sqlite"
    elif path.suffix in (".yaml", ".yml"):
        from ..study.layout import store_path
        from ..study.spec import load_study

        path = store_path(load_study(path))
    if not path.is_file():
        from ..config import ConfigError

        raise ConfigError(f"study: no store at {path}; run the study first")
    return path


def other_evaluation_sets(items: list[Record], primary: Metric) -> list[str]:
    """The primary metric on a study's other evaluation sets (a language model's ``rouge_l_<set>``),
    as its finished runs' final metrics name them."""
    names = {key for r in items if r.status == "done" for key in r.metrics if key.startswith(f"{primary.name}_")}
    return sorted(names)


def build_report(target: str | Path, output: str | Path | None = None, row_scale: bool = False) -> Report:
    """Build every table and figure of the study at ``target`` from its store.

    ``row_scale``: the heatmap colours each row on its own scale (differences within rows of very
    different accuracy show); the numbers are the same."""
    store_file = resolve_store(target)
    folder = Path(output) if output else store_file.parent / "report"
    folder.mkdir(parents=True, exist_ok=True)
    with Store(store_file, readonly=True) as store:
        runs, teachers = store.current_runs(), store.teachers()
        shown = {run["run_id"] for run in runs}
        elsewhere = sum(1 for run in store.runs() if run["status"] == "done" and run["run_id"] not in shown)
        preparations = store.preparations()
        prepared = {p["prep_id"]: p["label"] for p in preparations}
        name = store.meta("name", store_file.parent.name)
        primary = Metric(*store.primary())  # the study's primary metric: top-1 for images
        (folder / "runs.csv").write_text(export(None, store, "csv"))
    items = records(runs, prepared)
    metrics = primary.tables  # {"final_top1": "final top-1 (%)", "best_top1": "best-epoch top-1 (%)"}
    final, best = primary.key("final"), primary.key("best")
    final_title, best_title = metrics[final], metrics[best]
    noun = primary.noun[:1].upper() + primary.noun[1:]
    # keyed by the settings' configuration fields (heatmap.csv's setting), shown by the methods'
    # published names (its label column, every table and figure)
    names = readable(items)
    flags = {(names.get(row, row), t) for row, t in flagged(items)}  # cells holding degenerate generations
    keyed = {metric: aggregate(items, metric) for metric in metrics}
    keyed_points = {metric: aggregate_points(items, metric) for metric in metrics}
    tables = {metric: relabel(table, names) for metric, table in keyed.items()}
    points = {metric: relabel(table, names) for metric, table in keyed_points.items()}
    files = [folder / "runs.csv"]
    sections: list[tuple[str, str]] = []

    def add_figure(figure, stem: str, title: str, note: str = "") -> None:
        paths = figures.save(figure, folder, stem)
        files.extend(paths.values())
        sections.append((title, image_tag(paths["png"], stem, title) + (f"<p class='note'>{note}</p>" if note else "")))

    (folder / "heatmap.csv").write_text(heatmap_csv(keyed, keyed_points, names))
    files.append(folder / "heatmap.csv")
    for metric, label in metrics.items():
        path = folder / f"heatmap_{metric.split('_')[0]}.md"
        text = heatmap_markdown(tables[metric], label, flags) if tables[metric] else ""
        path.write_text(text + ("\n" if text and points[metric] else "") + points_markdown(points[metric], label, flags))
        files.append(path)
    if tables[final]:
        add_figure(figures.heatmap(tables[final], f"{final_title}, mean over seeds", row_scale, label=primary.label),
                   "heatmap", f"{noun} heatmap", "Rows: settings; columns: temperature; the best of each row is boxed; "
                   "hatched cells lie within the best cell's seed std (not distinguishable from it by these seeds).")
        sections.append(("Tables", table_html(tables[final], f"{final_title}, mean ± std over seeds; best per row "
                                                             "(and ties) highlighted")
                         + table_html(tables[best], f"{best_title}, mean ± std over seeds; the best "
                                                    "epoch is chosen on the test set (optimistic)")))
        add_figure(figures.curves(items, final, final_title, quantity=primary.noun), "curves", f"{noun} vs temperature",
                   "Methods that set their own temperature (DTS, CTKD) and cross-entropy-only runs (no KD) are "
                   "dashed horizontal lines: one value each, not a point at any T." if points[final] else "")
    if points[final]:
        sections.append(("Runs without a fixed temperature (DTS, CTKD, no KD)",
                         points_html(points[final], f"{final_title}, mean ± std over seeds")))
    for extra in other_evaluation_sets(items, primary):  # a language model's other evaluation sets
        metric = Metric(extra, primary.goal)
        shown = [dataclasses.replace(r, final=r.metrics.get(extra), best=None) for r in items]
        title = metric.title("final")
        table, table_points = relabel(aggregate(shown, "final"), names), relabel(aggregate_points(shown, "final"), names)
        path = folder / f"heatmap_{extra}.md"
        text = heatmap_markdown(table, title, flags) if table else ""
        path.write_text(text + ("\n" if text and table_points else "") + points_markdown(table_points, title, flags))
        files.append(path)
        if table:
            sections.append((f"{metric.noun[:1].upper() + metric.noun[1:]}", table_html(table, f"{title}, mean ± std over seeds")))
            add_figure(figures.curves(shown, "final", title, quantity=metric.noun), f"curves_{extra}",
                       f"{metric.noun} vs temperature")
    agreement = rank_agreement(items, key=lambda r: names.get(r.label, r.label))
    if agreement:  # does the early ranking of T predict the final one? (kdtemp tune's question)
        (folder / "rank_agreement.md").write_text(rank_markdown(agreement))
        rows = rank_csv_rows(agreement)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        (folder / "rank_agreement.csv").write_text(buffer.getvalue())
        files += [folder / "rank_agreement.md", folder / "rank_agreement.csv"]
        add_figure(figures.rank_agreement(agreement), "rank_agreement", "Rank agreement of temperatures over training",
                   "Kendall's tau between the ranking of the temperatures (mean over seeds) at each fraction of training "
                   "and their final ranking; shaded: each seed's own tau, mean ± std. rank_agreement.md gives tau at "
                   "10, 25 and 50% of training and whether the final best T already leads.")
    methods = figures.method_objectives(items)
    if methods:
        add_figure(figures.by_objective(items, final, final_title, methods, "KD approaches"),
                   "methods", "Method comparison")
        rows = method_rows([r for r in items if r.objective in methods], final)
        (folder / "methods.md").write_text(methods_markdown(rows, final_title))
        files.append(folder / "methods.md")
        sections.append(("Methods at their best temperature", rows_html(
            [{**r, "method": r["name"], "gain over best KD": "" if r["gain"] is None else f"{r['gain']:+.2f}",
              "std": spread(r["std"], r["n"]), "KD std": spread(r["kd_std"], r["kd_n"] or 0)} for r in rows],
            ["context", "method", "T", "mean", "std", "n", "gain over best KD", "KD std"])))
    signals = figures.signal_objectives(items)
    if signals:
        add_figure(figures.by_objective(items, final, final_title, signals, "teacher signal"),
                   "signals", "Teacher-signal ablation (the study's Fig. 5)")
    traces = figures.temperature_traces(runs, lambda run: _trace_label(run, items))
    if traces is not None:
        add_figure(traces, "temperatures", "Temperatures over training (DTS, instance-wise DTS, CTKD, AKD)",
                   "DTS per step; CTKD, AKD's annealing temperature (its phase 1) and instance-wise DTS per epoch, "
                   "the last as the mean of its samples' temperatures with their interquartile range shaded and, lighter, "
                   "their whole range.")
    generations = generation_rows(items, names)
    if generations:  # a language model's: each run's generations measured, with their spread over generation seeds
        (folder / "generations.md").write_text(generations_markdown(generations))
        files.append(folder / "generations.md")
        spreads = lambda row, k: "" if row["spreads"].get(k) is None else f"{row['spreads'][k]:.2f}"  # noqa: E731
        shown_metrics = [primary.name] + sorted({k for row in generations for k in row["values"] if k != primary.name})
        sections.append(("Generations", rows_html(
            [{"run": row["run"], "setting": row["name"], "T": "" if row["T"] is None else f"{row['T']:g}",
              "seed": row["seed"], **row["values"], "generation-seed std": spreads(row, primary.name),
              "degenerate": row["degenerate"] or ""} for row in generations],
            ["run", "setting", "T", "seed", *shown_metrics, "generation-seed std", "degenerate"])
            + "<p class='note'>each run's final evaluation; generation-seed std: the spread of the primary metric "
              "over the evaluation's generation seeds (empty: one seed); degenerate: mostly empty, looping, or few "
              "distinct words on some evaluation set.</p>"))
    evaluated = [] if teachers else evaluated_teachers(runs, prepared, primary, preparations)
    if evaluated:  # no teacher diagnostics (a language model's): the teachers as their cohorts evaluated them
        (folder / "teachers.md").write_text(evaluated_teachers_markdown(evaluated, primary, evaluation_split(runs)))
        files.append(folder / "teachers.md")
        shown = [primary.name] + sorted({k for r in evaluated for k in r["metrics"]
                                         if k != primary.name and not k.startswith("seed_sd_")})
        sections.append(("Teachers", rows_html([{"teacher": r["teacher"], "dataset": r["dataset"], **r["metrics"]}
                                                for r in evaluated], ["teacher", "dataset", *shown])
                         + f"<p class='note'>as the cohorts that distilled from them evaluated them, on the "
                           f"{evaluation_split(runs)} split.</p>"))
    if teachers:
        rows = teachers_rows(teachers, runs, prepared, primary)
        split = evaluation_split(runs)
        (folder / "teachers.md").write_text(teachers_markdown(rows, primary, split))
        files.append(folder / "teachers.md")
        table1 = teacher_table_markdown(items, runs, rows, teachers, final, final_title, primary)
        if table1:
            (folder / "table_teachers.md").write_text(table1)
            files.append(folder / "table_teachers.md")
        names = {row["teacher_id"]: f"{row['teacher']} ({row['dataset']})" for row in rows}
        profiled = [t for t in teachers if t["diagnostics"].get("classes", 3) > 2]  # 2 classes: one number says it all
        if profiled:
            add_figure(figures.profiles(profiled, names), "profiles", "Teacher softmax profiles (the study's Fig. 4)",
                       "Dashed: the label smoothing whose entropy equals the average profile's (what global label "
                       "smoothing distils from). profiles_log.png shows the same on a log scale.")
            files.extend(figures.save(figures.profiles(profiled, names, log=True), folder, "profiles_log").values())
        test, train = f"test {primary.short}", f"train {primary.short}"  # the split of each value
        sections.append(("Teachers", rows_html([{**r, test: r[f"test {primary.name}"], train: r["train"]} for r in rows],
                                               ["teacher", "dataset", test, train, "H(p)", "H(p_bar)"])
                         + f"<p class='note'>test: the teacher's {split} split, as the runs that distilled from it "
                           f"measured it; train {primary.short}, H(p), H(p_bar): its un-augmented training split at "
                           "T = 1.</p>"))
    counts = {s: sum(1 for r in runs if r["status"] == s) for s in ("done", "failed", "pending", "running")}
    summary = f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f". Store: {store_file}"
    notes = []
    awaiting = [r for r in runs if r.get("awaiting_evaluation")]
    if awaiting:
        notes.append(f"{len(awaiting)} finished run{'s' if len(awaiting) != 1 else ''} {'were' if len(awaiting) != 1 else 'was'} "
                     "trained under other evaluation settings than the study file's and not evaluated under these yet, "
                     "so they are not in the tables; `kdtemp study run` evaluates them (nothing is trained)")
        summary += ". Note: " + notes[-1] + "."
    if elsewhere:
        notes.append(f"{elsewhere} finished run{'s' if elsewhere != 1 else ''} of the store {'are' if elsewhere != 1 else 'is'} "
                     f"not in this report: it shows the {len(runs)} runs the last `kdtemp study run` planned (with "
                     "its overrides, e.g. seeds=[0]); run the study as you want it reported (finished runs are not "
                     "trained again), then report again")
        summary += ". Note: " + notes[-1] + "."
    failed = [r for r in runs if r["status"] == "failed"]
    if failed:
        sections.append(("Failed runs", rows_html([{"run": r["run_id"], "label": r["label"], "error": r["error"]} for r in failed],
                                                  ["run", "label", "error"])))
    html_path = folder / "index.html"
    html_path.write_text(page(f"kdtemp report: {name}", sections, summary))
    files.append(html_path)
    _remove_stale(folder, files)
    return Report(folder, html_path, files, notes)


REPORT_FILES = {f"{stem}.{ext}" for stem in ("heatmap", "curves", "methods", "signals", "temperatures", "profiles",
                                              "profiles_log") for ext in ("png", "svg")} | {
    "heatmap.csv", "heatmap_final.md", "heatmap_best.md", "methods.md", "teachers.md", "table_teachers.md", "runs.csv",
    "generations.md", "rank_agreement.md", "rank_agreement.csv", "rank_agreement.png", "rank_agreement.svg"}
"""The files a report writes besides index.html (what an earlier kdtemp's report left, without a manifest)."""
MANIFEST = ".kdtemp-report.json"
"""The files the last report wrote into its folder (a later report removes those it does not write again)."""


def _remove_stale(folder: Path, files: list[Path]) -> None:
    """Delete the files an earlier report wrote into ``folder`` that this one did not (a figure of
    methods no longer in the study must not stay beside the fresh ones); record this report's."""
    manifest = folder / MANIFEST
    names = sorted({path.name for path in files if path.parent == folder})
    try:
        earlier = json.loads(manifest.read_text()) if manifest.is_file() else None
    except (OSError, ValueError):
        earlier = None
    if earlier is None:  # a report of an earlier kdtemp (its index.html says so): its files by their names
        index = folder / "index.html"
        ours = index.is_file() and "<title>kdtemp report: " in index.read_text(errors="replace")[:4000]
        earlier = sorted(name for name in REPORT_FILES if ours and (folder / name).is_file())
    for name in earlier if isinstance(earlier, list) else []:
        if isinstance(name, str) and name not in names and "/" not in name and "\\" not in name and not name.startswith("."):
            (folder / name).unlink(missing_ok=True)
    manifest.write_text(json.dumps(names))


__all__ = ["Report", "build_report", "resolve_store"]

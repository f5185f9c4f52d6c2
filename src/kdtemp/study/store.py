"""The results store: one SQLite file per study, written only by the driver.

One row per run (table ``runs``): its cell (axis values), seed, resolved configuration, status
(pending, running, done, failed with the error), timings, the per-epoch curve as the engine
recorded it, and its **primary metric**: the metric's name and goal (``max`` or ``min``) with its
value at the final epoch and at the best epoch (``final_primary``, ``best_primary``,
``best_epoch``), beside every metric at those two epochs (``final``, ``best``: JSON objects keyed as
in the curve, ``top1``, ``train_loss``). Every metric of every epoch is also one row of the
long-form table ``metrics`` (kind, run_id, epoch, split, metric, value): ``kind`` is ``run`` or
``preparation`` (a preparation's id in ``run_id``); a NULL value is a NaN. Preparations (table
``preparations``) are recorded the same way.

``meta`` holds the ``schema_version`` and the study's ``primary_metric`` (``{"name", "goal"}``).
A store written by the release before named metrics (schema 1: ``final_top1`` .. ``best_top5``
columns, top-1 implied) is migrated when it is first opened for writing, in one transaction: every
run is kept, with top-1 (higher is better) as its primary metric, and a failure leaves the file as
it was. Opened read-only, such a store is migrated in memory (the file is not touched), so reports,
exports and advice read both the same way.

Every write is one transaction, so a driver killed at any moment leaves the file consistent and
loses nothing already recorded.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from ..config import ConfigError
from ..engine.results import DEFAULT_PRIMARY, evaluation_id, final_and_best, long_form

SCHEMA_VERSION = 3
"""1: the release before named metrics (``final_top1`` .. ``best_top5``); 2: primary metric and long-form metrics;
3: evaluation apart from training (``evaluation`` / ``evaluation_wanted`` columns, ``evaluations`` table)."""

TABLES = {
    "runs": """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    cohort_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    label TEXT NOT NULL,
    cell TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    epochs INTEGER NOT NULL,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    primary_metric TEXT, primary_goal TEXT, final_primary REAL, best_primary REAL, best_epoch INTEGER,
    final TEXT NOT NULL DEFAULT '{}',
    best TEXT NOT NULL DEFAULT '{}',
    curve TEXT NOT NULL DEFAULT '[]',
    temperature_trace TEXT NOT NULL DEFAULT '[]',
    teacher TEXT,
    seconds REAL NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    evaluation TEXT,
    evaluation_wanted TEXT
)""",
    "metrics": """CREATE TABLE IF NOT EXISTS metrics (
    kind TEXT NOT NULL,
    run_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    split TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (kind, run_id, epoch, split, metric)
) WITHOUT ROWID""",
    "meta": "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "teachers": "CREATE TABLE IF NOT EXISTS teachers (teacher_id TEXT PRIMARY KEY, config TEXT NOT NULL, "
                "diagnostics TEXT NOT NULL)",
    "preparations": """CREATE TABLE IF NOT EXISTS preparations (
    prep_id TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    label TEXT NOT NULL,
    config TEXT NOT NULL,
    weights TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    epochs INTEGER NOT NULL,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    primary_metric TEXT, primary_goal TEXT, final_primary REAL, best_primary REAL, best_epoch INTEGER,
    final TEXT NOT NULL DEFAULT '{}',
    best TEXT NOT NULL DEFAULT '{}',
    curve TEXT NOT NULL DEFAULT '[]',
    seconds REAL NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    evaluation TEXT,
    evaluation_wanted TEXT
)""",
    "evaluations": """CREATE TABLE IF NOT EXISTS evaluations (
    kind TEXT NOT NULL,
    run_id TEXT NOT NULL,
    evaluation_id TEXT NOT NULL,
    settings TEXT NOT NULL,
    metrics TEXT NOT NULL,
    seconds REAL NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    PRIMARY KEY (kind, run_id, evaluation_id)
) WITHOUT ROWID""",
}
SCHEMA = ";\n".join(TABLES.values()) + ";\n"

STATUSES = ("pending", "running", "done", "failed")
RUN, PREPARATION = "run", "preparation"
"""The two kinds of rows of the ``metrics`` table."""
SUMMARY_COLUMNS = ("primary_metric", "primary_goal", "final_primary", "best_primary", "best_epoch", "final", "best")
_JSON_COLUMNS = ("cell", "config", "curve", "temperature_trace", "teacher", "final", "best", "evaluation",
                 "evaluation_wanted")


def damaged(path: Path, detail: str) -> StoreDamaged:
    return StoreDamaged(f"study store {path} is damaged ({detail.splitlines()[0][:120]}); the run folders hold every "
                        "result: rebuild it with `kdtemp study rebuild STUDY_FILE` (the damaged file is kept aside)")


class StoreDamaged(ConfigError):
    """The study's SQLite file is unreadable; the run folders hold what is needed to rebuild it."""


class StoreMigrationFailed(ConfigError):
    """A store of an earlier schema could not be brought up to date; the file was left as it was."""


def _real(value: Any) -> Any:
    """A metric value as a REAL column holds it: a float, and None for NaN (SQLite stores NaN as NULL)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return None if math.isnan(value) else float(value)


def default_goal(metric: str) -> str:
    """``min`` for a loss or a perplexity, ``max`` for anything else."""
    return "min" if metric == "loss" or metric.endswith("_loss") or metric == "perplexity" else "max"


def summarize(result: dict) -> dict[str, Any]:
    """The store's summary of one result, of either form: the engine's ``RunResult`` (``primary_metric``,
    ``primary_goal``, ``final``, ``best``, ``best_epoch``) or a result written before named metrics
    (``final_top1`` .. ``best_top5``, no primary metric: top-1, higher is better). What the result does
    not give is derived from its ``curve``; an old result without a curve keeps its recorded values."""
    curve = result.get("curve") or []
    primary = result.get("primary_metric") or DEFAULT_PRIMARY[0]
    goal = result.get("primary_goal") or (DEFAULT_PRIMARY[1] if primary == DEFAULT_PRIMARY[0] else default_goal(primary))
    derived_final, derived_best, derived_epoch = final_and_best(curve, primary, goal)
    if isinstance(result.get("final"), dict) and (result["final"] or not curve):
        final, best = dict(result["final"]), dict(result.get("best") or {})
        best_epoch = result.get("best_epoch")
    elif curve:
        final, best, best_epoch = derived_final, derived_best, derived_epoch
    else:  # a result of the earlier form without its curve: the values it recorded
        def recorded(prefix: str) -> dict:
            return {k[len(prefix):]: v for k, v in result.items() if k.startswith(prefix) and v is not None
                    and k not in ("best_epoch", "final_primary", "best_primary") and not isinstance(v, (dict, list))}
        final, best, best_epoch = recorded("final_"), recorded("best_"), result.get("best_epoch")
    final = {k: _real(v) for k, v in final.items()}
    best = {k: _real(v) for k, v in best.items()}
    return {"primary_metric": primary, "primary_goal": goal, "final_primary": final.get(primary),
            "best_primary": best.get(primary), "best_epoch": best_epoch, "final": final, "best": best}


def _summary_values(summary: dict) -> tuple:
    return tuple(json.dumps(summary[c]) if c in ("final", "best") else summary[c] for c in SUMMARY_COLUMNS)


def _write_metrics(connection: sqlite3.Connection, kind: str, run_id: str, curve: list[dict]) -> None:
    connection.execute("DELETE FROM metrics WHERE kind = ? AND run_id = ?", (kind, run_id))
    connection.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?)",
                           [(kind, run_id, int(epoch), split, metric, _real(value))
                            for epoch, split, metric, value in long_form(curve)])


def _tables(connection: sqlite3.Connection) -> set[str]:
    return {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def schema_version(connection: sqlite3.Connection) -> int:
    """The schema of an open store: 0 for an empty file, 1 for the release before named metrics."""
    tables = _tables(connection)
    if "meta" in tables:
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None:
            return int(json.loads(row[0]))
    if "runs" not in tables:
        return 0
    columns = {r[1] for r in connection.execute("PRAGMA table_info(runs)")}
    return 1 if "final_top1" in columns else SCHEMA_VERSION


def _migrate_v1(connection: sqlite3.Connection) -> None:
    """Schema 1 -> 2 inside the caller's transaction: runs and preparations take the primary-metric
    columns (top-1, higher is better) computed from their curves, and the curves fill ``metrics``."""
    tables = _tables(connection)
    for name in ("meta", "teachers", "metrics"):
        connection.execute(TABLES[name])
    for table, key, kind in (("runs", "run_id", RUN), ("preparations", "prep_id", PREPARATION)):
        if table not in tables:
            connection.execute(TABLES[table])
            continue
        connection.execute(f"ALTER TABLE {table} RENAME TO {table}_v1")
        connection.execute(TABLES[table])
        old = connection.execute(f"SELECT * FROM {table}_v1").fetchall()
        names = [d[0] for d in connection.execute(f"SELECT * FROM {table}_v1 LIMIT 0").description]
        current = {r[1] for r in connection.execute(f"PRAGMA table_info({table})")}
        kept = [n for n in names if n in current and n not in SUMMARY_COLUMNS]  # final_top1 ... go
        for values in old:
            row = dict(zip(names, values))
            result = {**row, "curve": json.loads(row.get("curve") or "[]")}  # final_top1 ...: an earlier result
            summary = summarize(result)
            columns = kept + list(SUMMARY_COLUMNS)
            connection.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                               (*(row[n] for n in kept), *_summary_values(summary)))
            _write_metrics(connection, kind, row[key], result["curve"])
        moved = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        if moved != len(old):  # every run is kept, or nothing changes
            raise sqlite3.DatabaseError(f"{table}: {moved} of {len(old)} rows copied")
        connection.execute(f"DROP TABLE {table}_v1")
    connection.execute("INSERT OR REPLACE INTO meta VALUES ('primary_metric', ?)",
                       (json.dumps({"name": DEFAULT_PRIMARY[0], "goal": DEFAULT_PRIMARY[1]}),))


def _migrate_v2(connection: sqlite3.Connection) -> None:
    """Schema 2 -> 3: runs and preparations say what evaluation their metrics were measured under and
    which the study asks for (NULL in a store of schema 2: as trained, which its run ids then fixed);
    the ``evaluations`` table holds finished runs evaluated again."""
    tables = _tables(connection)
    for table in ("runs", "preparations"):
        if table not in tables:
            connection.execute(TABLES[table])
            continue
        columns = {r[1] for r in connection.execute(f"PRAGMA table_info({table})")}
        for column in ("evaluation", "evaluation_wanted"):
            if column not in columns:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
    connection.execute(TABLES["evaluations"])


MIGRATIONS = {1: _migrate_v1, 2: _migrate_v2}
"""``version -> the step that brings a store of that schema to the next one``."""


def migrate(connection: sqlite3.Connection, path: Path) -> int:
    """Bring the store on ``connection`` to :data:`SCHEMA_VERSION` in one transaction (nothing
    changes when a step fails: :class:`StoreMigrationFailed`); return the version it had."""
    found = None
    connection.execute("BEGIN IMMEDIATE")  # a second driver opening the same old store waits, then finds it migrated
    try:
        found = version = schema_version(connection)
        while 0 < version < SCHEMA_VERSION:
            MIGRATIONS[version](connection)
            version += 1
        if found:
            connection.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (json.dumps(version),))
        connection.commit()
        return found
    except (sqlite3.Error, ValueError, KeyError, TypeError) as error:
        connection.rollback()
        raise StoreMigrationFailed(
            f"study store {path} was written by an earlier kdtemp (schema {found}) and could not be brought up to "
            f"date ({(str(error).splitlines() or [type(error).__name__])[0][:120]}); "
            "the file is unchanged: rebuild it from the run folders with `kdtemp study rebuild STUDY_FILE`") from None
    except BaseException:
        connection.rollback()
        raise


class Store:
    """Access to ``<study>/study.sqlite``. A damaged file is a :class:`StoreDamaged` error (one line
    saying how to rebuild it), never a traceback. A store of an earlier schema is migrated (see the
    module's docstring): in the file when opened for writing, in memory when ``readonly``."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.connection = None
        try:
            if readonly:
                if not self.path.is_file():
                    raise FileNotFoundError(f"no study store at {self.path}")
                # as_uri() percent-encodes the path, so '#', '?' or '%' in a folder name stay part of it
                self.connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.connection = sqlite3.connect(self.path, timeout=30)
                self.connection.execute("PRAGMA journal_mode=WAL")
            problem = self.connection.execute("PRAGMA quick_check").fetchone()[0]
            if problem == "ok":
                version = schema_version(self.connection)
                if version > SCHEMA_VERSION:
                    raise ConfigError(f"study store {self.path} was written by a newer kdtemp (schema {version}; this "
                                      f"one reads up to {SCHEMA_VERSION}); upgrade kdtemp to read it")
                if readonly and 0 < version < SCHEMA_VERSION:
                    self.connection = self._migrated_copy(self.connection)
                elif not readonly:
                    if 0 < version < SCHEMA_VERSION:
                        migrate(self.connection, self.path)
                    self.connection.executescript(SCHEMA)
                    if version == 0:
                        self.connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                                (json.dumps(SCHEMA_VERSION),))
                        self.connection.commit()
            self.connection.row_factory = sqlite3.Row
            tables = _tables(self.connection)
        except sqlite3.DatabaseError as error:
            self._close_quietly()
            raise damaged(self.path, str(error)) from None
        except BaseException:
            self._close_quietly()
            raise
        if problem != "ok" or not {"runs", "meta", "teachers"} <= tables:
            self.connection.close()
            raise damaged(self.path, problem if problem != "ok" else "tables are missing")

    def _migrated_copy(self, source: sqlite3.Connection) -> sqlite3.Connection:
        """An in-memory copy of a read-only store of an earlier schema, migrated (the file is untouched)."""
        memory = sqlite3.connect(":memory:")
        try:
            source.backup(memory)
        finally:
            source.close()
        migrate(memory, self.path)
        memory.execute("PRAGMA query_only = ON")
        return memory

    def _close_quietly(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except sqlite3.Error:
                pass

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_meta(self, key: str, value: Any) -> None:
        with self.connection:
            self.connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    def primary(self) -> tuple[str, str]:
        """The study's primary metric and its goal (``max`` or ``min``): as recorded with its results,
        else the one most of its runs have, else top-1 (a study with no result yet)."""
        value = self.meta("primary_metric")
        if isinstance(value, dict) and value.get("name"):
            return value["name"], value.get("goal") or default_goal(value["name"])
        row = self.connection.execute(
            "SELECT primary_metric, primary_goal FROM runs WHERE primary_metric IS NOT NULL "
            "GROUP BY primary_metric, primary_goal ORDER BY COUNT(*) DESC, primary_metric LIMIT 1").fetchone()
        return (row[0], row[1] or default_goal(row[0])) if row else DEFAULT_PRIMARY

    def register(self, rows: Iterable[dict]) -> int:
        """Add runs that are not in the store yet (as pending); return how many were new. A run
        already there keeps its status and results and takes the current plan's cohort, position,
        label, cell (the axes it lies on in this version of the study file) and the evaluation settings
        the file asks for (``evaluation``: see :meth:`runs`)."""
        now, added = time.time(), 0
        with self.connection:
            for row in rows:
                cursor = self.connection.execute(
                    "INSERT OR IGNORE INTO runs (run_id, cohort_id, position, label, cell, seed, config, status, epochs, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                    (row["run_id"], row["cohort_id"], row["position"], row["label"], json.dumps(row["cell"]),
                     row["seed"], json.dumps(row["config"]), row["epochs"], now))
                added += cursor.rowcount
                self.connection.execute("UPDATE runs SET cohort_id = ?, position = ?, label = ?, cell = ?, "
                                        "evaluation_wanted = ? WHERE run_id = ?",
                                        (row["cohort_id"], row["position"], row["label"], json.dumps(row["cell"]),
                                         json.dumps(row.get("evaluation") or {}), row["run_id"]))
        return added

    def mark_pending(self, run_ids: list[str]) -> None:
        """Runs that were handed out but did not finish (the driver stopped): back to pending."""
        with self.connection:
            self.connection.executemany(
                "UPDATE runs SET status = 'pending', updated = ? WHERE run_id = ? AND status = 'running'",
                [(time.time(), r) for r in run_ids])

    def mark_running(self, run_ids: list[str]) -> None:
        with self.connection:
            self.connection.executemany(
                "UPDATE runs SET status = 'running', updated = ? WHERE run_id = ? AND status IN ('pending', 'running')",
                [(time.time(), r) for r in run_ids])

    def record(self, result: dict) -> None:
        """Write one run's result: a ``RunResult`` as a dict (or a result of the earlier form, with
        ``final_top1`` ..., see :func:`summarize`), with the teacher's metrics; its curve's metrics
        become its rows of ``metrics``, and its primary metric the study's."""
        summary = summarize(result)
        curve = result.get("curve") or []
        with self.connection:
            self.connection.execute(
                "UPDATE runs SET status = ?, error = ?, epochs_done = ?, "
                + ", ".join(f"{c} = ?" for c in SUMMARY_COLUMNS)
                + ", seconds = ?, curve = ?, temperature_trace = ?, teacher = ?, evaluation = ?, updated = ? WHERE run_id = ?",
                (result.get("status"), result.get("error"), result.get("epochs_done") or 0, *_summary_values(summary),
                 result.get("seconds") or 0.0, json.dumps(curve), json.dumps(result.get("temperature_trace") or []),
                 json.dumps(result.get("teacher")), _measured(result), time.time(), result["run_id"]))
            _write_metrics(self.connection, RUN, result["run_id"], curve)
            self.connection.execute("INSERT OR REPLACE INTO meta VALUES ('primary_metric', ?)", (json.dumps(
                {"name": summary["primary_metric"], "goal": summary["primary_goal"]}),))

    def record_failure(self, run_ids: list[str], error: str) -> None:
        with self.connection:
            self.connection.executemany("UPDATE runs SET status = 'failed', error = ?, updated = ? "
                                        "WHERE run_id = ? AND status != 'done'",  # a finished result is kept
                                        [(error, time.time(), r) for r in run_ids])

    def record_teacher(self, teacher_id: str, config: dict, diagnostics: dict) -> None:
        with self.connection:
            self.connection.execute("INSERT OR REPLACE INTO teachers VALUES (?, ?, ?)",
                                    (teacher_id, json.dumps(config), json.dumps(diagnostics)))

    def register_preparations(self, rows: Iterable[dict]) -> None:
        """Add the study's preparations that the store does not have yet (as pending)."""
        now = time.time()
        with self.connection:
            for row in rows:
                self.connection.execute(
                    "INSERT OR IGNORE INTO preparations (prep_id, stage, label, config, weights, status, epochs, updated)"
                    " VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                    (row["prep_id"], row["stage"], row["label"], json.dumps(row["config"]), row["weights"],
                     row["config"]["epochs"], now))
                self.connection.execute("UPDATE preparations SET stage = ?, label = ?, evaluation_wanted = ? "
                                        "WHERE prep_id = ?", (row["stage"], row["label"],
                                                              json.dumps(row.get("evaluation") or {}), row["prep_id"]))

    def record_preparation(self, prep_id: str, status: str, result: dict | None = None, error: str | None = None) -> None:
        """A preparation's status and, with ``result`` (either form, as :meth:`record`), its metrics."""
        result = result or {}
        summary = summarize(result)
        curve = result.get("curve") or []
        with self.connection:
            self.connection.execute(
                "UPDATE preparations SET status = ?, error = ?, epochs_done = ?, "
                + ", ".join(f"{c} = ?" for c in SUMMARY_COLUMNS)
                + ", curve = ?, seconds = ?, evaluation = ?, updated = ? WHERE prep_id = ?",
                (status, error, result.get("epochs_done") or 0, *_summary_values(summary), json.dumps(curve),
                 result.get("seconds") or 0.0, _measured(result), time.time(), prep_id))
            _write_metrics(self.connection, PREPARATION, prep_id, curve)

    def preparations(self) -> list[dict]:
        """Every preparation, decoded as :meth:`runs` decodes a run."""
        try:
            rows = self.connection.execute("SELECT * FROM preparations ORDER BY stage, label").fetchall()
        except sqlite3.OperationalError:  # a read-only store written before stages existed
            return []
        return [self._as_wanted(PREPARATION, "prep_id", _decode(row)) for row in rows]

    def teachers(self) -> list[dict]:
        rows = self.connection.execute("SELECT * FROM teachers ORDER BY teacher_id").fetchall()
        return [{"teacher_id": r["teacher_id"], "config": json.loads(r["config"]), "diagnostics": json.loads(r["diagnostics"])}
                for r in rows]

    def runs(self, run_ids: Iterable[str] | None = None) -> list[dict]:
        """Every run (or those named), decoded, in the study's order.

        Besides its columns, a run has ``final_<metric>`` and ``best_<metric>`` for every metric of
        its ``final`` and ``best`` epochs (``final_top1``, ``best_test_loss``).

        Its metrics are those of the evaluation the study file asks for (``evaluation_wanted``). A
        finished run trained under other evaluation settings (``evaluation``) takes its ``final``
        metrics from its evaluation again under the wanted ones (:meth:`record_evaluation`), with
        ``reevaluated: True`` and no best epoch (only the final weights are kept); until that evaluation
        is recorded it has no metrics and ``awaiting_evaluation: True``."""
        rows = self.connection.execute("SELECT * FROM runs ORDER BY cohort_id, position").fetchall()
        wanted = set(run_ids) if run_ids is not None else None
        return [self._as_wanted(RUN, "run_id", _decode(r)) for r in rows if wanted is None or r["run_id"] in wanted]

    def record_evaluation(self, kind: str, run_id: str, settings: dict, metrics: dict, seconds: float = 0.0) -> None:
        """A finished run's (or preparation's) final weights evaluated under ``settings``."""
        with self.connection:
            self.connection.execute("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?)",
                                    (kind, run_id, evaluation_id(settings), json.dumps(settings, sort_keys=True),
                                     json.dumps({k: _real(v) for k, v in metrics.items()}), seconds, time.time()))

    def evaluations(self, kind: str, run_id: str) -> dict[str, dict]:
        """``{evaluation id: {"settings", "metrics", "seconds"}}`` of one run or preparation."""
        rows = self.connection.execute("SELECT evaluation_id, settings, metrics, seconds FROM evaluations "
                                       "WHERE kind = ? AND run_id = ?", (kind, run_id)).fetchall()
        return {r[0]: {"settings": json.loads(r[1]), "metrics": json.loads(r[2]), "seconds": r[3]} for r in rows}

    def evaluated(self, kind: str, run_id: str, settings: dict) -> dict | None:
        """A run's (or preparation's) evaluation under ``settings`` (``settings``, ``metrics``, ``seconds``), or None."""
        row = self.connection.execute("SELECT settings, metrics, seconds FROM evaluations WHERE kind = ? AND run_id = ? "
                                      "AND evaluation_id = ?", (kind, run_id, evaluation_id(settings))).fetchone()
        return None if row is None else {"settings": json.loads(row[0]), "metrics": json.loads(row[1]), "seconds": row[2]}

    def awaiting_evaluation(self, kind: str = RUN) -> list[dict]:
        """Finished runs (or preparations) whose metrics were measured under other evaluation settings
        than the study file asks for and that have no evaluation under those yet (:meth:`runs`)."""
        rows = self.runs() if kind == RUN else self.preparations()
        return [row for row in rows if row.get("awaiting_evaluation")]

    def _as_wanted(self, kind: str, key: str, row: dict) -> dict:
        measured, wanted = row.get("evaluation"), row.get("evaluation_wanted")
        if row.get("status") != "done" or measured is None or wanted is None or measured == wanted:
            return row
        found = self.evaluated(kind, row[key], wanted)
        for which in ("final", "best"):
            for metric in row.get(which) or {}:
                row.pop(f"{which}_{metric}", None)
        row.update(best={}, best_primary=None, best_epoch=None)
        if found is None:
            row.update(final={}, final_primary=None, awaiting_evaluation=True)
            return row
        final = {k: v for k, v in (row.get("final") or {}).items() if k.startswith("train")}  # training's own
        final.update(found["metrics"])
        row.update(final=final, final_primary=final.get(row.get("primary_metric")), reevaluated=True)
        for metric, value in final.items():
            row[f"final_{metric}"] = value
        return row

    def current_runs(self) -> list[dict]:
        """The runs of the study file as it was last registered (a store keeps the runs of earlier
        versions of the file too; they are not part of the current study's tables)."""
        ids = self.meta("run_ids")
        return self.runs(ids) if ids is not None else self.runs()

    def metrics(self, run_ids: Iterable[str] | None = None, kind: str = RUN) -> list[tuple[str, int, str, str, float | None]]:
        """Long-form metrics ``(run_id, epoch, split, metric, value)`` of every run (or those named;
        ``kind="preparation"``: of the preparations), by run, epoch, split and metric."""
        rows = self.connection.execute("SELECT run_id, epoch, split, metric, value FROM metrics WHERE kind = ? "
                                       "ORDER BY run_id, epoch, split, metric", (kind,)).fetchall()
        wanted = set(run_ids) if run_ids is not None else None
        return [tuple(r) for r in rows if wanted is None or r[0] in wanted]

    def counts(self, run_ids: Iterable[str] | None = None) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        wanted = set(run_ids) if run_ids is not None else None
        for run_id, status in self.connection.execute("SELECT run_id, status FROM runs"):
            if wanted is None or run_id in wanted:
                counts[status] += 1
        return counts


def _measured(result: dict) -> str | None:
    """The evaluation settings a result was measured under (JSON), or None for a result that does not say."""
    evaluation = result.get("evaluation")
    return json.dumps(evaluation) if isinstance(evaluation, dict) else None


def _decode(row: sqlite3.Row) -> dict:
    item = dict(row)
    for key in _JSON_COLUMNS:
        if key in item:
            item[key] = json.loads(item[key]) if item[key] is not None else None
    for which in ("final", "best"):
        for metric, value in (item.get(which) or {}).items():
            item.setdefault(f"{which}_{metric}", value)
    return item

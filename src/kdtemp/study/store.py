"""The results store: one SQLite file per study, written only by the driver.

One row per run: its cell (axis values), seed, resolved configuration, status (pending, running,
done, failed with the error), final and best-epoch top-1/top-5, the per-epoch curve and timings.
Every write is one transaction, so a driver killed at any moment leaves the file consistent and
loses nothing already recorded.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from ..config import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
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
    final_top1 REAL, final_top5 REAL, best_top1 REAL, best_top5 REAL, best_epoch INTEGER,
    curve TEXT NOT NULL DEFAULT '[]',
    temperature_trace TEXT NOT NULL DEFAULT '[]',
    teacher TEXT,
    seconds REAL NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS teachers (teacher_id TEXT PRIMARY KEY, config TEXT NOT NULL, diagnostics TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS preparations (
    prep_id TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    label TEXT NOT NULL,
    config TEXT NOT NULL,
    weights TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    epochs INTEGER NOT NULL,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    final_top1 REAL, final_top5 REAL,
    curve TEXT NOT NULL DEFAULT '[]',
    seconds REAL NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
"""

STATUSES = ("pending", "running", "done", "failed")


def damaged(path: Path, detail: str) -> StoreDamaged:
    return StoreDamaged(f"study store {path} is damaged ({detail.splitlines()[0][:120]}); the run folders hold every "
                        "result: rebuild it with `kdtemp study rebuild STUDY_FILE` (the damaged file is kept aside)")
RESULT_COLUMNS = ("status", "error", "epochs_done", "final_top1", "final_top5", "best_top1", "best_top5",
                  "best_epoch", "seconds")


class StoreDamaged(ConfigError):
    """The study's SQLite file is unreadable; the run folders hold what is needed to rebuild it."""


class Store:
    """Access to ``<study>/study.sqlite``. A damaged file is a :class:`StoreDamaged` error (one line
    saying how to rebuild it), never a traceback."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
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
                self.connection.executescript(SCHEMA)
            self.connection.row_factory = sqlite3.Row
            problem = self.connection.execute("PRAGMA quick_check").fetchone()[0]
            tables = {r[0] for r in self.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            raise damaged(self.path, str(error)) from None
        if problem != "ok" or not {"runs", "meta", "teachers"} <= tables:
            self.connection.close()
            raise damaged(self.path, problem if problem != "ok" else "tables are missing")

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

    def register(self, rows: Iterable[dict]) -> int:
        """Add runs that are not in the store yet (as pending); return how many were new. A run
        already there keeps its status and results and takes the current plan's cohort, position,
        label and cell (the axes it lies on in this version of the study file)."""
        now, added = time.time(), 0
        with self.connection:
            for row in rows:
                cursor = self.connection.execute(
                    "INSERT OR IGNORE INTO runs (run_id, cohort_id, position, label, cell, seed, config, status, epochs, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                    (row["run_id"], row["cohort_id"], row["position"], row["label"], json.dumps(row["cell"]),
                     row["seed"], json.dumps(row["config"]), row["epochs"], now))
                added += cursor.rowcount
                self.connection.execute("UPDATE runs SET cohort_id = ?, position = ?, label = ?, cell = ? WHERE run_id = ?",
                                        (row["cohort_id"], row["position"], row["label"], json.dumps(row["cell"]),
                                         row["run_id"]))
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
        """Write one run's result (a ``RunResult`` as a dict, plus the teacher's metrics)."""
        values = [result.get(c) for c in RESULT_COLUMNS]
        with self.connection:
            self.connection.execute(
                f"UPDATE runs SET {', '.join(f'{c} = ?' for c in RESULT_COLUMNS)}, curve = ?, temperature_trace = ?,"
                " teacher = ?, updated = ? WHERE run_id = ?",
                (*values, json.dumps(result.get("curve", [])), json.dumps(result.get("temperature_trace", [])),
                 json.dumps(result.get("teacher")), time.time(), result["run_id"]))

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
                self.connection.execute("UPDATE preparations SET stage = ?, label = ? WHERE prep_id = ?",
                                        (row["stage"], row["label"], row["prep_id"]))

    def record_preparation(self, prep_id: str, status: str, result: dict | None = None, error: str | None = None) -> None:
        result = result or {}
        with self.connection:
            self.connection.execute(
                "UPDATE preparations SET status = ?, error = ?, epochs_done = ?, final_top1 = ?, final_top5 = ?,"
                " curve = ?, seconds = ?, updated = ? WHERE prep_id = ?",
                (status, error, result.get("epochs_done", 0), result.get("final_top1"), result.get("final_top5"),
                 json.dumps(result.get("curve", [])), result.get("seconds", 0.0), time.time(), prep_id))

    def preparations(self) -> list[dict]:
        try:
            rows = self.connection.execute("SELECT * FROM preparations ORDER BY stage, label").fetchall()
        except sqlite3.OperationalError:  # a read-only store written before stages existed
            return []
        out = []
        for row in rows:
            item = dict(row)
            item["config"], item["curve"] = json.loads(item["config"]), json.loads(item["curve"])
            out.append(item)
        return out

    def teachers(self) -> list[dict]:
        rows = self.connection.execute("SELECT * FROM teachers ORDER BY teacher_id").fetchall()
        return [{"teacher_id": r["teacher_id"], "config": json.loads(r["config"]), "diagnostics": json.loads(r["diagnostics"])}
                for r in rows]

    def runs(self, run_ids: Iterable[str] | None = None) -> list[dict]:
        """Every run (or those named), decoded, in the study's order."""
        rows = self.connection.execute("SELECT * FROM runs ORDER BY cohort_id, position").fetchall()
        wanted = set(run_ids) if run_ids is not None else None
        return [_decode(r) for r in rows if wanted is None or r["run_id"] in wanted]

    def current_runs(self) -> list[dict]:
        """The runs of the study file as it was last registered (a store keeps the runs of earlier
        versions of the file too; they are not part of the current study's tables)."""
        ids = self.meta("run_ids")
        return self.runs(ids) if ids is not None else self.runs()

    def counts(self, run_ids: Iterable[str] | None = None) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        for run in self.runs(run_ids):
            counts[run["status"]] += 1
        return counts


def _decode(row: sqlite3.Row) -> dict:
    run = dict(row)
    for key in ("cell", "config", "curve", "temperature_trace", "teacher"):
        run[key] = json.loads(run[key]) if run[key] is not None else None
    return run

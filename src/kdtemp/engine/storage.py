"""Per-run folders: resolved config, metrics, checkpoint and event log, always written atomically.

The checkpoint is the source of truth for where a run stands. On every (re)start the engine
brings the other files in line with it (:meth:`RunFolder.reconcile`): an epoch that a kill left
out of ``events.jsonl`` is restored from the checkpoint's curve, an epoch the checkpoint does not
have is dropped, so no epoch appears twice or goes missing, and ``metrics.json`` is rewritten.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import yaml

from ..files import (IntegrityError, atomic_write_text, load_verified, quarantine, remove_stale_temporaries,
                     save_verified)

__all__ = ["CheckpointError", "RunFolder", "atomic_save", "atomic_write_text"]


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename, with a checksum verified on load."""
    save_verified(obj, Path(path))


class CheckpointError(ValueError):
    """A run's checkpoint cannot be read (damaged, or not written by kdtemp)."""


class RunFolder:
    """``<root>/<run_id>/``: ``config.yaml``, ``metrics.json``, ``checkpoint.pt``, ``events.jsonl``."""

    def __init__(self, root: str | Path, run_id: str) -> None:
        self.path = Path(root) / run_id

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    def write_config(self, resolved: dict) -> None:
        remove_stale_temporaries(self.path)
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))

    def write_metrics(self, metrics: dict) -> None:
        atomic_write_text(self.metrics_path, json.dumps(metrics, indent=1))

    def read_metrics(self) -> dict | None:
        try:
            return json.loads(self.metrics_path.read_text()) if self.metrics_path.is_file() else None
        except ValueError:
            return None

    @property
    def samples_path(self) -> Path:
        return self.path / "samples"

    def write_samples(self, name: str, rows: list[dict]) -> None:
        """``samples/<name>.jsonl``: an evaluation's rows (a language model's prompts, references, outputs
        and seeds), one JSON object a line, written whole and atomically (the latest epoch's)."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"a samples file needs a plain name; got {name!r}")
        atomic_write_text(self.samples_path / f"{name}.jsonl",
                          "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))

    def append_event(self, event: dict) -> None:
        """Append one line to ``events.jsonl`` (a record of each finished epoch, in order)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.events_path, "a") as handle:
            handle.write(json.dumps(event) + "\n")

    def read_events(self) -> list[dict]:
        """The event log; a line cut short by a kill is skipped."""
        if not self.events_path.is_file():
            return []
        events = []
        for line in self.events_path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def reconcile(self, epochs_done: int, curve: list[dict], status: str) -> None:
        """Make ``events.jsonl`` hold exactly one line per epoch the checkpoint has (``curve``),
        in order: lines a kill left out come back from the curve, lines past the checkpoint go."""
        kept: dict[int, dict] = {}
        for event in self.read_events():
            epoch = event.get("epoch")
            if isinstance(epoch, int) and epoch <= epochs_done and epoch not in kept:
                kept[epoch] = event
        for record in curve:
            epoch = record["epoch"]
            if epoch not in kept and epoch <= epochs_done:
                kept[epoch] = {"epoch": epoch, "status": "running", "time": None, "restored_from": "checkpoint"}
        if epochs_done and status in ("done", "failed") and epochs_done in kept:
            kept[epochs_done] = {**kept[epochs_done], "status": status}
        lines = "".join(json.dumps(kept[e]) + "\n" for e in sorted(kept))
        current = self.events_path.read_text() if self.events_path.is_file() else ""
        if lines != current:
            atomic_write_text(self.events_path, lines)

    def save_checkpoint(self, checkpoint: dict) -> None:
        atomic_save(checkpoint, self.checkpoint_path)

    def load_checkpoint(self) -> dict | None:
        """The run's checkpoint (verified against its checksum; read with ``weights_only=True``,
        so it never runs code), or None. A damaged one is a :class:`CheckpointError`."""
        if not self.checkpoint_path.is_file():
            return None
        try:
            loaded = load_verified(self.checkpoint_path)
        except pickle.UnpicklingError:
            raise CheckpointError(f"checkpoint {self.checkpoint_path} holds Python objects that kdtemp never loads "
                                  "(it was not written by kdtemp)") from None
        except IntegrityError as error:
            raise CheckpointError(f"checkpoint {error}") from None
        if not isinstance(loaded, dict) or "state" not in loaded or "model" not in loaded:
            raise CheckpointError(f"checkpoint {self.checkpoint_path} is not a kdtemp run checkpoint")
        return loaded

    def discard_checkpoint(self, reason: str) -> Path:
        """Move a damaged checkpoint aside and empty the event log: the run starts again from scratch."""
        moved = quarantine(self.checkpoint_path, reason)
        if self.events_path.is_file():
            quarantine(self.events_path, reason)
        return moved

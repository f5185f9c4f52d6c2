"""Per-run folders: resolved config, metrics and checkpoint, always written atomically."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
import yaml


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, temporary)
    os.replace(temporary, path)


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

    def write_config(self, resolved: dict) -> None:
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))

    def write_metrics(self, metrics: dict) -> None:
        atomic_write_text(self.metrics_path, json.dumps(metrics, indent=1))

    def read_metrics(self) -> dict | None:
        return json.loads(self.metrics_path.read_text()) if self.metrics_path.is_file() else None

    def append_event(self, event: dict) -> None:
        """Append one line to ``events.jsonl`` (a record of each finished epoch, in order)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "events.jsonl", "a") as handle:
            handle.write(json.dumps(event) + "\n")

    def read_events(self) -> list[dict]:
        path = self.path / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    def save_checkpoint(self, checkpoint: dict) -> None:
        atomic_save(checkpoint, self.checkpoint_path)

    def load_checkpoint(self) -> dict | None:
        """The run's checkpoint (read with ``weights_only=True``: never runs code), or None."""
        if not self.checkpoint_path.is_file():
            return None
        try:
            return torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            if "weights only" in str(error).lower():
                raise CheckpointError(f"checkpoint {self.checkpoint_path} holds Python objects that kdtemp never loads "
                                      "(it was not written by kdtemp)") from None
            raise CheckpointError(f"checkpoint {self.checkpoint_path} is not readable ({error})") from None
        except (RuntimeError, EOFError, OSError, ValueError) as error:
            first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"checkpoint {self.checkpoint_path} is not readable ({first})") from None

"""Per-epoch logs of a run: ``metrics.csv`` always, TensorBoard and Weights & Biases when asked.

Every run folder gets ``metrics.csv`` (one row per finished epoch: epoch, train loss, test top-1,
top-5 and loss, temperature, learning rate), rewritten from the run's curve so it always agrees
with its checkpoint. TensorBoard (``logging.tensorboard: true``, needs ``pip install
'kdtemp[tensorboard]'``) writes event files to ``<run>/tensorboard/``; Weights & Biases
(``logging.wandb: true``, needs ``pip install 'kdtemp[wandb]'``) logs each run as a W&B run whose
id is the kdtemp run id, so a resumed run continues the same W&B run. Both are off by default and
imported only when on. They log what the run records, after the epoch: they never change a result,
so they are not part of a run's identity.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import require
from ..files import atomic_write_text

CSV_COLUMNS = ("epoch", "train_loss", "top1", "top5", "test_loss", "temperature", "lr")


@dataclass
class LoggingConfig:
    """Optional experiment trackers (``metrics.csv`` is always written)."""

    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "kdtemp"
    wandb_entity: str | None = None

    def validate(self, path: str = "logging") -> None:
        if self.tensorboard:
            require(importlib.util.find_spec("tensorboard") is not None, f"{path}.tensorboard",
                    "needs the tensorboard package: pip install 'kdtemp[tensorboard]'")
        if self.wandb:
            require(importlib.util.find_spec("wandb") is not None, f"{path}.wandb",
                    "needs the wandb package: pip install 'kdtemp[wandb]'")


def metrics_csv(curve: list[dict]) -> str:
    """The per-epoch curve as CSV text (``CSV_COLUMNS``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for record in curve:
        writer.writerow({**record, "test_loss": record.get("test_loss")})
    return buffer.getvalue()


def write_csv(folder: Path, curve: list[dict]) -> None:
    """``<folder>/metrics.csv`` from the run's curve (atomically: it always matches some epoch)."""
    atomic_write_text(Path(folder) / "metrics.csv", metrics_csv(curve))


class RunLoggers:
    """The trackers of one run; :meth:`log` is called after each finished epoch."""

    def __init__(self, config: LoggingConfig, folder: Path, run_id: str, label: str, details: dict[str, Any],
                 next_epoch: int) -> None:
        self.folder, self.writer, self.wandb_run = folder, None, None
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # a resumed run drops what an interrupted attempt logged past its checkpoint
            self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"), purge_step=next_epoch)
        if config.wandb:
            import wandb

            self.wandb_run = wandb.init(project=config.wandb_project, entity=config.wandb_entity, id=run_id,
                                        name=label, config=details, resume="allow", dir=str(folder),
                                        reinit="create_new")

    def log(self, curve: list[dict]) -> None:
        """Write ``metrics.csv`` and send the last epoch to the trackers."""
        write_csv(self.folder, curve)
        if not curve:
            return
        last = curve[-1]
        scalars = {key: last[key] for key in CSV_COLUMNS[1:] if last.get(key) is not None}
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, last["epoch"])
            self.writer.flush()
        if self.wandb_run is not None:
            self.wandb_run.log({**scalars, "epoch": last["epoch"]}, step=last["epoch"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()

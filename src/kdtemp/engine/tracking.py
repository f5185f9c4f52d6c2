"""Per-epoch logs of a run: ``metrics.csv`` always, TensorBoard and Weights & Biases when asked.

Every run folder gets ``metrics.csv`` (one row per finished epoch, the fields of the run's curve:
epoch, training loss, the task's metrics by name (images: top-1, top-5, test loss), temperature,
learning rate), rewritten from the curve so it always agrees with its checkpoint. TensorBoard
(``logging.tensorboard: true``, needs ``pip install 'kdtemp[tensorboard]'``) writes event files to
``<run>/tensorboard/<label>/`` (so TensorBoard lists a run by its label), with the label and the
run's configuration as a text summary; Weights & Biases
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

import yaml

from ..config import require
from ..files import atomic_write_text

CSV_COLUMNS = ("epoch", "train_loss", "top1", "top5", "test_loss", "temperature", "lr")
"""The columns of an image run's ``metrics.csv`` (any other run's are the fields of its curve)."""


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
    """The per-epoch curve as CSV text: the curve's fields in their order (``CSV_COLUMNS`` for an
    empty curve)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(curve[0]) if curve else CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for record in curve:
        writer.writerow(record)
    return buffer.getvalue()


def write_csv(folder: Path, curve: list[dict]) -> None:
    """``<folder>/metrics.csv`` from the run's curve (atomically: it always matches some epoch)."""
    atomic_write_text(Path(folder) / "metrics.csv", metrics_csv(curve))


def safe_name(label: str) -> str:
    """``label`` as one folder name: path separators and other unsafe characters become ``_``."""
    cleaned = "".join(c if c.isalnum() or c in "-_.,=[]+" else "_" for c in label).strip(".")
    return cleaned[:120] or "run"


class RunLoggers:
    """The trackers of one run; :meth:`log` is called after each finished epoch."""

    def __init__(self, config: LoggingConfig, folder: Path, run_id: str, label: str, details: dict[str, Any],
                 next_epoch: int) -> None:
        self.folder, self.writer, self.wandb_run = folder, None, None
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # a resumed run drops what an interrupted attempt logged past its checkpoint
            self.writer = SummaryWriter(log_dir=str(folder / "tensorboard" / safe_name(label)), purge_step=next_epoch)
            if next_epoch == 1:
                self.writer.add_text("run", f"{label} (run {run_id})\n\n" + "\n".join(
                    f"    {line}" for line in yaml.safe_dump(details, sort_keys=False).splitlines()), 0)
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
        scalars = {key: value for key, value in last.items() if key != "epoch" and value is not None}
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, last["epoch"])
            self.writer.flush()
        if self.wandb_run is not None:
            self.wandb_run.log({**scalars, "epoch": last["epoch"]}, step=last["epoch"])

    def close(self, failed: bool = False) -> None:
        """Close the trackers; the W&B run is finished (``finish`` returns once W&B has written it,
        offline too) with exit code 1 when the kdtemp run failed or training was interrupted."""
        writer, run, self.writer, self.wandb_run = self.writer, self.wandb_run, None, None
        try:
            if writer is not None:
                writer.close()
        finally:
            if run is not None:
                run.finish(exit_code=1 if failed else 0)

"""Teacher preparation: train from scratch or fine-tune, with cross-entropy and label smoothing.

It runs on the cohort engine as a cohort of one CE-only member, then exports ``teacher.pt``, a
kdtemp checkpoint that records the dataset, the epochs and the origin (scratch or fine-tuned,
from which weights) beside the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import require, to_dict
from ..tasks import get_task
from .cohort import run_cohort
from .results import RunResult
from .config import CohortConfig, MemberConfig, ModelConfig, OptimizerConfig, SharedConfig, member_config, require_device, require_precision, require_seed
from ..files import remove_stale_temporaries
from .storage import RunFolder, atomic_save


@dataclass
class TeacherConfig(SharedConfig):
    """How a teacher is prepared: a run without a distillation term (the study's recipe: AdamW,
    cosine, CE with label smoothing 0.1), over the shared fields of any cohort (``data``,
    ``augment``, ``batch_size``, ``data_seed``, ``task``; ``teacher`` must stay empty).
    :meth:`member` is the one run it describes."""

    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=5e-4, weight_decay=0.05))
    epochs: int = 20
    label_smoothing: float = 0.1
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp64"] = "auto"
    output: str = "runs/teacher"

    def validate(self, path: str = "") -> None:
        prefix = f"{path}." if path else ""
        self.validate_shared(prefix)
        require(self.teacher is None, f"{prefix}teacher", "a teacher preparation distils from no teacher; remove it")
        require(self.epochs >= 1, f"{prefix}epochs", f"must be >= 1; got {self.epochs}")
        require(0 <= self.label_smoothing < 1, f"{prefix}label_smoothing", f"must be in [0, 1); got {self.label_smoothing}")
        require_seed(self.seed, f"{prefix}seed")
        require_device(self.device, f"{prefix}device")
        require_precision(self.precision, self.task, f"{prefix}precision")

    def member(self) -> MemberConfig:
        """The preparation as a cohort member: cross-entropy only."""
        return member_config(self.task)(name=f"teacher-{self.model.name}", model=self.model, objective=None,
                                        optimizer=self.optimizer, epochs=self.epochs,
                                        label_smoothing=self.label_smoothing, seed=self.seed)

    def cohort(self) -> CohortConfig:
        return self.with_members([self.member()], device=self.device, precision=self.precision)

    def origin(self) -> dict:
        """How the teacher came to be: trained from scratch, or fine-tuned from given weights."""
        kind = "scratch" if self.model.init == "random" else "finetuned"
        source = self.model.weights or (f"timm:{self.model.name}" if self.model.init == "pretrained" else None)
        return {"kind": kind, "init": self.model.init, "source": source, "epochs": self.epochs}


def prepare_teacher(config: TeacherConfig, progress: bool = True) -> tuple[Path, RunResult]:
    """Train the teacher described by ``config``; return the path of ``teacher.pt`` and the result.

    Re-running with the same output resumes an interrupted preparation.
    """
    output = Path(config.output)
    remove_stale_temporaries(output)
    cohort = config.cohort()
    (result,) = run_cohort(cohort, output=output / "runs", progress=progress)
    if result.status != "done":
        raise RuntimeError(f"teacher preparation failed: {result.error}")
    return export_teacher(config, result.__dict__, output / "runs"), result


def export_teacher(config: TeacherConfig, result: dict, runs_dir: Path) -> Path:
    """Write ``<config.output>/teacher.pt`` from a finished preparation run: the weights of its
    checkpoint, with what produced them (model, dataset, the class names of its outputs in label
    order, epochs, origin, the final primary metric, run id, and what the model's adapter saves with its
    weights: an image model's input normalisation, a text model's Transformers config and tokenizer)
    beside them. Returns its path."""
    checkpoint = RunFolder(runs_dir, result["run_id"]).load_checkpoint()
    path = Path(config.output) / "teacher.pt"
    classes = result["derived"].get("classes") or (checkpoint.get("kdtemp") or {}).get("classes")
    if classes is None:  # a run of an earlier version: from the data's index, where its task has one (images)
        classes = get_task(config.task).data_classes(config.data)  # None: the file records no names
    derived = result["derived"]
    header = checkpoint.get("kdtemp") or {}
    extras = {k: v for k, v in header.items() if k not in ("kind", "model", "run_id", "classes", "normalization")}
    atomic_save({
        "kdtemp": {
            "kind": "teacher", "task": config.task, "model": config.model.name, "dataset": to_dict(config.data),
            "classes": list(classes) if classes is not None else None, "epochs": config.epochs,
            "origin": config.origin(), **_final_primary(result), "run_id": result["run_id"],
            **({"normalization": derived["normalization"]} if "normalization" in derived else {}),
            **extras,  # what else the model's adapter saves with its weights (a text model's config, tokenizer)
        },
        "model": checkpoint["model"],
    }, path)
    return path


def _final_primary(result: dict) -> dict:
    """The final value of the run's primary metric, under its name (``top1`` for images)."""
    primary = result.get("primary_metric", "top1")
    final = result["final"].get(primary) if "final" in result else result.get(f"final_{primary}")
    return {primary: final}

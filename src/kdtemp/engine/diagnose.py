"""Teacher diagnostics on a dataset split without augmentation (the study's Table 1 and Fig. 4):
relative entropies ``H(p)`` and ``H(p_bar)`` at T = 1, sorted softmax profiles per T, and the task's
metrics of the teacher on that split."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from ..diagnostics import shannon_entropy, sorted_profiles, teacher_entropies
from ..tasks import get_task
from ..temperature import STUDY_TEMPERATURES
from .config import SharedConfig
from .runtime import Runtime

DEFAULT_TEMPERATURES = STUDY_TEMPERATURES


def summarize(logits: Tensor, labels: Tensor, scores: dict[str, Tensor],
              temperatures: Iterable[float] = DEFAULT_TEMPERATURES, top_k: int = 20) -> dict:
    """Entropies at T = 1, sorted profiles per T (top ``top_k``), the entropy of each whole sorted
    profile (for the entropy-matched label smoothing of Figs. 4-5), the class count, and the
    task's ``scores`` of these logits (image classification: top-1/top-5; its loss is left out)."""
    profiles = sorted_profiles(logits.cpu(), temperatures, None)
    entropy = {f"{t:g}": float(shannon_entropy(p)) for t, p in profiles.items()}
    metrics = {k: float(v) for k, v in scores.items() if k != "loss"}
    return {**teacher_entropies(logits.cpu(), 1.0), **metrics,
            "samples": int(labels.shape[0]), "classes": int(logits.shape[1]),
            "profiles": {f"{t:g}": p[:top_k].tolist() for t, p in profiles.items()},
            "profile_entropy": entropy}


def diagnose_teacher(shared: SharedConfig, temperatures: Iterable[float] = DEFAULT_TEMPERATURES, top_k: int = 20,
                     split: str = "train", device: str = "auto", precision: str = "auto") -> dict:
    """Diagnostics of ``shared.teacher`` on ``split`` of ``shared.data`` (no augmentation)."""
    if shared.teacher is None:
        raise ValueError("no teacher to diagnose")
    runtime = Runtime.create(device, precision)
    task = get_task(shared.task)
    data = task.open(shared, runtime)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        teacher = task.create_model(shared.teacher, data, runtime, "teacher")
    teacher.module.eval()
    logits, labels = task.split_logits(teacher, data, split, runtime, 512)
    return {"split": split, **summarize(logits, labels, task.scores(logits, labels), temperatures, top_k)}

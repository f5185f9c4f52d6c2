"""Teacher diagnostics on a dataset split without augmentation (the study's Table 1 and Fig. 4):
relative entropies ``H(p)`` and ``H(p_bar)`` at T = 1, sorted softmax profiles per T, accuracy."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

from ..tasks.image.data import ImageSplit, eval_images
from ..diagnostics import sorted_profiles, teacher_entropies
from .cohort import autocast_for, resolve_device
from .config import SharedConfig
from ..tasks.image.evaluate import accuracy, predict

DEFAULT_TEMPERATURES = (1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 20.0, 40.0)


def split_logits(model: nn.Module, split: ImageSplit, resolution: int, center_crop: bool,
                 batch_size: int = 512, precision: str = "auto") -> Tensor:
    """Logits (float32, on the split's device) of ``model`` over the un-augmented ``split``."""
    device = split.images.device
    return predict(model, eval_images(split.images, resolution, center_crop), batch_size,
                   autocast_for(device, precision), device.type == "cuda")


def summarize(logits: Tensor, labels: Tensor, temperatures: Iterable[float] = DEFAULT_TEMPERATURES,
              top_k: int = 20) -> dict:
    """Entropies at T = 1, sorted profiles per T (top ``top_k``), the entropy of each whole sorted
    profile (for the entropy-matched label smoothing of Figs. 4-5), the class count and top-1/top-5."""
    profiles = sorted_profiles(logits.cpu(), temperatures, None)
    scores = {k: float(v) for k, v in accuracy(logits, labels).items()}
    entropy = {f"{t:g}": float(-torch.special.xlogy(p, p).sum()) for t, p in profiles.items()}
    return {**teacher_entropies(logits.cpu(), 1.0), "top1": scores["top1"], "top5": scores["top5"],
            "samples": int(labels.shape[0]), "classes": int(logits.shape[1]),
            "profiles": {f"{t:g}": p[:top_k].tolist() for t, p in profiles.items()},
            "profile_entropy": entropy}


def diagnose_teacher(shared: SharedConfig, temperatures: Iterable[float] = DEFAULT_TEMPERATURES, top_k: int = 20,
                     split: str = "train", device: str = "auto", precision: str = "auto") -> dict:
    """Diagnostics of ``shared.teacher`` on ``split`` of ``shared.data`` (no augmentation)."""
    from ..tasks.image.models import create_model

    if shared.teacher is None:
        raise ValueError("no teacher to diagnose")
    target = resolve_device(device)
    data = shared.data.load(split).to(target)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        teacher = create_model(shared.teacher, data.num_classes, allow_new_head=False).to(target).eval()
    logits = split_logits(teacher, data, shared.data.resolution, shared.augment.random_resized_crop, precision=precision)
    return {"split": split, **summarize(logits, data.labels, temperatures, top_k)}

"""Cached copies of pretrained weights where timm looks for them, for tests without internet."""

from pathlib import Path

import torch

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def plant_hf(hub_root: Path, repo: str, filename: str = "model.safetensors") -> Path:
    """A cached copy under ``<hub_root>/hf/hub`` where ``huggingface_hub.try_to_load_from_cache``
    looks for it (a tiny state dict is enough: preflight checks that it is there, it does not load it)."""
    from safetensors.torch import save_file

    folder = hub_root / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    (folder / "snapshots" / COMMIT).mkdir(parents=True, exist_ok=True)
    save_file({"x": torch.zeros(2)}, str(folder / "snapshots" / COMMIT / filename))
    return folder


def cached_hub(root: Path, names, monkeypatch) -> None:
    """Point the Hugging Face cache at ``<root>/hf/hub`` (for this process and for what
    ``huggingface_hub`` read at import) and plant a copy of the pretrained weights of each model name."""
    import huggingface_hub.constants as constants

    from kdtemp.tasks.image import models

    monkeypatch.setenv("HF_HOME", str(root / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root / "hf" / "hub"))
    for name in names:
        plant_hf(root, models.find_pretrained(name).what)

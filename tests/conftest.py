"""Shared fixtures: tiny, fast, deterministic configurations on scikit-learn's digits."""

import subprocess
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Keep dataset caches out of the user's home: one cache for the whole test session."""
    monkeypatch.setenv("KDTEMP_CACHE", str(tmp_path_factory.getbasetemp() / "kdtemp-cache"))


def shared_data(name: str) -> Path:
    """A file from ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (real data lives in ../shared/data beside the checkout)")
    return path


@pytest.fixture(scope="session")
def cifar10_jpeg_root(tmp_path_factory):
    """The CIFAR-10 JPEG copy (train and test) from ../shared/data, extracted once per session."""
    archive = shared_data("cifar10-jpeg.tar.xz")
    target = tmp_path_factory.mktemp("cifar10-jpeg")
    subprocess.run(["tar", "-xJf", str(archive), "-C", str(target)], check=True)
    return target / "cifar10-jpeg"


@pytest.fixture(scope="session")
def resnet_checkpoints(tmp_path_factory):
    """The CIFAR-10 ResNet checkpoints from ../shared/data, by depth (``resnet20`` -> path)."""
    archive = shared_data("resnet-cifar10-weights.tar")
    target = tmp_path_factory.mktemp("resnet-weights")
    subprocess.run(["tar", "-xf", str(archive), "-C", str(target)], check=True)
    return {p.name.split("-")[0]: p for p in (target / "resnet-cifar10").glob("*.th")}

"""Shared fixtures: tiny, fast, deterministic configurations on scikit-learn's digits."""

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

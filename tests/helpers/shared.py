"""Real data from ``../shared/data`` beside the checkout (``tests/conftest.py`` extracts it once)."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def shared_data(name: str) -> Path:
    """A file from ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (real data lives in ../shared/data beside the checkout)")
    return path

"""Fixtures of the study tests."""

import pytest

from helpers.study import DIGITS_STUDY, table, write_study
from kdtemp.study import load_study, run_study


@pytest.fixture(scope="session")
def inline_table(tmp_path_factory):
    """The 36-run digits study on the inline executor, exported (the executor and driver tests
    compare with it)."""
    path = tmp_path_factory.mktemp("inline")
    study = load_study(write_study(path / "s.yaml", DIGITS_STUDY), output=path / "out")
    counts = run_study(study, progress=False)
    assert counts == {"pending": 0, "running": 0, "done": 36, "failed": 0}
    return table(study)

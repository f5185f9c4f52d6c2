"""Shared fixtures: tiny, fast, deterministic configurations on scikit-learn's digits.

Fixtures used by the tests of more than one folder live here; builders a test imports live in
``tests/helpers/``.
"""

import subprocess

import pytest

from helpers.shared import shared_data
from helpers.trust import study, write_yaml
from kdtemp.study import load_study, run_study


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Keep dataset caches out of the user's home: one cache for the whole test session."""
    monkeypatch.setenv("KDTEMP_CACHE", str(tmp_path_factory.getbasetemp() / "kdtemp-cache"))


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


@pytest.fixture
def marker(tmp_path):
    """Where a planted payload (``helpers.trust.plant``) would leave its mark: it must never run."""
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "a planted payload ran"


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """Every temperature method of the literature in one finished digits study (the
    ``temperature_methods`` preset at T = 1 and 4): one cohort per seed, trained once per session
    for the spec, engine, store and report tests that read it."""
    folder = tmp_path_factory.mktemp("methods")
    path = write_yaml(folder / "s.yaml", study(presets=["temperature_methods"], grid={"student.temperature": [1, 4]}))
    s = load_study(path, output=folder / "out")
    assert run_study(s, progress=False)["done"] == len(s.runs)
    return s

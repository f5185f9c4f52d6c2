"""Fixtures of the text tests: GLUE-layout folders and a tokenizer trained here (nothing downloads)."""

import pytest

pytest.importorskip("transformers", reason="the text task needs the text extra: pip install 'kdtemp[text]'")

from helpers.text import train_tokenizer, write_mrpc, write_sst2  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer_folder(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def sst2_folder(tmp_path_factory):
    return write_sst2(tmp_path_factory.mktemp("glue") / "SST-2")


@pytest.fixture(scope="session")
def mrpc_folder(tmp_path_factory):
    return write_mrpc(tmp_path_factory.mktemp("glue") / "MRPC")

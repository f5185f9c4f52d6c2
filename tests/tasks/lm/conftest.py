"""Fixtures of the language-model tests: instruction folders and a byte-level BPE tokenizer trained
here (nothing downloads)."""

import pytest

pytest.importorskip("transformers", reason="the causal_lm task needs the lm extra: pip install 'kdtemp[lm]'")
pytest.importorskip("rouge_score", reason="the causal_lm task needs the lm extra: pip install 'kdtemp[lm]'")

from helpers.lm import train_tokenizer, write_instructions  # noqa: E402


@pytest.fixture(scope="session")
def lm_tokenizer(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("lm-tokenizer"))


@pytest.fixture(scope="session")
def instructions(tmp_path_factory):
    return write_instructions(tmp_path_factory.mktemp("instructions") / "data", extra_sets={"selfinst": 6})

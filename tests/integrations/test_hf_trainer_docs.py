"""docs/hf-trainer.md's example, executed: the python block after the ``<!-- tested: ... -->`` marker
runs as written, offline, with tiny local models in place of the hub names.

What is replaced, each exactly once (a doc that drifts from these lines fails here, saying which):
the student's and teacher's names (a tiny random GPT-2 each, saved with a byte-level BPE tokenizer
trained in the test, which, like GPT-2's, has no pad token), ``max_steps`` and ``logging_steps``.
Everything else, from loading the tokenizer to ``trainer.train()``, is the doc's own code. After it,
the test checks that training ran and what the collator the example uses makes of examples of
different lengths: the prompt's ``-100`` labels are kept, padding has label ``-100`` and attention 0,
and the EOS target survives a pad token that is EOS.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("datasets")

from helpers.lm import train_tokenizer  # noqa: E402
from kdtemp.integrations.hf_trainer import IGNORE_INDEX, KDTrainer  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "hf-trainer.md"
MARKER = "<!-- tested: tests/integrations/test_hf_trainer_docs.py"
"""The HTML comment that precedes the executed block in the doc."""

STEPS = 3


def example_code(text: str) -> str:
    """The first ```python block after :data:`MARKER` in ``text``; fails when there is none."""
    start = text.find(MARKER)
    assert start >= 0, f"{DOC.name} has no {MARKER!r} comment before the example"
    block = re.search(r"^```python\n(.*?)^```", text[start:], flags=re.MULTILINE | re.DOTALL)
    assert block is not None, f"{DOC.name}: no ```python block after {MARKER!r}"
    return block.group(1)


def substitute(code: str, replacements: list[tuple[str, str]]) -> str:
    """``code`` with each regular expression replaced; each must match exactly once."""
    for pattern, replacement in replacements:
        code, count = re.subn(pattern, replacement, code, flags=re.MULTILINE)
        assert count == 1, f"the example should match {pattern!r} exactly once; it matched {count} times"
    return code


def save_tiny_gpt2(folder: Path, tokenizer_folder: Path, seed: int) -> Path:
    """A random one-layer GPT-2 over the tokenizer of ``tokenizer_folder``, saved with it in ``folder``."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer_folder))
    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(tokenizer), n_positions=128,
                                     bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    transformers.GPT2LMHeadModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def run_example(text: str, root: Path) -> dict:
    """Executes the doc's example in ``root`` (its working directory: ``output_dir`` is relative) with
    tiny local models and :data:`STEPS` optimizer steps logged one by one; returns its globals."""
    tokenizer_folder = train_tokenizer(root / "tokenizer")
    student = save_tiny_gpt2(root / "student", tokenizer_folder, seed=1)
    teacher = save_tiny_gpt2(root / "teacher", tokenizer_folder, seed=2)
    code = substitute(example_code(text), [
        (r'^student_name = "[^"]*"', f"student_name = {str(student)!r}"),
        (r'^teacher_name = "[^"]*"', f"teacher_name = {str(teacher)!r}"),
        (r"\bmax_steps=\d+", f"max_steps={STEPS}"),
        (r"\blogging_steps=\d+", "logging_steps=1"),
    ])
    namespace: dict = {"__name__": "hf_trainer_example"}
    exec(compile(code, f"{DOC.name} (example)", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("hf-trainer-example")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        return run_example(DOC.read_text(), root)


def test_the_documented_example_trains_offline_with_tiny_models(example):
    trainer = example["trainer"]
    assert isinstance(trainer, KDTrainer)
    assert trainer.state.global_step == STEPS
    steps = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(steps) == STEPS and all(math.isfinite(entry["loss"]) and entry["loss"] > 0 for entry in steps)
    temperatures = [entry["kd_temperature"] for entry in steps]
    assert temperatures[0] == 3.0 and temperatures[-1] != 3.0  # the example's DTS starts at 3 and moves
    assert example["tokenizer"].pad_token is not None  # the example set one: the tiny tokenizer has none


def test_the_documented_collator_keeps_the_prompt_masked_and_pads_labels_with_minus_100(example):
    tokenizer, tokenize = example["tokenizer"], example["tokenize"]
    records = [{"prompt": "Give the opposite of up.\nAnswer:", "response": " down"},
               {"prompt": "Repeat: good bad hot cold\nAnswer:", "response": " good bad hot cold"}]
    rows = [tokenize(record) for record in records]
    tokens = [sum(row["attention_mask"]) for row in rows]
    assert tokens[0] < tokens[1]  # examples of different lengths: padding is exercised
    batch = example["trainer"].data_collator(rows)
    width = batch["input_ids"].shape[1]
    assert width >= tokens[1]
    assert batch["attention_mask"].shape == batch["labels"].shape == (2, width)
    for index, row in enumerate(rows):
        size, labels = len(row["input_ids"]), batch["labels"][index]
        assert labels[:size].tolist() == row["labels"]  # the prompt's -100 kept, response and EOS as given
        assert torch.all(labels[size:] == IGNORE_INDEX)
        assert batch["input_ids"][index, :size].tolist() == row["input_ids"]
        assert batch["attention_mask"][index].tolist() == row["attention_mask"] + [0] * (width - size)
        prompt = len(tokenizer(records[index]["prompt"])["input_ids"])
        response = row["labels"][prompt:tokens[index]]
        assert row["labels"][:prompt] == [IGNORE_INDEX] * prompt
        assert response == row["input_ids"][prompt:tokens[index]] and len(response) >= 2
        assert response[-1] == tokenizer.eos_token_id == tokenizer.pad_token_id  # EOS stays a target

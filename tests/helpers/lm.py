"""For the language-model tests: small instruction datasets written in the test, a byte-level BPE
tokenizer trained on their text (GPT-2's kind, with its end-of-text token), and tiny random GPT-2
configs. Nothing downloads."""

from __future__ import annotations

import json
import random
from pathlib import Path

OPPOSITES = {"good": "bad", "hot": "cold", "up": "down", "big": "small", "fast": "slow", "light": "dark",
             "early": "late", "open": "closed", "happy": "sad", "high": "low", "old": "new", "hard": "soft"}
EOS = "<|endoftext|>"


def instruction_records(count: int, seed: int = 0) -> list[dict]:
    """Prompt/response pairs a tiny model can learn: opposites and echoes of short word lists."""
    rng = random.Random(seed)
    words = sorted(OPPOSITES)
    records = []
    for index in range(count):
        if index % 2 == 0:
            word = rng.choice(words)
            records.append({"prompt": f"Give the opposite of {word}.\nAnswer:", "response": f" {OPPOSITES[word]}"})
        else:
            chosen = rng.sample(words, 2)
            records.append({"prompt": f"Repeat: {' '.join(chosen)}\nAnswer:", "response": f" {' '.join(chosen)}"})
    return records


def write_instructions(root: Path, train: int = 64, validation: int = 16, test: int = 12,
                       extra_sets: dict[str, int] | None = None, seed: int = 0) -> Path:
    """The ``instructions`` layout: ``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` (with two
    references per line) and any extra evaluation sets."""
    root.mkdir(parents=True, exist_ok=True)
    sizes = {"train": train, "validation": validation, "test": test, **(extra_sets or {})}
    for offset, (name, count) in enumerate(sizes.items()):
        lines = []
        for record in instruction_records(count, seed + offset):
            if name not in ("train", "validation"):
                record = {**record, "references": [record["response"], record["response"].upper()]}
            lines.append(json.dumps(record))
        (root / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def train_tokenizer(folder: Path, vocab_size: int = 400) -> Path:
    """A GPT-2-style byte-level BPE tokenizer trained on the test records, saved as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [r["prompt"] + r["response"] for r in instruction_records(200)] * 3
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS, unk_token=EOS)
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    return folder


def tiny_gpt2(vocab_size: int = 400, layers: int = 2, width: int = 32, dropout: float = 0.1) -> dict:
    """A random GPT-2 config small enough to train in a test."""
    return {"model_type": "gpt2", "vocab_size": vocab_size, "n_positions": 128, "n_embd": width, "n_layer": layers,
            "n_head": 2, "resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout,
            "bos_token_id": 0, "eos_token_id": 0}


def lm_data(root: Path, tokenizer: Path, cache: Path, **extra) -> dict:
    """The ``data`` mapping of a study or cohort file for the written records."""
    return {"dataset": "instructions", "root": str(root), "tokenizer": str(tokenizer), "cache_dir": str(cache),
            "max_prompt_length": 24, "max_length": 40, "chunk_tokens": 16,
            "generation": {"max_new_tokens": 6, "batch_size": 8}, **extra}

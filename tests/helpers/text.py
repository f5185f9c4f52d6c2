"""For the text tests: small GLUE-layout datasets written in the test, a WordPiece tokenizer trained
on their text, and tiny random BERT configs. Nothing downloads."""

from __future__ import annotations

import random
from pathlib import Path

GOOD = ["good", "great", "fine", "lovely", "superb", "bright", "warm", "kind"]
BAD = ["bad", "awful", "poor", "dull", "grim", "cold", "harsh", "weak"]
FILLER = ["the", "film", "was", "a", "story", "with", "some", "very", "and", "plot", "cast", "ending", "it", "really"]


def sentence(rng: random.Random, positive: bool) -> str:
    words = rng.sample(FILLER, 5) + rng.sample(GOOD if positive else BAD, 2)
    rng.shuffle(words)
    return " ".join(words)


def write_sst2(root: Path, train: int = 96, dev: int = 40, seed: int = 0) -> Path:
    """GLUE's SST-2 layout: ``train.tsv`` and ``dev.tsv`` with a ``sentence\\tlabel`` header."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name, count in (("train.tsv", train), ("dev.tsv", dev)):
        lines = ["sentence\tlabel"]
        for index in range(count):
            positive = index % 2 == 0
            lines.append(f"{sentence(rng, positive)}\t{int(positive)}")
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def write_mrpc(root: Path, train: int = 64, dev: int = 24, seed: int = 1) -> Path:
    """GLUE's MRPC layout: ``Quality``, two ids and the two strings."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name, count in (("train.tsv", train), ("dev.tsv", dev)):
        lines = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        for index in range(count):
            same = index % 2 == 0
            first = sentence(rng, True)
            second = first if same else sentence(rng, False)
            lines.append(f"{int(same)}\t{index}\t{index + 1000}\t{first}\t{second}")
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def train_tokenizer(folder: Path, texts: list[str] | None = None) -> Path:
    """A BERT-style WordPiece tokenizer trained on ``texts`` (the test vocabulary by default),
    saved as a ``transformers`` fast tokenizer in ``folder``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = texts or [" ".join(GOOD + BAD + FILLER)] * 4
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    return folder


def tiny_bert(vocab_size: int = 200, layers: int = 2, hidden: int = 32) -> dict:
    """A random BERT config small enough to train in a test."""
    return {"model_type": "bert", "vocab_size": vocab_size, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": 2, "intermediate_size": 2 * hidden, "max_position_embeddings": 64}


def fake_hub_cache(home: Path, configs: dict[str, dict]) -> Path:
    """A Hugging Face cache under ``home`` (``$HF_HOME``) holding the ``config.json`` of each named
    model, as a machine that has used them has (no weights: preflight reads configs only)."""
    import json

    for name, config in configs.items():
        repo = home / "hub" / f"models--{name.replace('/', '--')}"
        commit = "0" * 40
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True, exist_ok=True)
        (snapshot / "config.json").write_text(json.dumps(config))
    return home


def hf_environment(home: Path, offline: bool = True) -> dict[str, str]:
    """This process's environment with every Hugging Face setting replaced: its caches under ``home``
    (other tests may have pointed ``HF_HUB_CACHE`` elsewhere), and offline unless told otherwise."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env["HF_HOME"] = str(home)
    if offline:
        env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    return env

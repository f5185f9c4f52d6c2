"""The real formats of MiniLLM's data: its processed training data (Megatron ``.bin``/``.idx`` of token
ids, prompt and response split at 65535), its evaluation files (``<set>/valid.jsonl``), and tokenizers
given by their vocabulary files (GPT-2's ``encoder.json`` + ``vocab.bpe``, BERT's ``vocab.txt``)."""

import json
import struct

import numpy as np
import pytest

from kdtemp.config import ConfigError, from_dict
from kdtemp.tasks.hf import load_tokenizer
from kdtemp.tasks.lm.config import LMDataConfig
from kdtemp.tasks.lm.data import load_splits, read_records
from kdtemp.tasks.lm.indexed import MAGIC, SEPARATOR, check_ids, read_indexed, token_records

from helpers.lm import EOS
from helpers.shared import shared_data


def write_indexed(prefix, records, code=8, dtype=np.uint16):
    """A Megatron index of ``records`` (lists of ids) as MiniLLM's tools write it."""
    arrays = [np.asarray(r, dtype=dtype) for r in records]
    sizes = np.asarray([len(a) for a in arrays], dtype="<i4")
    pointers = np.concatenate([[0], np.cumsum(sizes[:-1]) * np.dtype(dtype).itemsize]).astype("<i8")
    prefix.with_name(prefix.name + ".bin").write_bytes(b"".join(a.tobytes() for a in arrays))
    header = MAGIC + struct.pack("<QBQQ", 1, code, len(arrays), len(arrays) + 1)
    prefix.with_name(prefix.name + ".idx").write_bytes(
        header + sizes.tobytes() + pointers.tobytes() + np.arange(len(arrays) + 1, dtype="<i8").tobytes())


def test_an_index_written_as_megatron_does_reads_back(tmp_path):
    records = [[5, 6, SEPARATOR, 7, 0], [1, SEPARATOR, 2, 3, 0], [9, 9, 9, SEPARATOR, 0]]
    write_indexed(tmp_path / "train_0", records)
    assert [r.tolist() for r in read_indexed(tmp_path / "train_0")] == records
    split = token_records(tmp_path / "train_0")
    assert [(r.prompt, r.response) for r in split] == [([5, 6], [7, 0]), ([1], [2, 3, 0]), ([9, 9, 9], [0])]
    check_ids(split, eos_id=0, vocabulary=10, split="train")
    with pytest.raises(ConfigError, match=r"^data.tokenizer: train record 3 has id 9, outside the tokenizer's 8"):
        check_ids(split, eos_id=0, vocabulary=8, split="train")
    with pytest.raises(ConfigError, match=r"^data.tokenizer: train record 1 has a response that does not end with the tokenizer's EOS 7"):
        check_ids(split, eos_id=7, vocabulary=10, split="train")


def test_a_bad_index_is_one_line(tmp_path):
    write_indexed(tmp_path / "a", [[1, SEPARATOR, 2]])
    (tmp_path / "a.idx").unlink()
    with pytest.raises(ConfigError, match=r"^data.root: .*a.idx is missing beside a.bin; MiniLLM's processed data is a .bin file and its .idx index$"):
        read_indexed(tmp_path / "a")
    write_indexed(tmp_path / "b", [[1, SEPARATOR, 2]])
    (tmp_path / "b.idx").write_bytes(b"not an index at all, just bytes")
    with pytest.raises(ConfigError, match=r"^data.root: .*b.idx is not a Megatron index \(no MMIDIDX header\)$"):
        read_indexed(tmp_path / "b")
    write_indexed(tmp_path / "c", [[1, SEPARATOR, 2], [3, SEPARATOR, 4]])
    (tmp_path / "c.bin").write_bytes(b"\x00\x00")
    with pytest.raises(ConfigError, match=r"points past the end of c.bin \(2 bytes\)"):
        read_indexed(tmp_path / "c")
    write_indexed(tmp_path / "d", [[1, 2, 3]])
    with pytest.raises(ConfigError, match=r"d record 1 has 0 prompt/response separators \(65535\)"):
        token_records(tmp_path / "d")


def test_the_minillm_dataset_reads_its_folders(tmp_path, lm_tokenizer):
    root, evals = tmp_path / "processed", tmp_path / "data"
    root.mkdir()
    tokenizer = load_tokenizer(str(lm_tokenizer))
    eos = tokenizer.convert_tokens_to_ids(EOS)
    ids = lambda text: tokenizer(text)["input_ids"]  # noqa: E731
    write_indexed(root / "train_0", [ids("Say up.\nAnswer:") + [SEPARATOR] + ids(" down") + [eos]] * 6)
    write_indexed(root / "valid_0", [ids("Say hot.\nAnswer:") + [SEPARATOR] + ids(" cold") + [eos]] * 2)
    (evals / "dolly").mkdir(parents=True)
    (evals / "dolly" / "valid.jsonl").write_text(json.dumps({"instruction": "Say big.", "input": "", "output": "small",
                                                             "prompt": "Say big.\nAnswer:"}) + "\n")
    config = from_dict(LMDataConfig, {"dataset": "minillm", "root": str(root), "eval_root": str(evals),
                                      "eval_sets": ["dolly"]}, "data")
    records = read_records(config)
    assert len(records["train"]) == 6 and records["dolly"][0].references == ["small"]
    splits = load_splits(config, tokenizer, str(lm_tokenizer), tmp_path / "cache")
    train = splits["train"]
    first = train.ids[: int(train.offsets[1])].tolist()
    assert first == ids("Say up.\nAnswer:") + ids(" down") + [eos]  # the separator is gone, EOS kept once
    assert int(train.prompt_lengths[0]) == len(ids("Say up.\nAnswer:"))
    (root / "valid_0.idx").unlink()
    with pytest.raises(ConfigError, match=r"^data.root: .*valid_0.idx is missing beside valid_0.bin"):
        read_records(config)
    with pytest.raises(ConfigError, match=r"^data.root: minillm reads MiniLLM's processed"):
        from_dict(LMDataConfig, {"dataset": "minillm"}, "data")


def test_tokenizers_from_vocabulary_files(tmp_path):
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01")
    with pytest.raises(ConfigError, match=r"^data.tokenizer: '.*notes.bin' is not a tokenizer file; give a Hugging Face "
                                          r"tokenizer folder, GPT-2's encoder.json and vocab.bpe, or BERT's vocab.txt$"):
        load_tokenizer(str(tmp_path / "notes.bin"))
    (tmp_path / "vocab.txt").write_text("hello world\nthis is prose, not a vocabulary\n")
    with pytest.raises(ConfigError, match=r"^data.tokenizer: .*vocab.txt is not a WordPiece vocabulary \(no \[UNK\] line\)"):
        load_tokenizer(str(tmp_path / "vocab.txt"))
    bpe = tmp_path / "bpe"
    bpe.mkdir()
    (bpe / "encoder.json").write_text("[1, 2, 3]")
    (bpe / "vocab.bpe").write_text("#version: 0.2\na b\n")
    with pytest.raises(ConfigError, match=r"^data.tokenizer: encoder.json and vocab.bpe are not a BPE vocabulary and merges"):
        load_tokenizer(str(bpe))
    (bpe / "vocab.bpe").unlink()
    with pytest.raises(ConfigError, match=r"^data.tokenizer: .*vocab.bpe does not exist \(bpe needs encoder.json and vocab.bpe\)$"):
        load_tokenizer(str(bpe / "encoder.json"))


def test_gpt2_and_bert_vocabularies_by_path():
    gpt2 = load_tokenizer(str(shared_data("text/gpt2_bpe")))
    assert len(gpt2) == 50257 and gpt2.eos_token == "<|endoftext|>" and gpt2.eos_token_id == 50256
    assert gpt2("Hello world")["input_ids"] == [15496, 995]  # the ids the files' README states
    assert load_tokenizer(str(shared_data("text/gpt2_bpe/vocab.bpe")))("Hello world")["input_ids"] == [15496, 995]
    bert = load_tokenizer(str(shared_data("text/bert_base_uncased_vocab/vocab.txt")))
    assert len(bert) == 30522 and bert.decode(bert("Hello world")["input_ids"]) == "[CLS] hello world [SEP]"


def test_minillm_processed_dolly_reads_with_gpt2():
    root = shared_data("text/minillm_dolly_processed_gpt2")
    gpt2 = load_tokenizer(str(shared_data("text/gpt2_bpe")))
    train, valid = token_records(root / "train_0"), token_records(root / "valid_0")
    assert (len(train), len(valid)) == (11_435, 1_000)
    check_ids(train, gpt2.eos_token_id, len(gpt2), "train")
    text = gpt2.decode(train[1].prompt)
    assert text.startswith("Below is an instruction that describes a task.") and text.endswith("### Response:\n")

"""Text data (``kdtemp.tasks.text.data``): GLUE's TSV files and your own TSV/CSV/JSONL read with their
columns, one line for every mistake, tokenised once into a cache, and a deterministic stream of
dynamically padded batches."""

import json

import pytest
import torch

from kdtemp.config import ConfigError, from_dict
from kdtemp.tasks.text.config import TextDataConfig
from kdtemp.tasks.text.data import TextStream, load_splits, read_rows
from kdtemp.tasks.hf import load_tokenizer


def data(**fields) -> TextDataConfig:
    return from_dict(TextDataConfig, fields, "data")


def test_glue_tsv_files_are_read_with_their_columns_and_label_names(sst2_folder, mrpc_folder, tmp_path):
    sst2 = read_rows(data(dataset="sst2", root=str(sst2_folder)), "train")
    assert sst2.classes == ["negative", "positive"] and sst2.pairs is None and sst2.labels[:4] == [1, 0, 1, 0]
    mrpc = read_rows(data(dataset="mrpc", root=str(mrpc_folder)), "validation")
    assert mrpc.classes == ["not_equivalent", "equivalent"] and len(mrpc.pairs) == len(mrpc.texts) == 24
    assert mrpc.texts[0] == mrpc.pairs[0] and mrpc.labels[0] == 1
    cola = tmp_path / "CoLA"  # GLUE's CoLA files have no header: source, label, original label, sentence
    cola.mkdir()
    (cola / "train.tsv").write_text("gj04\t1\t\tthe cat sat .\ngj04\t0\t*\tcat the sat .\n")
    rows = read_rows(data(dataset="cola", root=str(cola)), "train")
    assert rows.texts == ["the cat sat .", "cat the sat ."] and rows.labels == [1, 0]
    mnli = tmp_path / "MNLI"
    mnli.mkdir()
    (mnli / "dev_mismatched.tsv").write_text("index\tsentence1\tsentence2\tgold_label\n0\ta b\tc d\tneutral\n")
    rows = read_rows(data(dataset="mnli", root=str(mnli)), "validation_mismatched")
    assert rows.labels == [1] and rows.classes == ["entailment", "neutral", "contradiction"]


def test_your_own_files_in_tsv_csv_or_jsonl(tmp_path):
    folder = tmp_path / "own"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps({"review": f"text {i}", "stars": str(1 + i % 3)})
                                                  for i in range(6)) + "\n")
    (folder / "validation.csv").write_text("review,stars\n\"a, b\",2\nc,3\n")
    config = data(dataset="text_classification", root=str(folder), text_column="review", label_column="stars")
    train = read_rows(config, "train")
    assert train.classes == ["1", "2", "3"] and train.labels == [0, 1, 2, 0, 1, 2]
    test = read_rows(config, "test", train.classes)
    assert test.texts == ["a, b", "c"] and test.labels == [1, 2]


@pytest.mark.parametrize("fields, message", [
    (dict(dataset="sst3"), "data.dataset: unknown text dataset 'sst3'; allowed: the GLUE tasks sst2, mrpc"),
    (dict(dataset="stsb"), "data.dataset: STS-B is a regression task"),
    (dict(dataset="text_classification"), "data.root: text_classification reads a folder"),
    (dict(dataset="sst2", max_length=4), "data.max_length: must be in"),
])
def test_a_dataset_that_cannot_be_read_as_written_is_one_line(fields, message):
    with pytest.raises(ConfigError, match=message):
        data(**fields)


def test_a_missing_column_names_the_field_and_the_columns_there(tmp_path, sst2_folder):
    folder = tmp_path / "own"
    folder.mkdir()
    (folder / "train.tsv").write_text("sentence\tlabel\na\t0\nb\t1\n")
    (folder / "test.tsv").write_text("sentence\tlabel\na\t0\n")
    with pytest.raises(ConfigError, match=r"data.text_column: .*train.tsv has no column 'text' \(its columns: "
                                          r"sentence, label\)"):
        read_rows(data(dataset="text_classification", root=str(folder)), "train")
    with pytest.raises(ConfigError, match=r"data.root: .* has no column '#1 String'"):
        read_rows(data(dataset="mrpc", root=str(sst2_folder)), "train")  # SST-2's files read as MRPC


def test_tokenised_once_into_the_cache_then_read_back(sst2_folder, tokenizer_folder, tmp_path, monkeypatch):
    config = data(dataset="sst2", root=str(sst2_folder), tokenizer=str(tokenizer_folder), max_length=16)
    tokenizer = load_tokenizer(str(tokenizer_folder))
    first = load_splits(config, tokenizer, str(tokenizer_folder), tmp_path)
    assert list((tmp_path / "text").glob("sst2-*.safetensors"))
    import kdtemp.tasks.text.data as module

    monkeypatch.setattr(module, "read_rows", lambda *a, **k: pytest.fail("the cache was not used"))
    again = load_splits(config, tokenizer, str(tokenizer_folder), tmp_path)
    for split in ("train", "validation"):
        assert torch.equal(first[split].ids, again[split].ids) and torch.equal(first[split].labels, again[split].labels)
    assert len(first["train"]) == 96 and len(first["validation"]) == 40
    assert int(first["train"].lengths().max()) <= 16
    subset = load_splits(data(**{**config.__dict__, "train_per_class": 5}), tokenizer, str(tokenizer_folder), tmp_path)
    assert torch.bincount(subset["train"].labels).tolist() == [5, 5]


def test_the_stream_is_deterministic_and_pads_each_batch_to_its_longest_input(sst2_folder, tokenizer_folder, tmp_path):
    config = data(dataset="sst2", root=str(sst2_folder), tokenizer=str(tokenizer_folder))
    tokenizer = load_tokenizer(str(tokenizer_folder))
    train = load_splits(config, tokenizer, str(tokenizer_folder), tmp_path)["train"]
    a, b = TextStream(train, 16, data_seed=3), TextStream(train, 16, data_seed=3)
    assert a.batches_per_epoch == 6
    for x, y in zip(a.epoch(2), b.epoch(2)):
        assert torch.equal(x.indices, y.indices) and torch.equal(x.inputs["input_ids"], y.inputs["input_ids"])
        lengths = train.lengths()[x.indices]
        assert x.inputs["input_ids"].shape == (16, int(lengths.max()))
        assert torch.equal(x.inputs["attention_mask"].sum(1), lengths)
        first = int(x.indices[0])
        start = int(train.offsets[first])
        assert x.inputs["input_ids"][0, : int(lengths[0])].tolist() == train.ids[start:start + int(lengths[0])].tolist()
        assert torch.equal(x.targets, train.labels[x.indices])
    assert not torch.equal(next(iter(a.epoch(1))).indices, next(iter(a.epoch(2))).indices)


def test_glue_through_datasets_without_its_cache_and_without_download_is_one_line(tmp_path):
    import subprocess
    import sys

    from helpers.text import hf_environment

    code = ("from kdtemp.tasks.text.data import read_glue_hub\nfrom kdtemp.tasks.text.glue import GLUE\n"
            "read_glue_hub(GLUE['sst2'], 'train', download=False)")
    env = hf_environment(tmp_path / "hf", offline=False)  # an empty cache, whatever this machine has
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0
    assert ("ConfigError: data.dataset: GLUE sst2 (train) could not be read through datasets" in done.stderr
            and "set data.download: true on a machine that is online" in done.stderr)

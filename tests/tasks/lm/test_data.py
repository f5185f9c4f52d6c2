"""Instruction data: records, MiniLLM's Dolly template, tokenising with prompt masks, lengths,
the cache and the stream's batches (which positions count)."""

import json

import pytest
import torch

from kdtemp.config import ConfigError, from_dict
from kdtemp.tasks.lm.config import LMDataConfig
from kdtemp.tasks.lm.data import (LMSplit, LMStream, dolly_prompt, load_splits, read_jsonl, read_records, record_of,
                                  tokenise)

from helpers.lm import EOS, lm_data
from helpers.tolerance import float32_rel


def _tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def test_dolly_records_get_minillms_template_with_and_without_context():
    with_context = record_of({"instruction": "Sum it up.", "context": "A long text.", "response": "Short."}, "x")
    assert with_context.prompt == ("Below is an instruction that describes a task, paired with an input that provides "
                                   "further context. Write a response that appropriately completes the request.\n\n"
                                   "### Instruction:\nSum it up.\n\n### Input:\nA long text.\n\n### Response:\n")
    plain = record_of({"instruction": "Name a colour.", "context": "", "response": "Red."}, "x")
    assert plain.prompt == dolly_prompt("Name a colour.") and "### Input:" not in plain.prompt
    assert plain.references == ["Red."]


def test_a_line_without_response_is_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n" + json.dumps({"prompt": "only"}) + "\n")
    with pytest.raises(ConfigError, match=r"train.jsonl line 2: no 'output' or 'response'"):
        read_jsonl(path)
    path.write_text("{not json\n")
    with pytest.raises(ConfigError, match="line 1 is not JSON"):
        read_jsonl(path)
    # an evaluation line may give references instead of a response
    path.write_text(json.dumps({"prompt": "p", "references": ["r1", "r2"]}) + "\n")
    (record,) = read_jsonl(path, need_response=False)
    assert record.response == "r1" and record.references == ["r1", "r2"]


def test_tokenised_records_mask_the_prompt_and_end_with_eos(lm_tokenizer, instructions):
    tokenizer = _tokenizer(lm_tokenizer)
    config = from_dict(LMDataConfig, {"dataset": "instructions", "root": str(instructions), "max_prompt_length": 6,
                                      "max_length": 9})
    records = read_records(config)["train"][:8]
    done = tokenise(records, tokenizer, config)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    split = LMSplit(done.tensors["ids"], done.tensors["offsets"], done.tensors["prompt_lengths"], eos,
                    [[] for _ in records])
    lengths = split.lengths()
    assert (split.prompt_lengths <= 6).all() and (lengths <= 9).all()
    assert int(done.tensors["prompt_cut"].sum()) == sum(len(tokenizer(r.prompt)["input_ids"]) > 6 for r in records) > 0
    # a truncated prompt keeps its last tokens (the "Answer:" end)
    first = tokenizer(records[0].prompt)["input_ids"]
    assert split.ids[: int(split.prompt_lengths[0])].tolist() == first[-int(split.prompt_lengths[0]):]
    uncut = [i for i in range(len(records)) if int(lengths[i]) < 9]
    assert uncut and all(int(split.ids[int(split.offsets[i + 1]) - 1]) == eos for i in uncut)

    batch = next(iter(split.batches(4)))
    width = batch.inputs["input_ids"].shape[1]
    rows = batch.rows.tolist()
    for r in range(4):
        a, n = int(split.prompt_lengths[r]), int(lengths[r])
        counted = [p - r * width for p in rows if r * width <= p < (r + 1) * width]
        assert counted == list(range(a - 1, n - 1))  # positions whose next token is a response token
    # the targets are those next tokens
    flat_ids = batch.inputs["input_ids"].reshape(-1)
    assert torch.equal(batch.targets, flat_ids[batch.rows + 1])
    expected = [int(split.ids[int(split.offsets[p // width]) + p % width + 1]) for p in rows]  # from the ragged ids
    assert batch.targets.tolist() == expected
    assert batch.tokens == int((lengths[:4] - split.prompt_lengths[:4]).sum())


def test_refuse_policy_refuses_a_long_prompt(lm_tokenizer, instructions):
    config = from_dict(LMDataConfig, {"dataset": "instructions", "root": str(instructions), "max_prompt_length": 4,
                                      "max_length": 9, "prompt_policy": "refuse"})
    with pytest.raises(ConfigError, match="data.max_prompt_length: a prompt has .* prompt_policy is refuse"):
        tokenise(read_records(config)["train"], _tokenizer(lm_tokenizer), config)


def test_splits_are_cached_and_the_stream_is_seeded(lm_tokenizer, instructions, tmp_path):
    config = from_dict(LMDataConfig, lm_data(instructions, lm_tokenizer, tmp_path / "cache", eval_sets=["test", "selfinst"]))
    tokenizer = _tokenizer(lm_tokenizer)
    first = load_splits(config, tokenizer, str(lm_tokenizer), tmp_path / "cache")
    (cached,) = list((tmp_path / "cache" / "lm").glob("*.safetensors"))
    again = load_splits(config, tokenizer, str(lm_tokenizer), tmp_path / "cache")
    assert set(first) == {"train", "validation", "test", "selfinst"}
    for name in first:
        assert torch.equal(first[name].ids, again[name].ids) and first[name].references == again[name].references
    assert first["test"].references[0][1] == first["test"].references[0][0].upper()  # two references kept
    stream = LMStream(first["train"], 8, data_seed=3)
    one = [b.indices.tolist() for b in stream.epoch(2)]
    assert one == [b.indices.tolist() for b in LMStream(again["train"], 8, data_seed=3).epoch(2)]
    assert one != [b.indices.tolist() for b in stream.epoch(3)]
    assert len(one) == len(first["train"]) // 8
    assert cached.stat().st_size > 0


def test_dolly_through_datasets_without_its_cache_and_without_download_is_one_line(tmp_path):
    import subprocess
    import sys

    from helpers.text import hf_environment

    code = ("from kdtemp.tasks.lm.config import LMDataConfig\nfrom kdtemp.tasks.lm.data import read_records\n"
            "read_records(LMDataConfig(dataset='dolly'))")
    env = hf_environment(tmp_path / "hf", offline=False)  # an empty cache, whatever this machine has
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0
    assert ("ConfigError: data.dataset: Dolly (databricks/databricks-dolly-15k) could not be read through datasets"
            in done.stderr and "set data.download: true on a machine that is online" in done.stderr)


def test_a_local_dolly_file_is_split_as_minillm_holds_out(tmp_path):
    lines = [json.dumps({"instruction": f"Say {i}.", "context": "", "response": f"{i}", "category": "open_qa"})
             for i in range(1200)]
    (tmp_path / "databricks-dolly-15k.jsonl").write_text("\n".join(lines) + "\n")
    records = read_records(from_dict(LMDataConfig, {"dataset": "dolly", "root": str(tmp_path)}))
    assert {k: len(v) for k, v in records.items()} == {"train": 200, "validation": 500, "test": 500}
    responses = [r.response for split in records.values() for r in split]
    assert sorted(responses, key=int) == [str(i) for i in range(1200)]  # a partition of the file
    assert records["test"][0].prompt == dolly_prompt("Say " + records["test"][0].response + ".")


def test_logits_without_gradient_are_scored_once_per_batch(lm_tokenizer, instructions, tmp_path):
    """The teacher's cross-entropy (every DTS member of a cohort asks for it) is computed once a batch."""
    config = from_dict(LMDataConfig, lm_data(instructions, lm_tokenizer, tmp_path / "cache"))
    split = load_splits(config, _tokenizer(lm_tokenizer), str(lm_tokenizer), tmp_path / "cache")["train"]
    batch = next(iter(LMStream(split, 8, data_seed=0, chunk_tokens=4).epoch(1)))
    teacher = torch.randn(batch.tokens, 400)
    first = batch.cross_entropy(teacher)
    assert batch.cross_entropy(teacher) is first
    assert first.item() == pytest.approx(torch.nn.functional.cross_entropy(teacher, batch.targets).item(),
                                        rel=float32_rel(400 + batch.tokens))  # 400 classes, then the tokens
    student = torch.randn(batch.tokens, 400, requires_grad=True)
    assert batch.cross_entropy(student) is not batch.cross_entropy(student)  # a loss with gradient is never reused
    other = teacher.clone()
    assert batch.cross_entropy(other) is not first and torch.equal(batch.cross_entropy(other), first)

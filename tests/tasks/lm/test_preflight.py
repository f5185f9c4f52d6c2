"""Preflight of language-model studies (``kdtemp.tasks.lm.preflight``): each mistake is one line
naming the field, from ``kdtemp study plan``, before anything is written."""

import json

import pytest

from kdtemp.cli import main

from helpers.lm import tiny_gpt2, train_tokenizer, write_instructions
from helpers.trust import write_yaml


@pytest.fixture(scope="module")
def vocabulary(lm_tokenizer):
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(str(lm_tokenizer)))


def study(folder, instructions, tokenizer, vocabulary, grid=None, **changes):
    base = {"task": "causal_lm",
            "data": {"dataset": "instructions", "root": str(instructions), "tokenizer": str(tokenizer),
                     "max_prompt_length": 24, "max_length": 40},
            "teacher": {"name": "tiny-teacher", "init": "random", "config": tiny_gpt2(vocab_size=vocabulary)},
            "batch_size": 8,
            "student": {"model": {"name": "tiny-student", "init": "random",
                                  "config": tiny_gpt2(vocab_size=vocabulary, layers=1)}, "epochs": 1}}
    for key, value in changes.items():
        node = base
        *parents, last = key.split(".")
        for name in parents:
            node = node[name]
        node[last] = value
    return write_yaml(folder / "study.yaml", {"name": "lm-preflight", "base": base,
                                               "grid": grid or {"student.temperature": [1, 2]}, "executor": {"kind": "inline"}})


def plan_error(path, capsys, output):
    assert main(["study", "plan", path, "--output", str(output)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and not output.exists(), err  # one line, nothing written
    return err[0]


def test_the_shipped_layout_plans(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary)
    assert main(["study", "plan", path, "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "instructions" in out and "64 train records; evaluation test 12" in out


def test_a_jsonl_line_without_response(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    data = write_instructions(tmp_path / "bad")
    lines = (data / "train.jsonl").read_text().splitlines()
    lines[4] = json.dumps({"prompt": "no answer here"})
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    line = plan_error(study(tmp_path, data, lm_tokenizer, vocabulary), capsys, tmp_path / "out")
    assert line.endswith(f"data.root: {data / 'train.jsonl'} line 5: no 'output' or 'response' (a line needs prompt and response, "
                         "Dolly's instruction and response, or MiniLLM's instruction and output)")


def test_a_prompt_over_the_limit_under_refuse(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary,
                 **{"data.max_prompt_length": 5, "data.prompt_policy": "refuse"})
    line = plan_error(path, capsys, tmp_path / "out")
    assert "data.max_prompt_length:" in line and "train prompt(s) have more than 5 tokens (the first is record 1)" in line
    assert "prompt_policy is refuse" in line
    # under truncate (the default) the same data plans
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary, **{"data.max_prompt_length": 5})
    assert main(["study", "plan", path, "--output", str(tmp_path / "out")]) == 0


def test_an_objective_that_cannot_take_a_vocabulary(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    for objective, reason in (("dist", "inter-class term"), ("mlkd", "batch and class levels"),
                              ("ls_global", "whole training set")):
        path = study(tmp_path, instructions, lm_tokenizer, vocabulary, **{"student.objective": objective})
        line = plan_error(path, capsys, tmp_path / "out")
        assert f"student.objective: {objective!r} does not apply to a vocabulary" in line and reason in line
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary, grid={"student.optimizer.lr": [0.001, 0.002]},
                 **{"student.temperature_policy": "dts_instance"})
    assert "student.temperature_policy: dts_instance" in plan_error(path, capsys, tmp_path / "out")


def test_teacher_and_student_with_different_tokenizers(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "other-student"
    settings = tiny_gpt2(vocab_size=vocabulary, layers=1)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(settings.pop("model_type"), **settings))
    model.save_pretrained(str(folder))
    train_tokenizer(tmp_path / "other-tokenizer", vocab_size=300)
    AutoTokenizer.from_pretrained(str(tmp_path / "other-tokenizer")).save_pretrained(str(folder))
    capsys.readouterr()  # what saving printed
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary,
                 **{"student.model": {"name": str(folder), "init": "pretrained"}})
    line = plan_error(path, capsys, tmp_path / "out")
    assert f"student.model: {str(folder)!r} uses the tokenizer" in line and "teacher and students must share one" in line


def test_vocabulary_and_positions_that_do_not_fit(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary,
                 **{"student.model.config": tiny_gpt2(vocab_size=vocabulary - 10, layers=1)})
    line = plan_error(path, capsys, tmp_path / "out")
    assert f"student.model: 'tiny-student' has embeddings for {vocabulary - 10} tokens" in line
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary, **{"data.max_length": 200})
    assert "data.max_length: 200 exceeds the 128 positions of teacher 'tiny-teacher'" in plan_error(
        path, capsys, tmp_path / "out")


def test_a_teacher_padded_larger_is_cut_to_the_shared_vocabulary_with_a_note(instructions, lm_tokenizer, vocabulary,
                                                                             tmp_path, capsys):
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary,
                 **{"teacher.config": tiny_gpt2(vocab_size=vocabulary + 30)})
    assert main(["study", "plan", path, "--output", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"teacher: 'tiny-teacher' has {vocabulary + 30} output tokens, 30 more than the tokenizer's {vocabulary}" in err


# Malformed inputs (issue: text and language-model inputs held to the image standard): one line each,
# naming the field, before any work.

def _rewrite(data, split, change):
    lines = (data / f"{split}.jsonl").read_text().splitlines()
    change(lines)
    (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("bad, says", [
    ('{"prompt": "a", "prompt": "", "response": "b"}', "line 5 has the key 'prompt' twice; each key once"),
    ('{"prompt": "a", "response": ' + "[" * 100 + "]" * 100 + "}", "line 5 nests deeper than 32 levels"),
    ('{"prompt": "a", "references": [], "response": "b"}', "line 5: 'references' is empty; give at least one"),
])
def test_instruction_jsonl_is_read_strictly(instructions, lm_tokenizer, vocabulary, tmp_path, capsys, bad, says):
    data = write_instructions(tmp_path / "bad")
    _rewrite(data, "train", lambda lines: lines.__setitem__(4, bad))
    line = plan_error(study(tmp_path, data, lm_tokenizer, vocabulary), capsys, tmp_path / "out")
    assert f"data.root: {data / 'train.jsonl'} {says}" in line, line


def test_instruction_jsonl_that_is_not_utf8(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    data = write_instructions(tmp_path / "bad")
    path = data / "train.jsonl"
    path.write_bytes(path.read_bytes() + '{"prompt": "caf\u00e9"}\n'.encode("latin-1"))
    line = plan_error(study(tmp_path, data, lm_tokenizer, vocabulary), capsys, tmp_path / "out")
    assert line.endswith(f"data.root: {path} line 65 is not UTF-8 (byte 0xe9 at column 16); save the file as UTF-8")


def test_max_length_below_two_names_max_length(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    line = plan_error(study(tmp_path, instructions, lm_tokenizer, vocabulary, **{"data.max_length": 0}), capsys,
                      tmp_path / "out")
    assert line.endswith("data.max_length: must be in [2, 1000000]; got 0")


def test_a_skew_of_one_is_refused_before_any_work(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary, **{"student.objective": "skew_kl",
                                                                      "student.objective_params": {"skew": 1.0}})
    line = plan_error(path, capsys, tmp_path / "out")
    assert "skew: must be a number >= 0 and < 1; got 1.0" in line


def test_a_tokenizer_without_end_of_sequence(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    from transformers import AutoTokenizer

    folder = tmp_path / "no-eos"
    tokenizer = AutoTokenizer.from_pretrained(str(lm_tokenizer))
    tokenizer.eos_token = None
    tokenizer.save_pretrained(str(folder))
    line = plan_error(study(tmp_path, instructions, folder, vocabulary), capsys, tmp_path / "out")
    assert line.endswith(f"data.tokenizer: {str(folder)!r} has no end-of-sequence token; a causal language model's "
                         "responses end with one (set eos_token in its tokenizer_config.json)")


def test_a_one_token_tokenizer_is_refused(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path / "one-token"
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(vocab={"<|endoftext|>": 0}, merges=[])),
                                   eos_token="<|endoftext|>")
    fast.save_pretrained(str(folder))
    line = plan_error(study(tmp_path, instructions, folder, vocabulary), capsys, tmp_path / "out")
    assert f"data.tokenizer: {str(folder)!r} " in line and ("1 token(s)" in line or "no tokens at all" in line)


def test_an_unknown_model_type_and_heads_that_do_not_divide(instructions, lm_tokenizer, vocabulary, tmp_path, capsys):
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary,
                 **{"teacher.config": {**tiny_gpt2(vocab_size=vocabulary), "model_type": "gpt3"}})
    assert "teacher.config: unknown model_type 'gpt3'" in plan_error(path, capsys, tmp_path / "out")
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary,
                 **{"student.model.config": {**tiny_gpt2(vocab_size=vocabulary, layers=1), "n_head": 5}})
    line = plan_error(path, capsys, tmp_path / "out")
    assert line.startswith("kdtemp: error: student.model.config: ") and "divisible" in line, line


def test_pickled_teacher_weights_are_named_at_once_not_looked_up_on_the_hub(instructions, lm_tokenizer, vocabulary,
                                                                            tmp_path, capsys, marker):
    import torch

    from helpers.trust import plant

    weights = plant(tmp_path / "teacher.pt", {"w": torch.zeros(1)}, marker)
    path = study(tmp_path, instructions, lm_tokenizer, vocabulary,
                 **{"teacher": {"name": "gpt2", "init": "checkpoint", "weights": str(weights)}, "data.tokenizer": None})
    line = plan_error(path, capsys, tmp_path / "out")
    assert line.startswith(f"kdtemp: error: teacher.weights: {str(weights)!r} holds Python objects") and not marker.exists()

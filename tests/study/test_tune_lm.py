"""``kdtemp tune`` on a causal LM: it chooses on the ROUGE-L of generations on the data's own validation
records (``data.validation``: how many), recorded each epoch as ``val_rouge_l``; the field is an evaluation
setting, so it changes no run id; bad values are one line."""

import json

import pytest

pytest.importorskip("transformers", reason="the causal_lm task needs the lm extra: pip install 'kdtemp[lm]'")
pytest.importorskip("rouge_score", reason="the causal_lm task needs the lm extra: pip install 'kdtemp[lm]'")

from kdtemp.cli import main  # noqa: E402
from kdtemp.study import load_study  # noqa: E402

from helpers.lm import tiny_gpt2, train_tokenizer, write_instructions  # noqa: E402
from helpers.trust import write_yaml  # noqa: E402


def study(validation) -> dict:
    data = {"dataset": "instructions", "root": "data", "tokenizer": "tokenizer", "max_prompt_length": 24,
            "max_length": 40, "chunk_tokens": 16, "eval_samples": 4,
            "generation": {"max_new_tokens": 4, "batch_size": 8}}
    if validation is not None:
        data["validation"] = validation
    return {"name": "tune-lm",
            "base": {"task": "causal_lm", "data": data,
                     "teacher": {"name": "tiny-teacher", "init": "random", "config": tiny_gpt2(width=32, dropout=0.0)},
                     "batch_size": 8,
                     "student": {"model": {"name": "tiny-student", "init": "random", "config": tiny_gpt2(layers=1)},
                                 "epochs": 2, "optimizer": {"name": "adamw", "lr": 5.0e-3}}},
            "grid": {"student.temperature": [1, 2, 4]}, "executor": {"kind": "inline", "threads": 1}}


@pytest.fixture
def folder(tmp_path):
    write_instructions(tmp_path / "data", train=24, validation=8, test=4)
    train_tokenizer(tmp_path / "tokenizer")
    return tmp_path


def test_tune_chooses_on_generations_of_validation_records(folder, capsys):
    path = folder / "study.yaml"
    write_yaml(path, study(6))
    without = folder / "plain.yaml"
    write_yaml(without, study(None))
    ids = lambda p: sorted(r.run_id for r in load_study(p).runs)  # noqa: E731
    assert ids(path) == ids(without)  # an evaluation setting: no run id changes
    assert main(["tune", str(path), "--quiet"]) == 0
    [record] = [json.loads(p.read_text()) for p in folder.rglob("tune.json")]
    assert record["metric"] == "val_rouge_l"
    [setting] = record["settings"]
    first, final = setting["history"]
    assert first["epoch"] == 1 and len(first["scores"]) == 3 and all(v is not None for v in first["scores"].values())
    assert setting["chosen"] in final["scores"] and setting["validation"] == final["scores"][setting["chosen"]]
    curves = [json.loads(p.read_text())["curve"] for p in folder.rglob("metrics.json")]
    assert len(curves) == 3 and all("val_rouge_l" in row and "val_exact_match" in row for c in curves for row in c)


@pytest.mark.parametrize("value, message", [
    (0.5, "base.data.validation: expected an integer; got 0.5"),
    (0, "base.data.validation: for a language model, how many records of the data's own validation split to generate "
        "on each epoch (an integer >= 1) or null; got 0"),
    (None, "data.validation: tune chooses on a validation split held out of training, never on test; set "
           "base.data.validation (a fraction such as 0.1, or a count; for a language model, how many validation "
           "records to generate on)")])
def test_bad_validation_is_one_line_before_any_work(folder, capsys, value, message):
    path = folder / "study.yaml"
    write_yaml(path, study(value))
    assert main(["tune", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"kdtemp: error: {message}"
    assert not list(folder.rglob("*.sqlite"))

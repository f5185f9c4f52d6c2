"""``kdtemp evaluate``: a study's finished students and prepared teacher evaluated again under another
protocol and more generation seeds, training nothing; done once (a second call reads the results),
results and generations beside each run."""

import json

import pytest

pytest.importorskip("transformers", reason="the causal_lm task needs the lm extra: pip install 'kdtemp[lm]'")
pytest.importorskip("rouge_score", reason="the causal_lm task needs the lm extra: pip install 'kdtemp[lm]'")

from kdtemp.cli import main  # noqa: E402
from kdtemp.study import Store, load_study, store_path  # noqa: E402

from helpers.lm import tiny_gpt2, train_tokenizer, write_instructions  # noqa: E402
from helpers.trust import write_yaml  # noqa: E402


def study() -> dict:
    return {
        "name": "evaluate-me",
        "prepare": {"teacher": {"base": {"model": {"name": "tiny-teacher", "init": "random",
                                                   "config": tiny_gpt2(width=32, dropout=0.0)},
                                         "optimizer": {"name": "adamw", "lr": 1.0e-2}, "epochs": 2}}},
        "base": {"task": "causal_lm",
                 "data": {"dataset": "instructions", "root": "data", "tokenizer": "tokenizer", "max_prompt_length": 24,
                          "max_length": 40, "chunk_tokens": 16, "eval_samples": 4,
                          "generation": {"max_new_tokens": 4, "batch_size": 8}},
                 "teacher": {"prepared": "teacher"}, "batch_size": 8,
                 "student": {"model": {"name": "tiny-student", "init": "random", "config": tiny_gpt2(layers=1)},
                             "epochs": 1, "optimizer": {"name": "adamw", "lr": 5.0e-3}}},
        "grid": {"student.temperature": [1, 2]},
        "executor": {"kind": "inline", "threads": 1},
        "degenerate_teacher": "continue",
    }


def snapshot(root):
    """Every file under ``root`` but evaluations, with its bytes (what training wrote)."""
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "evaluations" not in p.parts
            and not p.name.startswith("study.sqlite")}


def test_re_evaluating_with_five_seeds_trains_nothing(tmp_path, capsys):
    write_instructions(tmp_path / "data", train=32, validation=8, test=6)
    train_tokenizer(tmp_path / "tokenizer")
    path = write_yaml(tmp_path / "study.yaml", study())
    assert main(["study", "run", str(path), "--quiet"]) == 0
    loaded = load_study(path)
    before = snapshot(tmp_path / "studies")
    with Store(store_path(loaded), readonly=True) as store:
        runs_before = json.dumps(store.runs(), default=str)
    capsys.readouterr()
    overrides = ["data.generation.protocol=sample", "data.generation.seeds=[10,20,30,40,50]",
                 "data.generation.max_new_tokens=5"]
    assert main(["evaluate", str(path), *overrides]) == 0
    out = capsys.readouterr().out
    assert "evaluate: 3 finished models, 0 evaluated under these settings already" in out
    assert "rouge_l" in out and " ± " in out  # the mean and its spread over the five generation seeds
    after = snapshot(tmp_path / "studies")
    assert after == before  # no checkpoint, metrics or sample of training changed: nothing trained
    with Store(store_path(loaded), readonly=True) as store:
        assert json.dumps(store.runs(), default=str) == runs_before
    records = sorted((tmp_path / "studies").rglob("evaluations/*/metrics.json"))
    assert len(records) == 3  # two students and the prepared teacher
    record = json.loads(records[0].read_text())
    assert record["settings"]["data.generation.seeds"] == [10, 20, 30, 40, 50] and "seed_sd_rouge_l" in record["metrics"]
    assert len(list(records[0].parent.glob("samples/test-seed*.jsonl"))) == 5
    assert main(["evaluate", str(path), *overrides]) == 0  # done once: read back
    assert "3 evaluated under these settings already" in capsys.readouterr().out


def test_evaluate_changes_only_evaluation_settings(tmp_path, capsys):
    write_instructions(tmp_path / "data", train=32, validation=8, test=6)
    train_tokenizer(tmp_path / "tokenizer")
    path = write_yaml(tmp_path / "study.yaml", study())
    assert main(["evaluate", str(path), "student.epochs=3"]) == 2
    assert capsys.readouterr().err.strip() == ("kdtemp: error: student.epochs: evaluate changes evaluation settings, "
                                               "fields of data (data.generation.protocol=minillm, data.eval_sets=[...]); "
                                               "allowed: data.<field>")
    assert main(["evaluate", str(path), "data.generation.protocol=minillm"]) == 2
    assert "has no store" in capsys.readouterr().err

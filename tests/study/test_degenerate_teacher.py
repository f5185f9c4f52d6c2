"""A language-model teacher that only ends its texts (trained on empty responses, it emits its
end-of-sequence at once) stops the study with one line before any student trains, naming where its
generations are; ``degenerate_teacher: continue`` distils from it knowingly. Every evaluation saves its
generations beside the run."""

import json

import pytest

pytest.importorskip("transformers", reason="the causal_lm task needs the lm extra: pip install 'kdtemp[lm]'")
pytest.importorskip("rouge_score", reason="the causal_lm task needs the lm extra: pip install 'kdtemp[lm]'")

from kdtemp.cli import main  # noqa: E402
from kdtemp.study import Store, load_study, store_path  # noqa: E402

from helpers.lm import instruction_records, tiny_gpt2, train_tokenizer  # noqa: E402
from helpers.trust import write_yaml  # noqa: E402


def silent_instructions(root):
    """Training and validation responses all empty: a teacher fine-tuned on them learns to stop at once."""
    root.mkdir(parents=True)
    for name, count in (("train", 32), ("validation", 8), ("test", 6)):
        records = [{**r, "response": "" if name != "test" else r["response"]} for r in instruction_records(count)]
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def study(**extra) -> dict:
    return {
        "name": "silent-teacher",
        "prepare": {"teacher": {"base": {"model": {"name": "tiny-teacher", "init": "random",
                                                   "config": tiny_gpt2(width=32, dropout=0.0)},
                                         "optimizer": {"name": "adamw", "lr": 2.0e-2}, "epochs": 3}}},
        "base": {"task": "causal_lm",
                 "data": {"dataset": "instructions", "root": "data", "tokenizer": "tokenizer", "max_prompt_length": 24,
                          "max_length": 40, "chunk_tokens": 16, "generation": {"max_new_tokens": 6, "batch_size": 8}},
                 "teacher": {"prepared": "teacher"}, "batch_size": 8,
                 "student": {"model": {"name": "tiny-student", "init": "random", "config": tiny_gpt2(layers=1)},
                             "epochs": 1, "optimizer": {"name": "adamw", "lr": 5.0e-3}}},
        "grid": {"student.temperature": [1, 2]},
        "executor": {"kind": "inline", "threads": 1},
        **extra,
    }


def test_a_teacher_that_only_ends_its_texts_stops_the_study_before_its_students(tmp_path, capsys):
    silent_instructions(tmp_path / "data")
    train_tokenizer(tmp_path / "tokenizer")
    path = write_yaml(tmp_path / "study.yaml", study())
    assert main(["study", "run", str(path), "--quiet"]) != 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("kdtemp: error")]
    samples = tmp_path / "studies" / "prepared" / "runs"
    assert len(lines) == 1 and lines[0].startswith("kdtemp: error: prepare.teacher: ")
    assert "generates degenerate text (100% of its outputs are empty; its generations: " in lines[0]
    assert "degenerate_teacher: continue" in lines[0]
    loaded = load_study(path)
    with Store(store_path(loaded), readonly=True) as store:
        assert {run["status"] for run in store.runs()} == {"pending"}  # no student trained
    written = sorted(samples.glob("*/samples/test-seed0.jsonl"))
    assert len(written) == 1 and str(written[0].parent) in lines[0]
    rows = [json.loads(line) for line in written[0].read_text().splitlines()]
    assert len(rows) == 6 and {row["output"] for row in rows} == {""} and rows[0]["seed"] == 0
    assert rows[0]["prompt"].startswith("Give the opposite of") and rows[0]["references"]

    # the user goes on knowingly: the students train, and their generations are saved too
    write_yaml(tmp_path / "study.yaml", study(degenerate_teacher="continue"))
    assert main(["study", "run", str(path), "--quiet"]) == 0
    with Store(store_path(loaded), readonly=True) as store:
        assert {run["status"] for run in store.runs()} == {"done"}
    assert len(list((loaded.output / "runs").glob("*/samples/test-seed0.jsonl"))) == 2

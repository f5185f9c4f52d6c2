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
            and "report" not in p.parts and not p.name.startswith("study.sqlite") and not p.name.endswith(".lock")}


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
    assert record["settings"]["data.generation"]["seeds"] == [10, 20, 30, 40, 50] and "seed_sd_rouge_l" in record["metrics"]
    assert len(list(records[0].parent.glob("samples/test-seed*.jsonl"))) == 5
    assert main(["evaluate", str(path), *overrides]) == 0  # done once: read back
    assert "3 evaluated under these settings already" in capsys.readouterr().out


def test_evaluate_changes_only_evaluation_settings(tmp_path, capsys):
    write_instructions(tmp_path / "data", train=32, validation=8, test=6)
    train_tokenizer(tmp_path / "tokenizer")
    path = write_yaml(tmp_path / "study.yaml", study())
    assert main(["evaluate", str(path), "student.epochs=3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "kdtemp: error: student.epochs: evaluate changes only what training does not read (a causal_lm study's "
        "evaluation fields); allowed: data.eval_root, data.eval_samples, data.eval_sets, data.generation, data.validation")
    assert main(["evaluate", str(path), "data.max_length=64"]) == 2  # training reads it: a new run, not an evaluation
    assert "data.max_length: evaluate changes only what training does not read" in capsys.readouterr().err
    assert main(["evaluate", str(path), "data.generation.protocol=minillm"]) == 2
    assert "has no store" in capsys.readouterr().err


def test_a_study_file_with_other_evaluation_settings_evaluates_again_and_trains_nothing(tmp_path, capsys):
    """Evaluation settings are not part of a run's identity: the same study with five generation seeds
    keeps its run ids, trains nothing, evaluates its finished students and prepared teacher again, and its
    results (export, report) are those of the new evaluation, with no best epoch (only final weights are
    kept); going back to the first settings shows the first results again."""
    write_instructions(tmp_path / "data", train=32, validation=8, test=6)
    train_tokenizer(tmp_path / "tokenizer")
    first = study()
    path = write_yaml(tmp_path / "study.yaml", first)
    assert main(["study", "run", str(path), "--quiet"]) == 0
    ids = [run.run_id for run in load_study(path).runs]
    trained = snapshot(tmp_path / "studies")
    with Store(store_path(load_study(path)), readonly=True) as store:
        greedy = {r["run_id"]: r["final"]["rouge_l"] for r in store.runs()}
        assert all(r["best_epoch"] == 1 and not r.get("reevaluated") for r in store.runs())
    second = study()
    second["base"]["data"]["generation"] = {"protocol": "sample", "seeds": [10, 20, 30], "max_new_tokens": 4,
                                            "batch_size": 8}
    path = write_yaml(tmp_path / "study.yaml", second)
    loaded = load_study(path)
    assert [run.run_id for run in loaded.runs] == ids  # the same runs
    capsys.readouterr()
    assert main(["study", "run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "0 to train" in out and "evaluating their final weights again (nothing is trained)" in out
    assert snapshot(tmp_path / "studies") == trained  # no checkpoint, curve or training sample changed
    with Store(store_path(loaded), readonly=True) as store:
        runs = store.runs()
        assert all(r["reevaluated"] and r["best_epoch"] is None and r["best_primary"] is None for r in runs)
        assert all("seed_sd_rouge_l" in r["final"] and r["final_primary"] == r["final"]["rouge_l"] for r in runs)
        teacher = store.preparations()[0]
        assert teacher["reevaluated"] and "seed_sd_rouge_l" in teacher["final"]
        for run in runs:  # what the store holds is what the run's evaluation folder says
            folder = tmp_path / "studies" / "evaluate-me" / "runs" / run["run_id"] / "evaluations"
            record = json.loads(next(folder.glob("*/metrics.json")).read_text())
            assert record["metrics"]["rouge_l"] == run["final"]["rouge_l"]
            assert record["settings"] == {"data.eval_root": None, "data.eval_samples": 4, "data.eval_sets": ["test"],
                                          "data.generation": second["base"]["data"]["generation"]}
    assert main(["study", "run", str(path)]) == 0  # done once
    assert "evaluating their final weights again" not in capsys.readouterr().out
    assert main(["study", "export", str(path)]) == 0
    assert "final_seed_sd_rouge_l" in capsys.readouterr().out
    assert main(["report", str(path)]) == 0
    report = tmp_path / "studies" / "evaluate-me" / "report"
    generations = (report / "generations.md").read_text()
    assert "mean +- std over generation seeds" in generations and "were evaluated again" in generations
    assert generations.count(" +- ") >= 2 * 4  # ROUGE-L, exact match and the degeneracy measures, each with its spread
    path = write_yaml(tmp_path / "study.yaml", first)  # back to greedy: the results training measured
    assert main(["study", "run", str(path), "--quiet"]) == 0
    with Store(store_path(load_study(path)), readonly=True) as store:
        assert {r["run_id"]: r["final"]["rouge_l"] for r in store.runs()} == greedy

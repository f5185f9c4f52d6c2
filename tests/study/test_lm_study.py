"""A two-stage language-model study from one file (issue: causal language models): a tiny random
GPT-2 teacher fine-tuned on instruction data by the study (SFT), then two temperatures x two
divergences and DTS distilled into a smaller one; killed once in each stage and resumed to the
uninterrupted table, reported with ROUGE-L (the page renders in Chromium), and read by the advisor."""

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the causal_lm task needs the lm extra: pip install 'kdtemp[lm]'")
pytest.importorskip("rouge_score", reason="the causal_lm task needs the lm extra: pip install 'kdtemp[lm]'")

from kdtemp.cli import main  # noqa: E402
from kdtemp.report import build_report  # noqa: E402
from kdtemp.study import Store, load_study, run_study, store_path  # noqa: E402

from helpers.lm import tiny_gpt2, train_tokenizer, write_instructions  # noqa: E402
from helpers.report import find_browser, rendered_figures  # noqa: E402
from helpers.study import epoch_events as events, kill_in_each_stage, table  # noqa: E402
from helpers.trust import write_yaml  # noqa: E402

TEACHER_EPOCHS = 30


def lm_study() -> dict:
    return {
        "name": "lm-two-stage",
        "prepare": {"teacher": {"base": {"model": {"name": "tiny-teacher", "init": "random",
                                                   "config": tiny_gpt2(width=64, dropout=0.0)},
                                         "optimizer": {"name": "adamw", "lr": 1.0e-2}, "epochs": TEACHER_EPOCHS,
                                         "label_smoothing": 0.0}}},
        "base": {"task": "causal_lm",
                 "data": {"dataset": "instructions", "root": "data", "tokenizer": "tokenizer",
                          "eval_sets": ["test", "selfinst"], "max_prompt_length": 24, "max_length": 40,
                          "chunk_tokens": 16, "generation": {"max_new_tokens": 6, "batch_size": 8}},
                 "teacher": {"prepared": "teacher"}, "batch_size": 8,
                 "student": {"model": {"name": "tiny-student", "init": "random", "config": tiny_gpt2(width=48)},
                             "epochs": 4, "optimizer": {"name": "adamw", "lr": 5.0e-3},
                             "dts": {"initial": 3, "minimum": 1, "maximum": 3}}},
        "zip": [{"student.objective": ["kd", "kd", "reverse_kl", "reverse_kl", "kd"],
                 "student.temperature": [1, 2, 1, 2, None],
                 "student.temperature_policy": ["fixed", "fixed", "fixed", "fixed", "dts"]}],
        "seeds": [0],
        "executor": {"kind": "inline", "threads": 1},
    }


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm-study")
    write_instructions(folder / "data", train=96, extra_sets={"selfinst": 8})
    train_tokenizer(folder / "tokenizer")
    return write_yaml(folder / "study.yaml", lm_study())


@pytest.fixture(scope="module")
def reference(study_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("reference") / "study"
    study = load_study(study_file, output=output)
    assert run_study(study, progress=False)["done"] == 5
    rows = table(study)
    assert "final_rouge_l" in rows[0] and "final_rouge_l_selfinst" in rows[0] and "final_perplexity" in rows[0]
    with Store(store_path(study), readonly=True) as store:
        runs = store.runs()
        assert len({json.dumps(run["curve"]) for run in runs}) == 5  # the runs differ, so equal tables prove something
        teacher = runs[0]["teacher"]
        assert teacher["rouge_l"] > 10  # the study's SFT taught the teacher to answer
        assert max(float(r["final_rouge_l"]) for r in rows) > 0  # and students learned something from it
    return rows, output


@pytest.mark.slow
def test_killed_in_each_stage_and_resumed_to_the_same_table(study_file, reference, tmp_path):
    output = tmp_path / "study"
    stages = (lambda: events(output.parent / "prepared" / "runs") >= 5, lambda: events(output / "runs") >= 6)
    kill_in_each_stage(study_file, output, stages)
    assert events(output.parent / "prepared" / "runs") == TEACHER_EPOCHS  # the teacher's epochs, each once
    assert main(["study", "resume", study_file, "--output", str(output), "--quiet"]) == 0
    assert table(load_study(study_file, output=output)) == reference[0]


@pytest.mark.slow
def test_its_report_shows_rouge_l_per_divergence_and_evaluation_set(reference, tmp_path, capsys):
    report = build_report(reference[1], tmp_path / "report")
    heatmap = (report.folder / "heatmap_final.md").read_text()
    assert "final ROUGE-L (x100)" in heatmap and "| KD |" in heatmap and "| RKL |" in heatmap and "T=2" in heatmap
    assert r"DTS \[1, 3\]" in heatmap
    assert "final ROUGE-L (x100) on selfinst" in (report.folder / "heatmap_rouge_l_selfinst.md").read_text()
    teachers = (report.folder / "teachers.md").read_text()  # the teacher's row, as its cohort evaluated it
    assert "| tiny-teacher (gpt2 2x64) scratch 30 ep | instructions |" in teachers and "perplexity" in teachers
    assert "one seed" in (report.folder / "methods.md").read_text()  # one training seed: no spread of 0.00
    assert main(["advise", "--store", str(reference[1])]) == 0
    advice = capsys.readouterr().out
    assert "lm-two-stage: " in advice and "ROUGE-L" in advice  # the store's evidence, by its primary metric
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    assert {"heatmap", "curves", "temperatures", "curves_rouge_l_selfinst"} <= rendered_figures(
        browser, report.html, tmp_path / "profile")


def test_a_teacher_cache_in_the_base_is_not_the_preparations_and_keeps_its_id(study_file, tmp_path):
    """``data.teacher_cache`` concerns the students' teacher: the stage that trains that teacher takes the
    study's data without it (it has no teacher to cache), so adding a cache retrains no teacher."""
    import copy

    import yaml

    cached = copy.deepcopy(lm_study())
    cached["base"]["data"]["teacher_cache"] = {"k": 16}
    path = Path(write_yaml(Path(study_file).parent / "cached.yaml", cached))
    plain, with_cache = load_study(study_file, output=tmp_path / "a"), load_study(path, output=tmp_path / "b")
    [prepared] = with_cache.preparations
    assert prepared.config.data.teacher_cache is None
    assert prepared.prep_id == plain.preparations[0].prep_id
    assert all(run.spec.data.teacher_cache.k == 16 for run in with_cache.runs)
    assert yaml.safe_load(path.read_text())["base"]["data"]["teacher_cache"] == {"k": 16}  # the file is unchanged

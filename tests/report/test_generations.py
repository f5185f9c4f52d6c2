"""A language model's report shows what its generations are: every run's final metrics with their
spread over generation seeds (generations.md), the degenerate ones named and their heatmap cells
marked, so a score of noise is never read as a ranking; one generation seed says so; a run that waits
for its evaluation under the study's current settings is left out with a note."""

import pytest

from kdtemp.report import build_report
from helpers.report import stored_run, write_store

GOOD = {"rouge_l": 20.0, "seed_sd_rouge_l": 0.5, "exact_match": 1.0, "seed_sd_exact_match": 0.1, "empty_rate": 0.0,
        "distinct_1": 40.0, "distinct_2": 70.0, "repeat_run": 1.1, "rouge_l_self-inst": 12.0,
        "empty_rate_self-inst": 0.0, "distinct_1_self-inst": 45.0, "repeat_run_self-inst": 1.0}
LOOPING = {**GOOD, "rouge_l": 25.0, "repeat_run": 7.5, "distinct_1": 3.0}  # the best score, from "the the the"
EMPTY_ELSEWHERE = {**GOOD, "rouge_l": 19.0, "empty_rate_self-inst": 90.0}  # fine on the first set only


def config(t: float) -> dict:
    return {"task": "causal_lm", "data": {"dataset": "dolly"}, "teacher": {"name": "gpt2-teacher"}, "data_seed": 0,
            "student": {"objective": "kl", "temperature": t, "temperature_policy": "fixed", "epochs": 1, "seed": 0}}


@pytest.fixture()
def report(tmp_path):
    folder = tmp_path / "study"
    evaluation = {"data.generation": {"protocol": "minillm"}}
    runs = []
    for t, metrics in ((1.0, GOOD), (2.0, LOOPING), (4.0, EMPTY_ELSEWHERE), (8.0, GOOD)):
        measured = evaluation if t != 8.0 else {"data.generation": {"protocol": "greedy"}}  # T = 8: other settings
        runs.append(stored_run(f"kl-{t:g}", config(t), t, 0, metrics, "rouge_l", len(runs), "kl",
                               evaluation=measured, wanted=evaluation))
    write_store(folder / "study.sqlite", runs)
    return build_report(folder)


def test_degenerate_runs_are_named_and_their_cells_marked(report):
    heatmap = (report.folder / "heatmap_final.md").read_text()
    row = next(line for line in heatmap.splitlines() if line.startswith("| all runs |"))
    cells = [c.strip() for c in row.split("|")[2:-1]]
    assert cells[0] == "20.00" and cells[1] == "**25.00** (degenerate)" and cells[2] == "19.00 (degenerate)", cells
    assert "ranks noise" in heatmap
    generations = (report.folder / "generations.md").read_text()
    assert "repeat one n-gram 7.5 times" in generations and "90% of its outputs are empty on self-inst" in generations
    assert "20.00 +- 0.50" in generations  # the mean and its spread over generation seeds
    other = (report.folder / "heatmap_rouge_l_self-inst.md").read_text()
    assert "12.00" in other and "(degenerate)" in other


def test_a_run_awaiting_its_evaluation_is_left_out_with_a_note(report):
    heatmap = (report.folder / "heatmap_final.md").read_text()
    assert "T=8" not in heatmap  # measured under greedy decoding; the study asks for MiniLLM's evaluation
    assert any("not evaluated under these yet" in note for note in report.notes)


def test_one_generation_seed_is_said(tmp_path):
    from kdtemp.report.tables import Record, generation_rows, generations_markdown

    record = Record("r", "done", 1.0, 0, {}, "kl", 1, 20.0, 20.0, metrics={"rouge_l": 20.0, "distinct_1": 40.0},
                    generations=True)
    text = generations_markdown(generation_rows([record]))
    assert "one generation seed: no spread known" in text and "+-" not in text.split("\n", 2)[2]

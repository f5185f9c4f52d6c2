"""The advisor on a language model's store: its image-classification rules say where they were found,
LM practice enters with its source, and a difference measured on one seed is "no spread known", never
"more than the seed spread 0.00"; it does not override the rules."""

from kdtemp.advise import Setup, advise
from helpers.report import stored_run, write_store


def lm_store(folder, seeds=(0,)):
    runs = []
    for t, value in ((1.0, 4.0), (2.0, 3.0), (4.0, 1.5)):
        for seed in seeds:
            config = {"task": "causal_lm", "data": {"dataset": "dolly"}, "teacher": {"name": "gpt2"}, "data_seed": 0,
                      "student": {"objective": "kd", "temperature": t, "temperature_policy": "fixed", "epochs": 1,
                                  "seed": seed, "optimizer": {"name": "adamw"}}}
            runs.append(stored_run(f"kd-{t:g}-{seed}", config, t, seed, {"rouge_l": value + 0.01 * seed}, "rouge_l",
                                   len(runs), "kd"))
    write_store(folder / "study.sqlite", runs)
    return folder


def test_one_seed_is_no_spread_known_and_overrides_nothing(tmp_path):
    advice = advise(Setup(), [lm_store(tmp_path)])
    text = advice.text()
    assert "from one seed: no spread known" in text and "seed spread 0.00" not in text
    assert advice.suggested == 4  # the rules' suggestion stands
    assert "found on image classification" in text and "they say nothing certain about causal_lm" in text
    assert "arXiv 2606.00306" in text and "reverse KL best at T = 1" in text


def test_several_seeds_do_override(tmp_path):
    advice = advise(Setup(), [lm_store(tmp_path, seeds=(0, 1, 2))])
    assert advice.suggested == 1 and "your own matching runs favour T = 1" in advice.reasons[0]


def test_a_store_s_rank_agreement_and_past_tunes_are_shown(tmp_path):
    import json

    folder = lm_store(tmp_path, seeds=(0, 1))
    (folder / "tune.json").write_text(json.dumps({"metric": "val_rouge_l", "settings": [
        {"setting": "all runs", "chosen": "1", "cost_ratio": 0.3, "regret": 0.0, "grid_best": "1"}]}))
    text = advise(Setup(), [folder]).text()
    assert "agrees with the final one at Kendall's tau" in text
    assert "kdtemp tune chose T 1 for all runs on val_rouge_l at 0.30 of the grid's cost, regret 0.00 points" in text


def test_a_language_model_teacher_gets_advice_not_an_error(tmp_path, capsys):
    import torch

    from kdtemp.cli import main

    path = tmp_path / "teacher.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "kdtemp": {"task": "causal_lm", "model": "tiny-gpt2",
                                                            "dataset": {"dataset": "dolly"}}}, path)
    assert main(["advise", "--teacher", str(path)]) == 0
    out = capsys.readouterr().out
    assert "its class-profile measures have no form there" in out and "nothing certain about causal_lm" in out
    assert "reverse KL best at T = 1" in out

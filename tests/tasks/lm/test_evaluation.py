"""Evaluation of causal language models as MiniLLM evaluates them (``data.generation.protocol:
minillm``): its settings exactly, five seeds averaged, outputs post-processed as its
``evaluate_main.py``; the evaluation's sampling temperature kept apart from the distillation
temperature; the measures that reveal a degenerate generator; MiniLLM's evaluation files as they are."""

import json
import statistics

import pytest

from kdtemp.config import ConfigError, from_dict
from kdtemp.engine import CohortConfig, run_cohort
from kdtemp.engine.runtime import Runtime
from kdtemp.tasks import get_task
from kdtemp.tasks.lm.config import MINILLM, LMDataConfig
from kdtemp.tasks.lm.data import read_jsonl
from kdtemp.tasks.lm.metrics import degeneracy, exact_match, longest_repeat_run, postprocess

from helpers.lm import lm_data, tiny_gpt2


def generation(**fields):
    return from_dict(LMDataConfig, {"dataset": "dolly", "generation": fields}, "data").generation


def test_minillm_resolves_to_its_settings_exactly():
    settings = generation(protocol="minillm").resolved()
    assert settings.sample and settings.sampling_temperature == 1.0 and settings.top_p == 1.0
    assert settings.top_k == 0 and settings.no_repeat_ngram_size == 6 and settings.max_new_tokens == 256
    assert settings.seeds == (10, 20, 30, 40, 50)
    assert generation(protocol="minillm", top_k=0, seeds=[10, 20, 30, 40, 50]).resolved() == settings
    greedy = generation().resolved()
    assert not greedy.sample and greedy.seeds == (0,) and greedy.no_repeat_ngram_size == 0


@pytest.mark.parametrize("fields, message", [
    ({"protocol": "minillm", "top_p": 0.9},
     r"^data.generation.top_p: protocol minillm fixes it at 1.0; got 0.9 \(use protocol: sample to change it\)$"),
    ({"protocol": "minillm", "seeds": [1]}, r"^data.generation.seeds: protocol minillm fixes it at \[10, 20, 30, 40, 50\]"),
    ({"sampling_temperature": 0.7}, r"^data.generation.sampling_temperature: greedy decoding does not sample"),
    ({"protocol": "sample", "seeds": []}, r"^data.generation.seeds: must be a non-empty list of distinct integers"),
    ({"protocol": "sample", "top_k": -1}, r"^data.generation.top_k: must be >= 0"),
    ({"protocol": "beam"}, r"^data.generation.protocol: "),
    # the evaluation's sampling temperature has its own name: the old ambiguous one is refused
    ({"protocol": "sample", "temperature": 0.7}, r"^data.generation.temperature: unknown field; allowed: .*sampling_temperature"),
])
def test_bad_generation_settings_get_one_line(fields, message):
    with pytest.raises(ConfigError, match=message):
        generation(**fields)


def test_minillm_evaluates_with_its_lengths():
    with pytest.raises(ConfigError, match=r"^data.max_prompt_length: protocol minillm evaluates with max_prompt_length 256; got 64"):
        from_dict(LMDataConfig, {"dataset": "dolly", "max_prompt_length": 64, "generation": {"protocol": "minillm"}}, "data")


def test_outputs_are_post_processed_as_minillm_does():
    assert postprocess("  The answer.<|endoftext|>more text ") == "The answer."
    assert postprocess("\n plain \n") == "plain"
    # MiniLLM's exact match keeps the articles; SQuAD's removes them
    assert exact_match(["the cat"], [["cat"]]) == 100.0
    assert exact_match(["the cat"], [["cat"]], articles=False) == 0.0


def test_degenerate_output_is_measured():
    assert longest_repeat_run("the the the the".split()) == 4
    assert longest_repeat_run("a b a b a b c".split()) == 3
    assert longest_repeat_run("one two three".split()) == 1
    assert longest_repeat_run([]) == 0
    measured = degeneracy(["", "the the the", "a b c d"])
    assert measured["empty_rate"] == pytest.approx(100 / 3)
    # words: the x3, a b c d -> 7 unigrams, 5 distinct; bigrams: (the the) x2, ab bc cd -> 5, 4 distinct
    assert measured["distinct_1"] == pytest.approx(100 * 5 / 7)
    assert measured["distinct_2"] == pytest.approx(100 * 4 / 5)
    assert measured["repeat_run"] == pytest.approx((0 + 3 + 1) / 3)


def test_minillm_evaluation_files_are_read_as_they_are(tmp_path):
    path = tmp_path / "sni.jsonl"
    path.write_text(json.dumps({"instruction": "Name a colour.", "input": "", "output": ["red", "blue"],
                                "prompt": "Name a colour.\n"}) + "\n"
                    + json.dumps({"instruction": "Say hi.", "input": "", "output": "hi"}) + "\n")
    first, second = read_jsonl(path, need_response=False, field_name="data.eval_sets")
    assert first.prompt == "Name a colour.\n" and first.references == ["red", "blue"]
    assert second.references == ["hi"] and "### Instruction:\nSay hi." in second.prompt
    path.write_text(json.dumps({"instruction": "Say hi.", "input": ""}) + "\n")
    with pytest.raises(ConfigError, match=r"^data.eval_sets: .*sni.jsonl line 1: no 'output' or 'response'"):
        read_jsonl(path, need_response=False, field_name="data.eval_sets")


@pytest.fixture
def minillm_data(instructions, lm_tokenizer, tmp_path):
    data = lm_data(instructions, lm_tokenizer, tmp_path / "cache", eval_sets=["test"], eval_samples=4,
                   max_prompt_length=256, max_length=512)
    data["generation"] = {"protocol": "minillm", "max_new_tokens": None, "batch_size": 4}
    return data


def test_five_seed_minillm_evaluation_equals_rouge_score_on_the_same_generations(minillm_data, monkeypatch):
    """The task's ROUGE-L is rouge_scorer's F-measure with stemming, x100, the best over references,
    averaged over prompts and then over the five seeds; generate is called with MiniLLM's settings."""
    from rouge_score import rouge_scorer

    from kdtemp.tasks.lm.models import CausalLM

    config = from_dict(CohortConfig, {"task": "causal_lm", "data": minillm_data, "batch_size": 4, "device": "cpu",
                                      "members": [{"model": {"name": "s", "init": "random",
                                                             "config": {**tiny_gpt2(layers=1), "n_positions": 512}},
                                                   "objective": None}]})
    runtime = Runtime.create("cpu", "fp32")
    task = get_task("causal_lm")
    data = task.open(config, runtime)
    model = task.create_model(config.members[0].model, data, runtime, "student")
    calls, outputs = [], {}
    original_generate, original_call = model.module.generate, CausalLM.generate

    def spy_generate(*args, **kwargs):
        calls.append({k: v for k, v in kwargs.items() if k not in ("input_ids", "attention_mask")})
        return original_generate(*args, **kwargs)

    def spy_call(self, split, settings, seed, *args):
        outputs[seed] = original_call(self, split, settings, seed, *args)
        return outputs[seed]

    monkeypatch.setattr(model.module, "generate", spy_generate)
    monkeypatch.setattr(CausalLM, "generate", spy_call)
    metrics = task.evaluate(model, data, runtime, 4)

    assert sorted(outputs) == [10, 20, 30, 40, 50]
    assert all(c["do_sample"] and c["top_k"] == 0 and c["top_p"] == 1.0 and c["temperature"] == 1.0
               and c["no_repeat_ngram_size"] == 6 for c in calls)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    references = data.evals["test"].references
    per_seed = [100 * sum(max(scorer.score(ref, pred)["rougeL"].fmeasure for ref in refs)
                          for pred, refs in zip(outputs[seed], references)) / len(references)
                for seed in (10, 20, 30, 40, 50)]
    assert float(metrics["rouge_l"]) == pytest.approx(sum(per_seed) / 5, rel=1e-6)
    assert float(metrics["seed_sd_rouge_l"]) == pytest.approx(statistics.stdev(per_seed), rel=1e-5, abs=1e-6)
    assert {"empty_rate", "distinct_1", "distinct_2", "repeat_run", "seed_sd_empty_rate"} <= set(metrics)


def test_the_evaluation_sampling_temperature_changes_no_training(instructions, lm_tokenizer, tmp_path):
    """Two cohorts that differ only in the evaluation's sampling temperature train the same losses at the
    same distillation temperature, bit for bit."""
    curves = []
    for sampling in (0.7, 1.5):
        data = lm_data(instructions, lm_tokenizer, tmp_path / "cache", eval_samples=2)
        data["generation"] = {"protocol": "sample", "sampling_temperature": sampling, "max_new_tokens": 3,
                              "batch_size": 4}
        config = from_dict(CohortConfig, {
            "task": "causal_lm", "data": data, "batch_size": 8, "device": "cpu",
            "teacher": {"name": "t", "init": "random", "config": tiny_gpt2(width=48)},
            "members": [{"model": {"name": "s", "init": "random", "config": tiny_gpt2(layers=1)}, "epochs": 1,
                         "temperature": 2.0, "optimizer": {"name": "adamw", "lr": 3e-3}}]})
        (result,) = run_cohort(config, progress=False)
        curves.append([(row["train_loss"], row["temperature"]) for row in result.curve])
    assert curves[0] == curves[1] and curves[0][0][1] == 2.0


def test_minillm_cuts_evaluation_prompts_to_their_first_tokens(instructions, lm_tokenizer, tmp_path):
    from kdtemp.tasks.lm.data import load_splits
    from kdtemp.tasks.hf import load_tokenizer

    tokenizer = load_tokenizer(str(lm_tokenizer))
    config = from_dict(LMDataConfig, lm_data(instructions, lm_tokenizer, tmp_path / "cache", eval_sets=["test"],
                                              max_prompt_length=256, max_length=512,
                                              generation={"protocol": "minillm"}))
    config.max_prompt_length = 5  # below the records' prompts, as a 256-token cut of a long prompt
    splits = load_splits(config, tokenizer, str(lm_tokenizer), tmp_path / "cache")
    prompt = splits["test"].prompts()[0]
    whole = tokenizer(read_jsonl(instructions / "test.jsonl")[0].prompt)["input_ids"]
    assert prompt == whole[:5]  # MiniLLM keeps the start; the training splits keep the end
    train = splits["train"].prompts()[0]
    assert train == tokenizer(read_jsonl(instructions / "train.jsonl")[0].prompt)["input_ids"][-5:]
    assert MINILLM["max_new_tokens"] == 256

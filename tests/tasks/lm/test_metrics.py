"""ROUGE-L and exact match as MiniLLM measures them, against rouge-score called directly."""

import pytest
from rouge_score import rouge_scorer

from kdtemp.tasks.lm.metrics import exact_match, normalise, rouge_l


def test_rouge_l_is_rouge_scores_stemmed_f_measure_best_over_references_times_100():
    predictions = ["the cats were running quickly", "a red apple", "nothing alike here", ""]
    references = [["the cat runs quick", "cats were running"], ["red apples", "an apple that is red", "green pear"],
                  ["completely different words"], ["some text"]]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    best = [max(scorer.score(ref, pred)["rougeL"].fmeasure for ref in refs) for pred, refs in zip(predictions, references)]
    assert rouge_l(predictions, references) == pytest.approx(100 * sum(best) / len(best), abs=1e-12)
    assert best[0] == scorer.score("cats were running", predictions[0])["rougeL"].fmeasure  # the second reference won
    assert best[0] > scorer.score("the cat runs quick", predictions[0])["rougeL"].fmeasure
    # stemming counts: "running" and "runs" share the stem "run"
    assert rouge_l(["runs"], [["running"]]) == pytest.approx(100.0)


def test_exact_match_normalises_as_squad_and_takes_any_reference():
    assert normalise("  The Cat, sat!  ") == "cat sat"
    assert exact_match(["The cat sat.", "dog", "x"], [["cat sat"], ["a dog", "hound"], ["y"]]) == pytest.approx(200 / 3)
    assert rouge_l([], []) == 0.0 and exact_match([], []) == 0.0
    with pytest.raises(ValueError):
        rouge_l(["a"], [])

"""Generation metrics as MiniLLM measures them: ROUGE-L and exact match, in percent.

ROUGE-L is ``rouge-score``'s ROUGE-L F-measure with Porter stemming, the maximum over a prompt's
references, averaged over prompts and times 100. Exact match compares SQuAD-normalised strings
(lower case, punctuation and the articles a/an/the removed, whitespace collapsed) and counts a
prediction equal to any reference.
"""

from __future__ import annotations

import re
import string

ROUGE_L = "rouge_l"
EXACT_MATCH = "exact_match"
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def _scorer():
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        from ...config import ConfigError

        raise ConfigError("task: causal_lm scores generations with rouge-score; install it with: "
                          "pip install 'kdtemp[lm]'") from None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(predictions: list[str], references: list[list[str]]) -> float:
    """Mean over prompts of the best ROUGE-L F-measure against its references, x100 (0 for none)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists")
    if not predictions:
        return 0.0
    scorer = _scorer()
    best = [max((scorer.score(ref, pred)["rougeL"].fmeasure for ref in refs), default=0.0)
            for pred, refs in zip(predictions, references)]
    return 100.0 * sum(best) / len(best)


def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(predictions: list[str], references: list[list[str]]) -> float:
    """Percent of predictions equal (normalised) to any of their references."""
    if not predictions:
        return 0.0
    hits = sum(any(normalise(pred) == normalise(ref) for ref in refs) for pred, refs in zip(predictions, references))
    return 100.0 * hits / len(predictions)

"""Generation metrics as MiniLLM measures them: ROUGE-L and exact match, in percent; and what shows a
degenerate generator (empty outputs, few distinct n-grams, an n-gram repeated over and over).

ROUGE-L is ``rouge-score``'s ROUGE-L F-measure with Porter stemming, the maximum over a prompt's
references, averaged over prompts and times 100. Exact match compares SQuAD-normalised strings
(lower case, punctuation and the articles a/an/the removed, whitespace collapsed; MiniLLM keeps the
articles) and counts a prediction equal to any reference. An output is post-processed as MiniLLM's
``evaluate_main.py`` does: cut at ``<|endoftext|>`` when present, stripped.
"""

from __future__ import annotations

import re
import string

ROUGE_L = "rouge_l"
EXACT_MATCH = "exact_match"
END_OF_TEXT = "<|endoftext|>"
DEGENERACY = ("empty_rate", "distinct_1", "distinct_2", "repeat_run")
"""Per evaluation set: the percent of empty outputs, distinct 1- and 2-grams over all n-grams of the
outputs (percent), and the mean over outputs of the longest run of one n-gram (n <= 4) repeated
back to back (1 for text without such a repeat; "the the the" is 3)."""
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


def postprocess(text: str) -> str:
    """An output as MiniLLM scores it: cut at ``<|endoftext|>`` when present, stripped."""
    return text.split(END_OF_TEXT)[0].strip()


def normalise(text: str, articles: bool = True) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles (kept when ``articles``
    is False, as MiniLLM's), single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join((_ARTICLES.sub(" ", text) if articles else text).split())


def exact_match(predictions: list[str], references: list[list[str]], articles: bool = True) -> float:
    """Percent of predictions equal (normalised, :func:`normalise`) to any of their references."""
    if not predictions:
        return 0.0
    hits = sum(any(normalise(pred, articles) == normalise(ref, articles) for ref in refs)
               for pred, refs in zip(predictions, references))
    return 100.0 * hits / len(predictions)


def longest_repeat_run(words: list[str], longest_n: int = 4) -> int:
    """The most times one n-gram (``n <= longest_n``) follows itself back to back in ``words`` (1 when
    none does, 0 for no words)."""
    best = 1 if words else 0
    for n in range(1, longest_n + 1):
        for start in range(n):  # runs aligned at each offset
            run, previous = 0, None
            for i in range(start, len(words) - n + 1, n):
                gram = tuple(words[i:i + n])
                run = run + 1 if gram == previous else 1
                previous = gram
                best = max(best, run)
    return best


def degeneracy(predictions: list[str]) -> dict[str, float]:
    """:data:`DEGENERACY` of a set's outputs (whitespace words)."""
    if not predictions:
        return {name: 0.0 for name in DEGENERACY}
    words = [p.split() for p in predictions]
    out = {"empty_rate": 100.0 * sum(not w for w in words) / len(words)}
    for n in (1, 2):
        grams = [tuple(w[i:i + n]) for w in words for i in range(len(w) - n + 1)]
        out[f"distinct_{n}"] = 100.0 * len(set(grams)) / len(grams) if grams else 0.0
    out["repeat_run"] = sum(longest_repeat_run(w) for w in words) / len(words)
    return out


DEGENERATE = {"empty_rate": (">=", 50.0, "{:.0f}% of its outputs are empty"),
              "repeat_run": (">=", 4.0, "its outputs repeat one n-gram {:.1f} times in a row on average"),
              "distinct_1": ("<", 10.0, "only {:.1f}% of its words are distinct")}
"""When generations are noise: at least half empty, a mean longest repeat of 4 or more ("the the the
the"), or under 10% distinct words. A teacher SFT'd long enough on real instructions is far from all
three; one that emits its end-of-sequence at once, or loops, is not."""


def degenerate_reason(metrics: dict[str, float], every_set: bool = False) -> str | None:
    """Why generations with these measures are degenerate (:data:`DEGENERATE`), or None; None too when
    they were not measured. The first evaluation set's measures are unsuffixed (``empty_rate``);
    ``every_set`` reads the others' too (``empty_rate_self-inst``), naming the set in the reason."""
    others = sorted({key[len("empty_rate_"):] for key in metrics if key.startswith("empty_rate_")})
    suffixes = [""] + (others if every_set else [])
    for suffix in suffixes:
        for name, (compare, limit, why) in DEGENERATE.items():
            value = metrics.get(f"{name}_{suffix}" if suffix else name)
            if value is None or value != value:
                continue
            if (value >= limit) if compare == ">=" else (value < limit):
                return why.format(value) + (f" on {suffix}" if suffix else "")
    return None

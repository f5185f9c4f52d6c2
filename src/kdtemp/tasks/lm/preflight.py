"""Preflight of language-model cohorts: every mistake that depends on the data, the tokenizer, a
model file or the objective, found before any work, as one line naming the field.

It reads each dataset's records once (every line must give a prompt and a response), tokenises the
prompts once when ``prompt_policy`` is ``refuse`` (to name the first prompt over the limit), loads
the tokenizer once, and checks each model from its config without building it: teacher and
students must share one tokenizer; a model's vocabulary must hold every id the tokenizer gives (a
teacher's larger only by padding is cut to it, with a note) and its positions ``max_length``. An
objective whose value couples the rows of a batch, and instance-wise DTS, do not apply to tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ...config import ConfigError
from ...files import warn
from ...objectives.registry import get_spec
from ...temperature import get_policy
from ..base import Preflight, check_device
from ..hf import (SAMPLE_TEXTS, build_on_meta, check_tokenizer_reads, hf_config, load_tokenizer, model_limits,
                  recorded_tokenizer, tokenizer_identity, tokenizer_source)
from .config import MINILLM_SPLITS, LMDataConfig
from .data import long_prompts, read_records, splits_of
from .indexed import TokenRecord, check_ids

__all__ = ["preflight", "tokenizer_source"]

ROW_WISE_HINT = "kd (forward KL), reverse_kl, jsd, skew_kl, skew_reverse_kl or another row-wise objective"


@dataclass
class LMFacts:
    """What preflight learned about one instruction dataset (after the sample limits)."""

    data: LMDataConfig
    train: int
    test: int
    sets: dict[str, int]

    @property
    def classes(self) -> list[str]:  # the cost estimate and plan ask every dataset
        return []

    def describe(self) -> str:
        where = f" {self.data.root}" if self.data.root else " (datasets: databricks/databricks-dolly-15k)"
        sets = ", ".join(f"{name} {count:,}" for name, count in self.sets.items())
        return f"{self.data.dataset}{where}: {self.train:,} train records; evaluation {sets}"


def _limit(count: int, limit: int | None) -> int:
    return count if limit is None else min(count, limit)


def _dataset(data: LMDataConfig, download: bool, state: Preflight) -> tuple[LMFacts | None, dict | None]:
    key = Preflight.key(data)
    if key in state.datasets:
        return state.datasets[key], None
    try:
        records = read_records(data)
    except ConfigError as error:
        if data.root is None and not download and str(error).startswith("data.dataset: Dolly"):
            return None, None  # not cached yet: the run reads it (downloading with data.download) and checks it then
        raise
    sets = {name: _limit(len(records[name]), data.eval_samples) for name in data.eval_sets}
    facts = LMFacts(data, _limit(len(records["train"]), data.train_samples), sets[data.eval_sets[0]], sets)
    state.datasets[key] = facts
    return facts, records


def check_prompts(data: LMDataConfig, records: dict, tokenizer: Any) -> None:
    """Under ``prompt_policy: refuse``, one line for the first split with a prompt over the limit."""
    if data.prompt_policy != "refuse":
        return
    for split in splits_of(data):
        limit = data.train_samples if split == "train" else data.eval_samples
        chosen = records[split][:limit] if limit else records[split]
        over = long_prompts(chosen, tokenizer, data.max_prompt_length)
        if over:
            raise ConfigError(f"data.max_prompt_length: {len(over)} {split} prompt(s) have more than "
                              f"{data.max_prompt_length} tokens (the first is record {over[0] + 1}) and prompt_policy "
                              "is refuse; raise the limit, or set prompt_policy: truncate (keeps each prompt's last "
                              "tokens and reports the count)")


def check_objectives(members: list[Any], prefix: str) -> None:
    for member in members:
        if not member.distills:
            continue
        spec = get_spec(member.objective)
        if spec.no_token_form:
            raise ConfigError(f"{prefix}objective: {member.objective!r} does not apply to a vocabulary "
                              f"({spec.no_token_form}); allowed: {ROW_WISE_HINT}")
        policy = get_policy(member.temperature_policy)
        if policy.no_token_form:
            raise ConfigError(f"{prefix}temperature_policy: {policy.name} {policy.no_token_form}")


def check_models(models: list[tuple[Any, str]], tokenizer: Any, tokenizer_name: str, data: LMDataConfig,
                 noted: set[str] | None = None) -> None:
    """One tokenizer for all; vocabularies and positions that fit it (each note printed once per
    model, field and tokenizer in ``noted``)."""
    noted = set() if noted is None else noted
    identity = tokenizer_identity(tokenizer, "")
    size = len(tokenizer)
    for model, field in models:
        pending = model.init == "checkpoint" and model.prepared and not Path(model.weights).expanduser().exists()
        source = None if pending else recorded_tokenizer(model, field)  # a model prepared by the study: this data's
        if source is not None and source != tokenizer_name:
            other = load_tokenizer(source, f"{field}.name")
            if tokenizer_identity(other, "") != identity:
                raise ConfigError(f"{field}: {model.name!r} uses the tokenizer {source!r}, which differs from the "
                                  f"cohort's {tokenizer_name!r} (its vocabulary or rules); teacher and students must "
                                  "share one tokenizer and vocabulary")
        hf = hf_config(model, field)
        if hf is None:
            continue
        build_on_meta(model, hf, field, "AutoModelForCausalLM")
        vocabulary, positions = model_limits(hf)
        if isinstance(vocabulary, int) and vocabulary < size:
            raise ConfigError(f"{field}: {model.name!r} has embeddings for {vocabulary} tokens, but the tokenizer "
                              f"{tokenizer_name!r} gives ids up to {size - 1}; use the model's own tokenizer")
        note = f"{field}|{model.name}|{tokenizer_name}"
        if isinstance(vocabulary, int) and vocabulary > size and note not in noted:
            noted.add(note)
            warn(f"{field}: {model.name!r} has {vocabulary} output tokens, {vocabulary - size} more than the "
                 f"tokenizer's {size} (padding); its logits are cut to the {size} shared tokens")
        if isinstance(positions, int) and data.max_length > positions:
            raise ConfigError(f"data.max_length: {data.max_length} exceeds the {positions} positions of {field} "
                              f"{model.name!r}; allowed: at most {positions}")


def check_teacher_cache(shared: Any, members: list[Any], prefix: str) -> None:
    """A cohort trained from ``data.teacher_cache``: a teacher to cache, members whose objective has a
    cached form and whose responses are the data's own (the cache holds the teacher on those only)."""
    from ...objectives.teacher_cache import CACHED_FORMS, cached_rows_loss

    if shared.teacher is None:
        raise ConfigError("data.teacher_cache: caches the cohort's teacher; this cohort has none (set teacher)")
    for member in members:
        if cached_rows_loss(member.objective, dict(member.objective_params)) is None:
            raise ConfigError(f"{prefix}objective: {member.objective!r} (with {dict(member.objective_params)}) reads the "
                              f"teacher's full logits, which data.teacher_cache does not hold; allowed with a cache: "
                              f"{', '.join(CACHED_FORMS)} (jsd with beta, the skew KLs with skew)")
        source = member.responses.source
        if source != "dataset" and member.responses.fraction > 0:
            what = "generates the responses" if source == "teacher" else "scores the member's own samples"
            raise ConfigError(f"{prefix}responses.source: {source} needs the live teacher, which {what}; "
                              "data.teacher_cache holds the teacher on the data's own responses only")


def preflight(cohorts: Iterable[tuple[Any, list[Any]]], device: str = "auto", download: bool = True,
              member_field: str = "student", state: Preflight | None = None) -> Preflight:
    """Check every language-model cohort (its shared config and members)."""
    state = state or Preflight()
    check_device(device, "executor.device" if member_field == "student" else "device")
    noted: set[str] = set()
    for shared, members in cohorts:
        prefix = f"{member_field}." if member_field else ""
        check_objectives(members, prefix)
        for member in members:
            source = member.responses.source
            if source != "dataset" and shared.teacher is None and member.responses.fraction > 0:
                what = "generates the responses" if source == "teacher" else "scores the member's samples"
                raise ConfigError(f"{prefix}responses.source: {source} needs the cohort's teacher, which {what}; this "
                                  "cohort has none (set teacher, or source: dataset)")
        if shared.data.teacher_cache is not None:
            check_teacher_cache(shared, members, prefix)
        facts, records = _dataset(shared.data, download, state)
        models = ([(shared.teacher, "teacher")] if shared.teacher is not None else []) + \
            [(member.model, f"{prefix}model") for member in members]
        if facts is None:  # the data is read when the run starts (from datasets); the models can be found now
            for model, field in models:
                hf_config(model, field)
            continue
        if shared.batch_size > facts.train:
            raise ConfigError(f"batch_size: {shared.batch_size} exceeds the {facts.train} training records of this data "
                              f"({facts.describe()}); allowed: at most {facts.train}")
        name = tokenizer_source(shared, members)
        tokenizer = load_tokenizer(name)
        if tokenizer.eos_token_id is None:
            raise ConfigError(f"data.tokenizer: {name!r} has no end-of-sequence token; a causal language model's "
                              "responses end with one (set eos_token in its tokenizer_config.json)")
        if records is not None:  # None: this dataset was read for an earlier cohort, and checked then
            if records["train"] and isinstance(records["train"][0], TokenRecord):  # MiniLLM's ids: made by this tokenizer?
                for split in MINILLM_SPLITS:
                    check_ids(records[split], tokenizer.eos_token_id, len(tokenizer), split)
                texts = [r.prompt + r.response for r in records[shared.data.eval_sets[0]][:SAMPLE_TEXTS]]
            else:
                texts = [r.prompt + r.response for r in records["train"][:SAMPLE_TEXTS]]
            check_tokenizer_reads(tokenizer, name, texts)
            check_prompts(shared.data, records, tokenizer)
        cache = shared.data.teacher_cache
        if cache is not None and cache.k > len(tokenizer):
            raise ConfigError(f"data.teacher_cache.k: {cache.k} exceeds the vocabulary of {len(tokenizer):,} tokens; "
                              f"allowed: 1 to {len(tokenizer):,}")
        if cache is not None and cache.k < len(tokenizer):
            state.warn_once(f"data.teacher_cache: k {cache.k} of the {len(tokenizer):,}-token vocabulary: each divergence "
                            f"is taken over the top {cache.k} and the rest as one bin, a lower bound of the live "
                            "teacher's that loosens as T rises and spreads the teacher's mass into that bin (measured "
                            "in docs/large-teacher.md); only k equal to the vocabulary is exact at every T")
        check_models(models, tokenizer, name, shared.data, noted)
    return state

"""Causal language models on the task interface: instruction data, token-level distillation, ROUGE-L.

A training batch's rows are its predicted response tokens: the teacher's logits ``[N, V]`` at those
positions are computed once per batch and shared by every member of the cohort (kept in the
model's precision, bf16 on a GPU; every loss upcasts ``chunk_tokens`` rows at a time). Any row-wise
objective applies to token rows (``kd`` is the forward KL; ``reverse_kl``, ``jsd``, ``skew_kl`` and
``skew_reverse_kl`` are the other divergences), chunked; the batch-coupled ones are refused before
any work. DTS's progress counts optimizer steps (``step / total_steps``), not epochs.

Evaluation per epoch: the validation token loss and perplexity, then on every evaluation set the
generations' ROUGE-L (the primary metric: the first set's ``rouge_l``) and exact match.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable

import numpy as np
import torch
from torch import Tensor

from ...config import ConfigError, to_dict
from ...objectives.teacher_cache import cached_token_objective
from ...objectives.token import TokenObjective
from ...paths import default_cache_dir
from ..base import MemoryEstimate, MetricName, SampleSink, Task, register_task
from ..hf import forward_flops, load_tokenizer, model_label, tokenizer_source
from .config import CausalLMConfig, LMAugmentConfig, LMDataConfig, ResponsesConfig
from .data import VALIDATION_GENERATION, LMBatch, LMSplit, LMStream, load_splits
from .responses import with_eos
from .teacher_cache import cached_teacher, stored_bytes
from .memory import data_bytes, model_memory
from .metrics import EXACT_MATCH, ROUGE_L, degeneracy, degenerate_reason, exact_match, postprocess, rouge_l
from .models import CausalLM, load_causal_lm, output_vocabulary


def metric_names(eval_sets: list[str]) -> list[tuple[str, str]]:
    """``(ROUGE-L name, exact-match name)`` per evaluation set: the first set's plain, the others suffixed."""
    return [(ROUGE_L, EXACT_MATCH) if index == 0 else (f"{ROUGE_L}_{name}", f"{EXACT_MATCH}_{name}")
            for index, name in enumerate(eval_sets)]


def _vocabulary(shared: Any, members: list[Any] | None = None) -> int | None:
    """The size of the cohort's tokenizer, for a plan; None while it is unknown (a tokenizer that comes
    with a teacher the study's preparation has not written yet)."""
    try:
        return len(load_tokenizer(tokenizer_source(shared, members)))
    except ConfigError:
        return None


def decoder(tokenizer: Any):
    """Token ids to the text a generation is scored as: decoded without special tokens, post-processed as
    MiniLLM does (:func:`~kdtemp.tasks.lm.metrics.postprocess`)."""
    return lambda ids: postprocess(tokenizer.decode(ids, skip_special_tokens=True))


@dataclass
class LMData:
    """The data of one language-model cohort on its device."""

    train: LMSplit
    validation: LMSplit
    evals: dict[str, LMSplit]
    stream: LMStream
    tokenizer_name: str
    tokenizer: Any
    vocabulary: int
    config: LMDataConfig
    cache_dir: Path | None = None
    held_out: LMSplit | None = None
    """The validation records generated on each epoch (``data.validation``), or None."""
    sources: dict[Hashable, tuple[LMSplit, tuple[Tensor, Tensor]]] = field(default_factory=dict)
    """Teacher-generated training responses per setting, with their host lengths (read once)."""
    _prompts: list[list[int]] | None = None

    def train_prompts(self) -> list[list[int]]:
        """The training records' prompt ids, read to the host once."""
        if self._prompts is None:
            self._prompts = self.train.prompts()
        return self._prompts

    @property
    def num_classes(self) -> int:
        return self.vocabulary

    @property
    def train_size(self) -> int:
        return len(self.train)


@register_task("causal_lm")
class CausalLanguageModeling(Task):
    """Instruction-following distillation of Hugging Face causal LMs; primary metric ROUGE-L."""

    name = "causal_lm"
    primary_metric = ROUGE_L
    sample_noun = "records"
    step_unit = "record-steps"
    metric_names = {ROUGE_L: MetricName("ROUGE-L (x100)", "ROUGE-L", "", "ROUGE-L"),
                    EXACT_MATCH: MetricName("exact match (%)", "exact match", "%", "exact match")}
    primary_goal = "max"
    precisions = ("auto", "fp32", "bf16")  # Hugging Face models in float32 or under bf16 autocast
    data_config = LMDataConfig
    augment_config = LMAugmentConfig
    model_config = CausalLMConfig
    keeps_logit_precision = True  # [N, V] logits stay in the model's precision; losses upcast per chunk
    progress_unit = "step"  # DTS's cosine runs over optimizer steps
    diagnoses_teacher = False  # the study's class-profile diagnostics have no token form yet
    writes_samples = True  # every evaluation's generations, beside the run
    evaluation_fields = frozenset({"generation", "eval_sets", "eval_root", "eval_samples",
                                   "validation"})  # training reads none
    teacher_data_fields = frozenset({"teacher_cache"})  # a preparation trains its teacher without the cache
    validation_split = True  # data.validation: records of the data's own validation split, generated on
    member_sections = {"responses": ResponsesConfig}  # where a member's training responses come from

    def open(self, shared: Any, runtime: Any, progress: bool = False) -> LMData:
        name = tokenizer_source(shared)
        tokenizer = load_tokenizer(name)
        cache = Path(shared.data.cache_dir).expanduser() if shared.data.cache_dir else default_cache_dir()
        splits = load_splits(shared.data, tokenizer, name, cache, progress)
        train = splits["train"].to(runtime.device)
        evals = {split: splits[split].to(runtime.device) for split in shared.data.eval_sets}
        held_out = splits.get(VALIDATION_GENERATION)
        if held_out is not None:  # scored against its references, or (MiniLLM's token files) its own response
            decode = decoder(tokenizer)
            held_out = dataclasses.replace(held_out, references=[
                refs or [decode(response)] for refs, response in zip(held_out.references, held_out.responses())])
        return LMData(train, splits["validation"].to(runtime.device), evals,
                      LMStream(train, shared.batch_size, shared.data_seed, shared.data.chunk_tokens), name, tokenizer,
                      len(tokenizer), shared.data, cache, None if held_out is None else held_out.to(runtime.device))

    def create_model(self, config: CausalLMConfig, data: LMData, runtime: Any, role: str) -> CausalLM:
        """The model ``config`` describes; a teacher under ``data.teacher_cache`` is its cache
        (:func:`~kdtemp.tasks.lm.teacher_cache.cached_teacher`: the live teacher is loaded only to write
        the shards that are missing)."""
        if role == "teacher" and data.config.teacher_cache is not None:
            from ..hf import tokenizer_identity

            return cached_teacher(config, data.train, tokenizer_identity(data.tokenizer, data.tokenizer_name),
                                  data.vocabulary, data.config.teacher_cache, runtime,
                                  data.cache_dir or default_cache_dir(), lambda: self._load(config, data, runtime, role),
                                  data.stream.batch_size)
        return self._load(config, data, runtime, role)

    def _load(self, config: CausalLMConfig, data: LMData, runtime: Any, role: str) -> CausalLM:
        where = "teacher" if role == "teacher" else "student.model"
        module = load_causal_lm(config, role, where, runtime.device)
        width = output_vocabulary(module)
        if width < data.vocabulary:
            from ...config import ConfigError

            raise ConfigError(f"{where}: {config.name!r} has {width} output tokens, fewer than the tokenizer's "
                              f"{data.vocabulary}")
        return CausalLM(module, data.tokenizer_name, data.vocabulary)

    def prepare_objective(self, objective: Any, data: LMData) -> TokenObjective:
        """The member's objective applied to token rows, chunked (against the teacher's cache under
        ``data.teacher_cache``)."""
        if data.config.teacher_cache is not None:
            return cached_token_objective(objective, data.config.chunk_tokens)
        return TokenObjective(objective, data.config.chunk_tokens)

    def evaluate(self, model: CausalLM, data: LMData, runtime: Any, batch_size: int,
                 samples: SampleSink | None = None) -> dict[str, Tensor]:
        """``loss`` and ``perplexity`` on the validation split, then per evaluation set, from its
        generations under ``data.generation`` (post-processed as MiniLLM's, :func:`postprocess`):
        ROUGE-L, exact match and the degeneracy measures (:data:`DEGENERACY`), each the mean over the
        generation seeds, with ``seed_sd_<name>`` (their sample standard deviation) when there are
        several (a prefix, so ``rouge_l_<set>`` keeps naming evaluation sets only). ``samples``: each set's
        and seed's generations as rows ``{prompt, references, output, seed}`` (MiniLLM's ``answers.jsonl``,
        lm-eval-harness's ``--log_samples``), named ``<set>-seed<seed>``."""
        if data.config.teacher_cache is not None and not isinstance(model, CausalLM):
            return {}  # the teacher's cache: the teacher is not loaded, so not evaluated (its metadata names the cache)
        loss, _ = model.token_loss(data.validation, batch_size, runtime, data.config.chunk_tokens)
        out = {"loss": torch.tensor(loss), "perplexity": torch.tensor(math.exp(min(loss, 700.0)))}
        generation = data.config.generation.resolved()
        articles = generation.protocol != "minillm"  # MiniLLM's exact match keeps the articles
        tokenizer = data.tokenizer
        eos = tokenizer.eos_token_id
        decode = decoder(tokenizer)
        for index, ((rouge_name, match_name), split) in enumerate(zip(metric_names(data.config.eval_sets),
                                                                      data.evals.values())):
            set_name = data.config.eval_sets[index]
            suffix = "" if index == 0 else f"_{set_name}"
            per_seed: dict[str, list[float]] = {}
            prompts = [tokenizer.decode(ids) for ids in split.prompts()] if samples is not None else []
            for seed in generation.seeds:
                predictions = model.generate(split, generation, seed, split.pad_id, eos, runtime, decode)
                if samples is not None:
                    samples(f"{set_name}-seed{seed}", [
                        {"prompt": prompt, "references": refs, "output": output, "seed": seed}
                        for prompt, refs, output in zip(prompts, split.references, predictions)])
                values = {rouge_name: rouge_l(predictions, split.references),
                          match_name: exact_match(predictions, split.references, articles),
                          **{f"{name}{suffix}": value for name, value in degeneracy(predictions).items()}}
                for name, value in values.items():
                    per_seed.setdefault(name, []).append(value)
            for name, values in per_seed.items():
                out[name] = torch.tensor(sum(values) / len(values))
                if len(values) > 1:
                    out[f"seed_sd_{name}"] = torch.tensor(statistics.stdev(values))
        return out

    def validation_scores(self, model: CausalLM, data: LMData, runtime: Any, batch_size: int) -> dict[str, Tensor]:
        """ROUGE-L and exact match of the generations (``data.generation``, its first seed) on the first
        ``data.validation`` records of the validation split, each scored against its references or, a
        record without any (MiniLLM's token files), its own response; none without ``data.validation``."""
        if data.held_out is None:
            return {}
        generation = data.config.generation.resolved()
        tokenizer = data.tokenizer
        predictions = model.generate(data.held_out, generation, generation.seeds[0], data.held_out.pad_id,
                                     tokenizer.eos_token_id, runtime, decoder(tokenizer))
        references = data.held_out.references
        return {ROUGE_L: torch.tensor(rouge_l(predictions, references)),
                EXACT_MATCH: torch.tensor(exact_match(predictions, references, generation.protocol != "minillm"))}

    def batch_source(self, member: Any) -> Hashable | None:
        """None for the data's responses (and ``lmbda: 0``); the generation settings for the teacher's
        (members with the same share them); the member itself for its own samples (on-policy)."""
        responses: ResponsesConfig = member.responses
        if responses.source == "dataset" or (responses.source == "student" and responses.fraction == 0):
            return None
        generation = json.dumps(to_dict(responses.generation), sort_keys=True)
        if responses.source == "teacher":
            return ("teacher", generation)
        return ("student", json.dumps(to_dict(member), sort_keys=True))

    def plan_notes(self, shared: Any, members: list[Any]) -> list[str]:
        """The teacher's responses each SeqKD setting needs (generated once, cached, shared by every study)
        and what on-policy members sample."""
        notes, seen = [], set()
        cache = shared.data.cache_dir or str(default_cache_dir())
        settings = shared.data.teacher_cache
        if settings is not None and shared.teacher is not None:
            vocabulary = _vocabulary(shared, members)
            size = ("its size known with the tokenizer" if vocabulary is None else
                    f"{stored_bytes(settings.k, settings.bins, vocabulary, settings.dtype)} bytes a response token")
            notes.append(f"teacher: read from its outputs cached in {cache}/lm/teacher-outputs/ (k {settings.k}, "
                         f"{settings.bins} tail bins of {settings.width:g}, {settings.dtype}; {size}, held on the "
                         "device whole), written once by the teacher where shards are missing and shared by every "
                         "study with the same teacher, data and settings; once whole, the teacher is not loaded")
        for member in members:
            responses: ResponsesConfig = member.responses
            source = self.batch_source(member)
            if source is None or source in seen:
                continue
            seen.add(source)
            g = responses.generation.resolved()
            how = (f"sampling T {g.sampling_temperature:g}, top-p {g.top_p:g}, top-k {g.top_k}, seed {g.seeds[0]}"
                   if g.sample else "greedy") + f", at most {g.max_new_tokens} new tokens"
            if responses.source == "teacher":
                notes.append(f"responses: the teacher generates one response per training prompt ({how}) before its "
                             f"students train, once: cached in {cache}/lm/responses/ by the teacher's weights, the prompts "
                             "and these settings, checksummed by shard, shared by every study that asks the same, and an "
                             "interrupted generation resumes at its last shard")
            else:
                notes.append(f"responses: {member.label()} samples its own responses on {responses.fraction:.0%} of its "
                             f"steps ({how}); the teacher scores them: one generation and one teacher pass per such step")
        return notes

    def teacher_passes(self, members: list[Any], data: Any) -> float:
        """One shared pass while any member trains on the shared stream (the data's responses, or an
        on-policy member's off-policy batches), one per distinct teacher-response setting, and ``lmbda``
        per on-policy member (each scores its own samples; each also generates them). None under
        ``data.teacher_cache`` (its members train on the data's responses alone; the cache is written
        by one pass over the training records, before them)."""
        if data.teacher_cache is not None:
            return 0.0
        shared = any(m.responses.source == "dataset" or (m.responses.source == "student" and m.responses.fraction < 1)
                     for m in members)
        sources = {self.batch_source(m) for m in members if m.responses.source == "teacher"}
        return float(shared) + len(sources) + sum(m.responses.fraction for m in members if m.responses.source == "student")

    def prepare_sources(self, members: list[Any], data: LMData, teacher: CausalLM | None, runtime: Any,
                        progress: bool | str = False) -> None:
        """The teacher's responses to the training prompts for each setting a member asks
        (:func:`~kdtemp.tasks.lm.responses.teacher_responses`, cached)."""
        from .responses import teacher_responses

        for member in members:
            source = self.batch_source(member)
            if source is None or source[0] != "teacher" or source in data.sources:
                continue
            if teacher is None:
                raise ConfigError("student.responses.source: teacher generates the responses with the cohort's "
                                  "teacher; this cohort has none (set teacher)")
            split = teacher_responses(
                teacher, data.train, member.responses.generation.resolved(), data.tokenizer.eos_token_id,
                data.config.max_length, runtime, data.cache_dir or default_cache_dir(), progress)
            data.sources[source] = (split, split.host())

    def member_batch(self, source: Hashable, batch: LMBatch, epoch: int, step: int, member: Any, model: CausalLM,
                     teacher: CausalLM | None, data: LMData, runtime: Any) -> tuple[LMBatch, Tensor | None] | None:
        """The stream's records with the teacher's responses (``teacher``), or on an on-policy step
        (drawn from the member's seed, epoch and step with probability ``lmbda``) with responses the
        member samples now (``student``); the teacher's logits on them. None on an off-policy step."""
        responses: ResponsesConfig = member.responses
        rows = batch.host_indices  # the stream's draw, on the host: no read of the device in the step
        if source[0] == "teacher":
            split, (lengths, prompt_lengths) = data.sources[source]
        else:
            draw = np.random.default_rng([member.seed, epoch, step]).random()
            if draw >= responses.fraction:
                return None
            prompts = [data.train_prompts()[i] for i in rows.tolist()]
            generated = model.generate_ids(prompts, responses.generation.resolved(), None, data.train.pad_id,
                                           data.tokenizer.eos_token_id, runtime, data.config.max_length)
            split = LMSplit.from_pairs(prompts, with_eos(generated, data.tokenizer.eos_token_id), data.train.pad_id,
                                       data.train.ids.device)
            rows = torch.arange(len(prompts))
            lengths, prompt_lengths = split.host()  # generating has read the device already
        own = split.batch(rows.to(split.ids.device), lengths, prompt_lengths, rows)
        own.chunk_tokens, own.indices = batch.chunk_tokens, batch.indices
        teacher_logits = None
        if teacher is not None:
            with torch.no_grad(), runtime.autocast():
                teacher_logits = teacher(own)
        return own, teacher_logits

    def degenerate(self, metrics: dict[str, float], every_set: bool = False) -> str | None:
        """:func:`~kdtemp.tasks.lm.metrics.degenerate_reason`: of the first evaluation set's measures (the
        data the teacher was trained for: what stops a study), or of ``every_set`` (what reports flag)."""
        return degenerate_reason(metrics, every_set)

    def split_logits(self, model: CausalLM, data: LMData, split: str, runtime: Any,
                     batch_size: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("causal_lm has no split-level logits: dataset-level constants and the teacher's "
                                  "class-profile diagnostics do not apply to a vocabulary")

    def scores(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError("causal_lm scores generations, not logits")

    def forward_flops(self, model: Any, data: Any, classes: int) -> float | None:
        """At ``max_length`` tokens an input, an upper bound of the padded batches' length
        (:func:`~kdtemp.tasks.hf.forward_flops`)."""
        return forward_flops(model, "AutoModelForCausalLM", data.max_length, None)

    def memory(self, shared: Any, model: Any, role: str, optimizer: Any, facts: Any) -> MemoryEstimate | None:
        """:func:`~kdtemp.tasks.lm.memory.model_memory` (a cached teacher holds nothing)."""
        return model_memory(shared, model, role, optimizer)

    def data_memory(self, shared: Any, facts: Any) -> int | None:
        """The records' token ids and, with ``data.teacher_cache``, the cache's rows
        (:func:`~kdtemp.tasks.lm.memory.data_bytes`)."""
        if facts is None:
            return None
        vocabulary = _vocabulary(shared) if shared.data.teacher_cache is not None else None
        return data_bytes(shared, facts.train, sum(facts.sets.values()), vocabulary)

    def model_label(self, model: Any) -> str:
        """A model built from a config by its shape (:func:`~kdtemp.tasks.hf.model_label`)."""
        return model_label(model)

    def preflight(self, cohorts, device: str = "auto", download: bool = True, member_field: str = "student",
                  state=None):
        """:func:`kdtemp.tasks.lm.preflight.preflight`."""
        from .preflight import preflight

        return preflight(cohorts, device=device, download=download, member_field=member_field, state=state)

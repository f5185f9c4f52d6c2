"""A causal LM's bytes on the training device, for the study's memory planner
(:meth:`~kdtemp.tasks.base.Task.memory`): measured on the meta device from the model's Transformers
config (no weights made, nothing computed), in float32, at ``data.max_length`` tokens a record (an upper
bound of the padded batches' length; bf16 autocast on a GPU holds less).

* A student: its weights, their gradients, its optimizer's state (AdamW: two moments; SGD: a momentum
  buffer), what its forward pass saves for backward (two probes, 1 and 2 records, separate what grows
  with the batch), and its logits ``[batch x length, V]`` with their gradient (the token losses read the
  logits a chunk at a time, but the logits themselves and their gradient are whole).
* A teacher: its weights, its logits for the batch (read by every member during the step) and three
  times its largest other module output (the input, the output and a residual branch live at once).
* An evaluation pass: generation with the KV cache at ``generation.batch_size`` prompts (keys and values
  of every layer for ``max_length`` positions) and one step's logits.
* A teacher read from its cache (``data.teacher_cache``): no weights, pass or evaluation (it writes the
  cache alone, before its students train), only a batch's rows widened for the step
  (:func:`~kdtemp.tasks.lm.teacher_cache.read_bytes`); the cache itself, held on the device whole in its
  stored form, counts as data (:func:`data_bytes`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import torch

from ..base import MemoryEstimate
from ..hf import build_on_meta, hf_config
from ..memory import largest_output, optimizer_states, saved_for_backward
from .teacher_cache import read_bytes, stored_bytes

FLOAT32 = 4
ID_BYTES = 8  # token ids are int64 on the device


@dataclass(frozen=True)
class LMProfile:
    """One model at one length, measured on the meta device."""

    parameter_bytes: int
    vocabulary: int
    layers: int
    hidden: int
    saved_fixed: int
    saved_per_record: int
    largest_other_per_record: int

    def saved(self, batch: int) -> int:
        return self.saved_fixed + self.saved_per_record * batch


@functools.lru_cache(maxsize=64)
def _profile(model_json: str, length: int) -> LMProfile | None:
    from ...config import from_dict
    from .config import CausalLMConfig

    model = from_dict(CausalLMConfig, json.loads(model_json))
    settings = hf_config(model, "model")
    if settings is None:  # a teacher the study prepares: known once it is written
        return None
    try:
        module = build_on_meta(model, settings, "model", "AutoModelForCausalLM").train()
        ids = lambda batch: torch.zeros(batch, length, dtype=torch.long, device="meta")  # noqa: E731
        one, two = saved_for_backward(module, input_ids=ids(1)), saved_for_backward(module, input_ids=ids(2))
        head = module.get_output_embeddings()
        other = largest_output(module, input_ids=ids(1), skip=(head,) if head is not None else ())
        # Transformers' configs answer these standard names through their attribute maps (GPT-2: n_layer, n_embd)
        shape = (module.config.vocab_size if head is None else head.weight.shape[0], module.config.num_hidden_layers,
                 module.config.hidden_size)
    except Exception:  # a plan without this figure is still a plan
        return None
    per_record = max(two - one, 0)
    return LMProfile(sum(p.numel() * p.element_size() for p in module.parameters()), *map(int, shape),
                     max(one - per_record, 0), per_record, other)


def profile(model: Any, length: int) -> LMProfile | None:
    """:class:`LMProfile` of ``model`` (a :class:`~kdtemp.tasks.lm.config.CausalLMConfig`) at ``length``
    tokens a record; None where its config cannot be read yet or the meta device cannot build it."""
    from ...config import to_dict

    return _profile(json.dumps(to_dict(model), sort_keys=True, default=str), length)


def model_memory(shared: Any, model: Any, role: str, optimizer: Any) -> MemoryEstimate | None:
    """A model's :class:`MemoryEstimate` in a cohort of ``shared`` (the module docstring)."""
    length = shared.data.max_length
    cache = shared.data.teacher_cache
    if model is shared.teacher and cache is not None:  # not loaded while students train (it writes the cache
        if role == "evaluation":                       # alone, before them), nor evaluated
            return MemoryEstimate()
        return MemoryEstimate(activations=shared.batch_size * length * read_bytes(cache.k, cache.bins))
    found = profile(model, length)
    if found is None:
        return None
    logits = shared.batch_size * length * found.vocabulary * FLOAT32
    if role == "evaluation":
        batch = shared.data.generation.batch_size
        keys_values = 2 * found.layers * batch * length * found.hidden * FLOAT32
        return MemoryEstimate(activations=keys_values + batch * found.vocabulary * FLOAT32)
    if role == "teacher":
        return MemoryEstimate(parameters=found.parameter_bytes,
                              activations=logits + 3 * found.largest_other_per_record * shared.batch_size)
    states = optimizer_states(optimizer)
    return MemoryEstimate(found.parameter_bytes, found.parameter_bytes, states * found.parameter_bytes,
                          found.saved(shared.batch_size) + 2 * logits)


def data_bytes(shared: Any, train: int, evaluated: int, vocabulary: int | None) -> int | None:
    """The token ids of ``train`` and ``evaluated`` records on the device (at most ``max_length`` each)
    and, with ``data.teacher_cache``, the cache's rows (at most ``max_length`` a training record, at the
    bytes a token it stores; None while the vocabulary is unknown)."""
    length = shared.data.max_length
    total = (train + evaluated) * length * ID_BYTES
    cache = shared.data.teacher_cache
    if cache is not None:
        if vocabulary is None:
            return None
        total += train * length * stored_bytes(cache.k, cache.bins, vocabulary, cache.dtype)
    return total

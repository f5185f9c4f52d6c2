"""Hugging Face causal language models for the ``causal_lm`` task, created without running code from
files (safetensors or ``torch.load(weights_only=True)``; ``trust_remote_code`` off unless set).

The adapter returns the logits of the predicted positions only (``[N, V]``, ``N`` the response
tokens of the batch): the base model's last hidden states are gathered at those positions and only
then multiplied by the output embedding, so no ``[B, W, V]`` tensor is made. Every model's logits
are cut to the shared vocabulary (the tokenizer's length): a model whose embedding matrix is only
padded larger (a multiple of 64, say) loses the padding columns, which no token id reaches.
"""

from __future__ import annotations

import contextlib

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..base import ModelAdapter
from ..hf import from_checkpoint, from_hub, from_settings, transformers_module
from .config import CausalLMConfig, Generation
from .data import LMBatch, LMSplit


def output_vocabulary(module: nn.Module) -> int:
    """The number of rows of the model's output embedding (its logits' width)."""
    return int(module.get_output_embeddings().weight.shape[0])


def load_causal_lm(config: CausalLMConfig, role: str, where: str, device: torch.device | None = None) -> nn.Module:
    """The causal language model ``config`` describes (on ``device`` unless placed by ``device_map``)."""
    transformers = transformers_module("causal_lm")
    auto = transformers.AutoModelForCausalLM
    remote = {"trust_remote_code": True} if config.trust_remote_code else {}
    if config.init == "random":
        module = from_settings(transformers, auto, config.config, where, **remote)
    elif config.init == "checkpoint" and Path(config.weights).expanduser().is_file():
        module = from_checkpoint(transformers, auto, config.weights, where, "language model", **remote)
    else:
        name = str(Path(config.weights).expanduser()) if config.init == "checkpoint" else config.name
        field = f"{where}.weights" if config.init == "checkpoint" else f"{where}.name"
        placement = {}
        if config.device_map == "auto" and role == "teacher" and torch.cuda.device_count() > 1:
            placement = {"device_map": "auto"}  # layers spread over the GPUs by Accelerate
        module = from_hub(auto.from_pretrained, name, field, **placement, **remote)
        if placement:
            return module
    if config.gradient_checkpointing and role == "student":
        enable = getattr(module, "activation_checkpointing_enable", None) or module.gradient_checkpointing_enable
        enable()  # Transformers 5 renames it; both recompute activations in the backward pass
        module.config.use_cache = False
    return module if device is None else module.to(device)


def hidden_states(module: nn.Module, inputs: dict[str, Tensor]) -> Tensor:
    """The last hidden states ``[B, W, H]`` (after the final norm), without the output projection
    where the model exposes its base model."""
    base = getattr(module, "base_model", module)
    if base is not module:
        return base(**inputs, use_cache=False).last_hidden_state
    return module(**inputs, output_hidden_states=True, use_cache=False).hidden_states[-1]


class CausalLM(ModelAdapter):
    """A causal LM as the engine uses it: called on a batch, the logits ``[N, V]`` of its predicted
    positions (rows aligned with ``batch.targets``), cut to the shared vocabulary ``V``."""

    def __init__(self, module: nn.Module, tokenizer: str, vocabulary: int) -> None:
        self.module, self.tokenizer, self.vocabulary = module, tokenizer, int(vocabulary)

    def head(self, hidden: Tensor) -> Tensor:
        projection = self.module.get_output_embeddings()
        weight = projection.weight[: self.vocabulary]
        bias = None if getattr(projection, "bias", None) is None else projection.bias[: self.vocabulary]
        return torch.nn.functional.linear(hidden.to(weight.dtype) if not torch.is_autocast_enabled() else hidden,
                                          weight, bias)

    def hidden(self, batch: LMBatch) -> Tensor:
        """The last hidden states ``[N, H]`` of the batch's predicted positions."""
        hidden = hidden_states(self.module, batch.inputs)
        flat = hidden.reshape(-1, hidden.shape[-1])
        return flat.index_select(0, batch.rows.to(flat.device))

    def __call__(self, batch: LMBatch) -> Tensor:
        return self.head(self.hidden(batch))

    def token_loss(self, split: LMSplit, batch_size: int, runtime: Any, chunk_tokens: int) -> tuple[float, int]:
        """The mean cross-entropy (nats) over the split's response tokens, and their count. The
        output projection runs ``chunk_tokens`` rows at a time, so an evaluation batch never holds
        its ``[N, V]`` logits."""
        was_training = self.module.training
        self.module.eval()
        total = torch.zeros((), dtype=torch.float64, device=split.ids.device)
        count = 0
        with torch.no_grad(), runtime.autocast():
            for batch in split.batches(batch_size):
                hidden, targets = self.hidden(batch), batch.targets
                for start in range(0, batch.tokens, chunk_tokens):
                    rows = slice(start, start + chunk_tokens)
                    logits = self.head(hidden[rows]).float()
                    total += torch.nn.functional.cross_entropy(logits, targets[rows].to(logits.device),
                                                               reduction="sum").to(total.device, torch.float64)
                count += batch.tokens
        self.module.train(was_training)
        return (float(total) / count if count else float("nan")), count

    def generate(self, split: LMSplit, generation: Generation, seed: int, pad_id: int, eos_id: int, runtime: Any,
                 decode) -> list[str]:
        """Responses to the split's prompts (:meth:`generate_ids`), each decoded by ``decode``."""
        return [decode(ids) for ids, _ in self.generate_ids(split.prompts(), generation, seed, pad_id, eos_id, runtime)]

    def generate_ids(self, prompts: list[list[int]], generation: Generation, seed: int | None, pad_id: int,
                     eos_id: int, runtime: Any, max_length: int | None = None) -> list[tuple[list[int], bool]]:
        """Responses to ``prompts`` (token ids): left-padded batches of ``generation.batch_size``, the KV
        cache, greedy decoding or sampling (``sampling_temperature``, ``top_p``, ``top_k``), no repeated
        n-gram of ``no_repeat_ngram_size``, at most ``max_new_tokens`` (no more than the model's
        positions allow, nor than makes a record longer than ``max_length``). Each: its ids before the
        first EOS, and whether it ended with one. ``seed``: sampling draws from a stream seeded with it
        (the same for every model and epoch), leaving the caller's untouched; None: from the caller's
        stream, which moves on (an on-policy member's own)."""
        module = self.module
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        positions = getattr(module.config, "max_position_embeddings", None) or getattr(module.config, "n_positions", None)
        model_vocabulary = output_vocabulary(module)
        suppress = list(range(self.vocabulary, model_vocabulary)) or None
        out: list[tuple[list[int], bool]] = []
        fork = torch.random.fork_rng(devices=[device] if device.type == "cuda" else []) if seed is not None \
            else contextlib.nullcontext()
        with fork:
            if seed is not None:
                torch.manual_seed(seed)  # the same draws for every model and epoch
            for start in range(0, len(prompts), generation.batch_size):
                batch = prompts[start:start + generation.batch_size]
                width = max(len(p) for p in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, prompt in enumerate(batch):
                    ids[row, width - len(prompt):] = torch.tensor(prompt)
                    mask[row, width - len(prompt):] = 1
                new_tokens = generation.max_new_tokens
                if positions:
                    new_tokens = min(new_tokens, int(positions) - width)
                if max_length is not None:
                    new_tokens = min(new_tokens, max_length - min(len(p) for p in batch))
                new_tokens = max(1, new_tokens)
                settings: dict[str, Any] = {"do_sample": generation.sample, "max_new_tokens": new_tokens,
                                            "use_cache": True, "pad_token_id": pad_id, "eos_token_id": eos_id}
                if generation.sample:
                    settings.update(temperature=generation.sampling_temperature, top_p=generation.top_p,
                                    top_k=generation.top_k)
                else:
                    settings.update(temperature=None, top_p=None, top_k=None)
                if generation.no_repeat_ngram_size:
                    settings["no_repeat_ngram_size"] = generation.no_repeat_ngram_size
                if suppress:
                    settings["suppress_tokens"] = suppress
                with torch.no_grad(), runtime.autocast():
                    generated = module.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **settings)
                for prompt, row in zip(batch, generated[:, width:].tolist()):
                    ended = eos_id in row
                    row = row[: row.index(eos_id)] if ended else row
                    if max_length is not None and len(prompt) + len(row) + ended > max_length:
                        row, ended = row[: max(0, max_length - len(prompt))], False
                    out.append((row, ended))
        module.train(was_training)
        return out

    def metadata(self) -> dict[str, Any]:
        """The Transformers config, the tokenizer and the shared vocabulary, saved with the weights."""
        return {"hf_config": json.loads(self.module.config.to_json_string()), "tokenizer": self.tokenizer,
                "vocabulary": self.vocabulary}

"""What a causal-language-model study file says about its data, generation and models (dataclasses
are the schema). Nothing here imports Transformers: a study file is checked without it.

``data`` names ``dolly`` (databricks-dolly-15k, MiniLLM's instruction data) or ``instructions`` (your
own JSONL files); ``teacher`` and ``student.model`` name Hugging Face causal language models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...config import ConfigError, require
from ..hf import FileFreeData, NotAugmented, source_unused_fields, validate_source

DATASETS = ("dolly", "instructions")
DOLLY_HUB = "databricks/databricks-dolly-15k"
DOLLY_FILE = "databricks-dolly-15k.jsonl"


@dataclass
class GenerationConfig:
    """How evaluation generates responses (recorded with every result): ``greedy`` decoding by
    default, or ``sample`` at ``temperature`` with ``top_p``, its random stream seeded with ``seed``
    (the same draws for every model and epoch); at most ``max_new_tokens`` new tokens, ``batch_size``
    prompts at a time (left-padded, with the KV cache). The sampling temperature is not the
    distillation temperature."""

    decoding: Literal["greedy", "sample"] = "greedy"
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    max_new_tokens: int = 256
    batch_size: int = 32

    def validate(self, path: str = "data.generation") -> None:
        require(self.decoding in ("greedy", "sample"), f"{path}.decoding", f"must be greedy or sample; got {self.decoding!r}")
        require(self.temperature > 0, f"{path}.temperature", f"must be > 0; got {self.temperature}")
        require(0 < self.top_p <= 1, f"{path}.top_p", f"must be in (0, 1]; got {self.top_p}")
        require(1 <= self.max_new_tokens <= 100_000, f"{path}.max_new_tokens", f"must be in [1, 100000]; got {self.max_new_tokens}")
        require(self.batch_size >= 1, f"{path}.batch_size", f"must be >= 1; got {self.batch_size}")

    def unused_fields(self) -> set[str]:
        """Greedy decoding reads no sampling setting. The batch size stays: which prompts are padded
        together changes the kernels' shapes, so a near tie of two tokens may break another way."""
        return {"temperature", "top_p", "seed"} if self.decoding == "greedy" else set()


@dataclass
class LMDataConfig(FileFreeData):
    """Instruction data for causal language models: prompts and responses, tokenised once and cached.

    ``dataset``:

    * ``dolly``: databricks-dolly-15k, through ``datasets`` (``databricks/databricks-dolly-15k``, with
      ``download: true`` where online) unless ``root`` holds ``databricks-dolly-15k.jsonl``. As
      MiniLLM, 1,000 records are held out (a fixed seeded permutation): 500 for ``validation``, 500
      for ``test``; the rest train. A ``root`` may instead hold ``train``, ``validation`` and the
      ``eval_sets`` as JSONL files (below).
    * ``instructions``: a folder ``root`` with ``train.jsonl``, ``validation.jsonl`` (or ``valid`` /
      ``dev``) and one ``<name>.jsonl`` per evaluation set.

    A JSONL line is ``{"prompt": ..., "response": ..., "references": [...]}`` (``references``
    optional, for evaluation sets: ROUGE-L takes the maximum over them; else the response), or
    Dolly's own fields (``instruction``, ``context``, ``response``), which get MiniLLM's prompt
    template (Alpaca's, with ``### Input:`` when the context is not empty).

    ``eval_sets``: the evaluation sets whose generations are scored (ROUGE-L and exact match), the
    first one primary (``rouge_l``; the others ``rouge_l_<name>``). SelfInst, UnNI and S-NI are
    such files. ``validation`` gives the token loss and perplexity.

    Lengths: a prompt longer than ``max_prompt_length`` tokens is truncated from the left (its
    instruction's end and ``### Response:`` stay; the count is reported) under ``prompt_policy:
    truncate``, or refused under ``refuse``; prompt and response together are cut at ``max_length``.
    ``train_samples`` / ``eval_samples``: the first N records of the training split / of each
    evaluation and validation set. ``chunk_tokens``: token rows per chunk of every token loss (peak
    extra memory of a few ``[chunk_tokens, V]`` float32 buffers). ``tokenizer``: a Hugging Face
    tokenizer, ``null``: the teacher's.
    """

    dataset: str = "dolly"
    root: str | None = None
    download: bool = False
    eval_sets: list[str] = field(default_factory=lambda: ["test"])
    tokenizer: str | None = None
    max_prompt_length: int = 256
    max_length: int = 512
    prompt_policy: Literal["truncate", "refuse"] = "truncate"
    train_samples: int | None = None
    eval_samples: int | None = None
    chunk_tokens: int = 1024
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    cache_dir: str | None = None

    def validate(self, path: str = "data") -> None:
        require(self.dataset in DATASETS, f"{path}.dataset",
                f"unknown instruction dataset {self.dataset!r}; allowed: {', '.join(DATASETS)}")
        if self.dataset == "instructions":
            require(bool(self.root), f"{path}.root", "instructions reads a folder of JSONL files; give its path")
        if self.root is not None:
            require(Path(self.root).expanduser().is_dir(), f"{path}.root", f"{self.root!r} is not a folder")
        require(isinstance(self.eval_sets, list) and len(self.eval_sets) >= 1
                and all(isinstance(n, str) and n and "/" not in n and not n.startswith(".") for n in self.eval_sets),
                f"{path}.eval_sets", f"must be a non-empty list of set names (files <root>/<name>.jsonl); got {self.eval_sets!r}")
        require(len(set(self.eval_sets)) == len(self.eval_sets), f"{path}.eval_sets", f"names a set twice: {self.eval_sets}")
        require(self.dataset == "instructions" or self.root is not None or self.eval_sets == ["test"], f"{path}.eval_sets",
                "Dolly through datasets has one evaluation set, test; give root: a folder for more")
        require(2 <= self.max_length <= 1_000_000, f"{path}.max_length", f"must be in [2, 1000000]; got {self.max_length}")
        require(1 <= self.max_prompt_length < self.max_length, f"{path}.max_prompt_length",
                f"must be >= 1 and below max_length {self.max_length}; got {self.max_prompt_length}")
        require(self.prompt_policy in ("truncate", "refuse"), f"{path}.prompt_policy",
                f"must be truncate or refuse; got {self.prompt_policy!r}")
        for name in ("train_samples", "eval_samples"):
            value = getattr(self, name)
            require(value is None or value >= 1, f"{path}.{name}", f"must be >= 1 or null; got {value}")
        require(self.chunk_tokens >= 1, f"{path}.chunk_tokens", f"must be >= 1; got {self.chunk_tokens}")
        self.generation.validate(f"{path}.generation")

    def unused_fields(self) -> set[str]:
        """Fields that cannot change a result: where the cache lives, whether downloading is allowed,
        and the generation settings greedy decoding does not read."""
        return {"cache_dir", "download"} | {f"generation.{name}" for name in self.generation.unused_fields()}


@dataclass
class LMAugmentConfig(NotAugmented):
    """Token data is not augmented: the stream is a seeded permutation of the training records."""


@dataclass
class CausalLMConfig:
    """A Hugging Face causal language model (``AutoModelForCausalLM``).

    ``init``: ``pretrained`` (``name``: a hub name, from the local cache first, or a
    ``save_pretrained`` folder), ``checkpoint`` (``weights``: a kdtemp checkpoint, e.g. a prepared
    teacher's ``teacher.pt``, or a ``save_pretrained`` folder) or ``random`` (``config``: the
    architecture, e.g. ``{model_type: gpt2, n_layer: 2, n_embd: 64, n_head: 2}``; ``name`` is then a
    label). ``gradient_checkpointing``: recompute activations in the backward pass (students).
    ``device_map``: a teacher's placement over several GPUs (``auto``, through Accelerate);
    ``null`` keeps it on the training device. Weights load as safetensors or with ``weights_only``;
    ``trust_remote_code`` stays off unless set.
    """

    name: str = "gpt2"
    init: Literal["pretrained", "checkpoint", "random"] = "pretrained"
    weights: str | None = None
    config: dict[str, Any] | None = None
    gradient_checkpointing: bool = False
    device_map: str | None = None
    trust_remote_code: bool = False
    prepared: str | None = None  # set by a study: the id of the preparation that writes ``weights``

    def validate(self, path: str = "model") -> None:
        validate_source(self, path, "gpt2")
        if self.device_map is not None and self.device_map != "auto":
            raise ConfigError(f"{path}.device_map: must be auto or null; got {self.device_map!r}")

    def unused_fields(self) -> set[str]:
        unused = source_unused_fields(self) | {"device_map"}  # where a teacher's layers sit changes no logit
        if not self.gradient_checkpointing:  # recomputing activations changes nothing either; off: left out
            unused.add("gradient_checkpointing")
        return unused

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

DATASETS = ("dolly", "instructions", "minillm")
MINILLM_SPLITS = {"train": "train_0", "validation": "valid_0"}
"""The processed files MiniLLM's ``tools/process_data_dolly.py`` writes (``<name>.bin`` + ``<name>.idx``)."""
DOLLY_HUB = "databricks/databricks-dolly-15k"
DOLLY_FILE = "databricks-dolly-15k.jsonl"


PROTOCOLS = ("greedy", "sample", "minillm")

MINILLM = {"sampling_temperature": 1.0, "top_p": 1.0, "top_k": 0, "no_repeat_ngram_size": 6,
           "seeds": [10, 20, 30, 40, 50], "max_new_tokens": 256}
"""MiniLLM's evaluation (``scripts/gpt2/eval/*.sh``, ``run_eval.sh``, ``arguments.py``): sampling with
``--top-k 0 --top-p 1.0 --temperature 1.0``, ``no_repeat_ngram_size`` 6, at most 256 new tokens, seeds
10, 20, 30, 40, 50; prompts cut to their first 256 tokens and left-padded (``data.max_prompt_length``
256, ``max_length`` 512); each output decoded without special tokens, cut at ``<|endoftext|>`` and
stripped; exact match without removing articles."""

_DEFAULTS = {"sampling_temperature": 1.0, "top_p": 1.0, "top_k": 0, "no_repeat_ngram_size": 0, "seeds": [0],
             "max_new_tokens": 256}


@dataclass(frozen=True)
class Generation:
    """The settings evaluation generates with, every one resolved (:meth:`GenerationConfig.resolved`)."""

    protocol: str
    sample: bool
    sampling_temperature: float
    top_p: float
    top_k: int
    no_repeat_ngram_size: int
    seeds: tuple[int, ...]
    max_new_tokens: int
    batch_size: int


@dataclass
class GenerationConfig:
    """How evaluation generates responses (recorded with every result). ``protocol``:

    * ``greedy`` (the default): greedy decoding; the sampling fields do not apply.
    * ``sample``: sampling at ``sampling_temperature`` with ``top_p`` and ``top_k`` (0: no top-k), once
      per seed of ``seeds``; each seed draws the same for every model and epoch.
    * ``minillm``: MiniLLM's evaluation exactly (:data:`MINILLM`): a field left out takes MiniLLM's
      value and one set to another value is refused.

    ``sampling_temperature`` is the temperature of *generation* only: it is not the distillation
    temperature (``student.temperature``), which no evaluation reads. ``no_repeat_ngram_size``: no
    n-gram of that size appears twice in an output (0: off). At most ``max_new_tokens`` new tokens,
    ``batch_size`` prompts at a time (left-padded, with the KV cache). With several seeds a metric is
    the mean over seeds and ``seed_sd_<metric>`` their standard deviation (n - 1).
    """

    protocol: Literal["greedy", "sample", "minillm"] = "greedy"
    sampling_temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    no_repeat_ngram_size: int | None = None
    seeds: list[int] | None = None
    max_new_tokens: int | None = None
    batch_size: int = 32

    def validate(self, path: str = "data.generation") -> None:
        require(self.protocol in PROTOCOLS, f"{path}.protocol",
                f"unknown protocol {self.protocol!r}; allowed: {', '.join(PROTOCOLS)}")
        if self.protocol == "minillm":
            for name, value in MINILLM.items():
                given = getattr(self, name)
                require(given is None or given == value, f"{path}.{name}",
                        f"protocol minillm fixes it at {value}; got {given} (use protocol: sample to change it)")
        if self.protocol == "greedy":
            for name in ("sampling_temperature", "top_p", "top_k", "seeds"):
                require(getattr(self, name) is None, f"{path}.{name}",
                        "greedy decoding does not sample; use protocol: sample (or minillm) to set it")
        settings = self.resolved()
        require(settings.sampling_temperature > 0, f"{path}.sampling_temperature",
                f"must be > 0; got {settings.sampling_temperature}")
        require(0 < settings.top_p <= 1, f"{path}.top_p", f"must be in (0, 1]; got {settings.top_p}")
        require(settings.top_k >= 0, f"{path}.top_k", f"must be >= 0 (0: no top-k); got {settings.top_k}")
        require(settings.no_repeat_ngram_size >= 0, f"{path}.no_repeat_ngram_size",
                f"must be >= 0 (0: off); got {settings.no_repeat_ngram_size}")
        require(len(settings.seeds) >= 1 and len(set(settings.seeds)) == len(settings.seeds), f"{path}.seeds",
                f"must be a non-empty list of distinct integers; got {self.seeds}")
        require(1 <= settings.max_new_tokens <= 100_000, f"{path}.max_new_tokens",
                f"must be in [1, 100000]; got {settings.max_new_tokens}")
        require(self.batch_size >= 1, f"{path}.batch_size", f"must be >= 1; got {self.batch_size}")

    def resolved(self) -> Generation:
        """Every setting, the protocol's value where the file gives none."""
        base = MINILLM if self.protocol == "minillm" else _DEFAULTS
        value = {name: (getattr(self, name) if getattr(self, name) is not None else default)
                 for name, default in base.items()}
        return Generation(self.protocol, self.protocol != "greedy", float(value["sampling_temperature"]),
                          float(value["top_p"]), int(value["top_k"]), int(value["no_repeat_ngram_size"]),
                          tuple(int(s) for s in value["seeds"]), int(value["max_new_tokens"]), self.batch_size)

    def unused_fields(self) -> set[str]:
        """Fields at their protocol's value when left out (a file that writes MiniLLM's value names the
        same evaluation as one that does not). The batch size stays: which prompts are padded
        together changes the kernels' shapes, so a near tie of two tokens may break another way."""
        return {name for name in _DEFAULTS if getattr(self, name) is None}


RESPONSE_SOURCES = ("dataset", "teacher", "student")


def _sampling() -> GenerationConfig:
    return GenerationConfig(protocol="sample")


@dataclass
class ResponsesConfig:
    """Where a member's training responses come from (a language model's member section ``responses``).

    * ``dataset`` (the default): the data's responses, the cohort's shared stream and teacher pass.
    * ``teacher``: sequence-level KD. The cohort's teacher generates a response for every training
      prompt with ``generation`` (one seed), once, cached under the data cache by the teacher's
      weights, the prompts and the settings (a second study with the same reuses them; a killed
      generation resumes where its last shard ended); the batch keeps the stream's prompts and order,
      and the teacher scores those responses (one pass per batch, shared by the members with the same
      settings).
    * ``student``: on-policy distillation (GKD). On a fraction ``lmbda`` of its batches (drawn from the
      member's seed, epoch and step; 0 never, 1 always) the member samples its own responses to the
      batch's prompts with ``generation`` and the teacher scores them: one generation and one teacher
      pass per on-policy batch per member, on top of the cohort's shared pass. ``lmbda: 0`` trains
      exactly as ``dataset``.

    ``generation.sampling_temperature`` is the temperature of *sampling* responses, never the loss's
    (``temperature``, what kdtemp studies): changing one changes nothing of the other's effect.
    A generated response ends with the EOS token when the model ended it (its last position then
    learns to stop); one cut at ``max_new_tokens`` or the data's ``max_length`` is cut there.
    """

    source: Literal["dataset", "teacher", "student"] = "dataset"
    lmbda: float | None = None
    generation: GenerationConfig = field(default_factory=_sampling)

    def validate(self, path: str = "student.responses") -> None:
        require(self.source in RESPONSE_SOURCES, f"{path}.source",
                f"unknown source {self.source!r}; allowed: {', '.join(RESPONSE_SOURCES)}")
        if self.lmbda is not None:
            require(self.source == "student", f"{path}.lmbda", "applies to on-policy responses (source: student) only")
            require(isinstance(self.lmbda, (int, float)) and 0 <= self.lmbda <= 1, f"{path}.lmbda",
                    f"must be in [0, 1] (the fraction of batches on-policy); got {self.lmbda}")
        require(self.generation.protocol != "minillm", f"{path}.generation.protocol",
                "minillm is an evaluation protocol; responses are generated with greedy or sample")
        require(len(self.generation.resolved().seeds) == 1, f"{path}.generation.seeds",
                "responses are generated once, with one seed")

    @property
    def fraction(self) -> float:
        """The fraction of batches on-policy (``lmbda``; 1 when unset)."""
        return 1.0 if self.lmbda is None else float(self.lmbda)

    def unused_fields(self) -> set[str]:
        """The whole section for ``dataset`` (and for ``lmbda: 0``, which trains exactly as it)."""
        if self.source == "dataset" or (self.source == "student" and self.fraction == 0):
            return {"*"}
        generation = {f"generation.{name}" for name in self.generation.unused_fields()}
        return generation | ({"lmbda"} if self.source == "teacher" else set())


CACHE_DTYPES = ("float16", "float32")


@dataclass
class TeacherCacheConfig:
    """``data.teacher_cache``: train from the teacher's outputs on the training records, written once by
    the teacher and read by every cohort and study with the same teacher, data and settings, instead of
    running the teacher for every batch (:mod:`kdtemp.tasks.lm.teacher_cache`).

    Per response token it keeps the ``k`` largest logits at ``T = 1`` with their ids, the other logits
    in ``bins`` bins of ``width`` below the ``k``-th (count and log-sum-exp each), and the target
    token's logit (:class:`kdtemp.objectives.teacher_cache.TopKTail`). Every temperature is served: the
    divergence is taken over the top ``k`` and one tail bin (a lower bound of the full divergence where
    the log normaliser is exact, as at ``T = 1``; with ``k`` = the vocabulary, the live teacher's value
    to float32 rounding). ``shard_records``: records per file (a kill loses at most one shard's work).

    ``dtype``: how the logits are stored. ``float16`` (default) keeps each row's logits, log-sums and
    tail minimum as float16 offsets below the row's largest logit (kept in float32, as is the target's
    logit): a logit within 8 nats of the largest is off by at most 0.002 nats, one further down by at
    most 2^-11 of its distance, and a row takes two thirds of the bytes of ``float32``, which keeps them
    exactly (DTS's teacher cross-entropy too; under ``float16`` it is within that rounding). Ids and counts are lossless either way (2 bytes each for a vocabulary of at most 65,536).
    """

    k: int = 128
    bins: int = 16
    width: float = 1.0
    shard_records: int = 256
    dtype: str = "float16"

    def validate(self, path: str = "data.teacher_cache") -> None:
        require(self.k >= 1, f"{path}.k", f"must be >= 1 (logits kept per token); got {self.k}")
        require(self.bins >= 1, f"{path}.bins", f"must be >= 1; got {self.bins}")
        require(self.width > 0, f"{path}.width", f"must be > 0 (nats); got {self.width}")
        require(self.shard_records >= 1, f"{path}.shard_records", f"must be >= 1; got {self.shard_records}")
        require(self.dtype in CACHE_DTYPES, f"{path}.dtype", f"must be one of {', '.join(CACHE_DTYPES)}; got {self.dtype!r}")


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
    * ``minillm``: MiniLLM's processed training data as it is: ``root`` holds ``train_0.bin/.idx`` and
      ``valid_0.bin/.idx`` (token ids of the tokenizer they were made with, GPT-2's for its Dolly data;
      prompt and response split at id 65535, the response ending with EOS), and the evaluation sets are
      MiniLLM's JSONL files.

    ``eval_root``: the folder of the evaluation sets when it is not ``root``: ``<name>.jsonl`` or, as
    MiniLLM's ``data/`` lays them out, ``<name>/valid.jsonl`` (``dolly``, ``self-inst``, ``sinst``, ...).

    A JSONL line is ``{"prompt": ..., "response": ..., "references": [...]}`` (``references``
    optional, for evaluation sets: ROUGE-L takes the maximum over them; else the response), or
    Dolly's own fields (``instruction``, ``context``, ``response``), which get MiniLLM's prompt
    template (Alpaca's, with ``### Input:`` when the context is not empty).

    ``eval_sets``: the evaluation sets whose generations are scored (ROUGE-L and exact match), the
    first one primary (``rouge_l``; the others ``rouge_l_<name>``). SelfInst, UnNI and S-NI are
    such files. ``validation`` gives the token loss and perplexity.

    ``validation`` (the field): ``null`` (the default), or a count: the first N records of the data's own
    validation split (never trained on) whose generations, under ``generation`` with its first seed, are
    scored each epoch as ``val_rouge_l`` and ``val_exact_match``, against the record's references or its
    own response. What ``kdtemp tune`` chooses on; training never reads it.

    Lengths: a prompt longer than ``max_prompt_length`` tokens is truncated from the left (its
    instruction's end and ``### Response:`` stay; the count is reported) under ``prompt_policy:
    truncate``, or refused under ``refuse``; under ``generation.protocol: minillm`` the evaluation sets'
    prompts keep their *first* ``max_prompt_length`` tokens, as MiniLLM's evaluation cuts them; prompt
    and response together are cut at ``max_length``. Truncations are counted over the records used.
    ``teacher_cache``: train from the teacher's cached outputs (:class:`TeacherCacheConfig`; ``null``:
    the live teacher). ``train_samples`` / ``eval_samples``: the first N records of the training split / of each
    evaluation and validation set. ``chunk_tokens``: token rows per chunk of every token loss (peak
    extra memory of a few ``[chunk_tokens, V]`` float32 buffers). ``tokenizer``: a Hugging Face
    tokenizer, ``null``: the teacher's.
    """

    dataset: str = "dolly"
    root: str | None = None
    download: bool = False
    eval_sets: list[str] = field(default_factory=lambda: ["test"])
    eval_root: str | None = None
    tokenizer: str | None = None
    max_prompt_length: int = 256
    max_length: int = 512
    prompt_policy: Literal["truncate", "refuse"] = "truncate"
    train_samples: int | None = None
    eval_samples: int | None = None
    validation: int | None = None
    chunk_tokens: int = 1024
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    cache_dir: str | None = None
    teacher_cache: TeacherCacheConfig | None = None

    def validate(self, path: str = "data") -> None:
        require(self.dataset in DATASETS, f"{path}.dataset",
                f"unknown instruction dataset {self.dataset!r}; allowed: {', '.join(DATASETS)}")
        if self.dataset == "instructions":
            require(bool(self.root), f"{path}.root", "instructions reads a folder of JSONL files; give its path")
        if self.dataset == "minillm":
            require(bool(self.root), f"{path}.root", "minillm reads MiniLLM's processed train_0/valid_0 .bin and .idx "
                    "files; give their folder")
        if self.eval_root is not None:
            require(Path(self.eval_root).expanduser().is_dir(), f"{path}.eval_root", f"{self.eval_root!r} is not a folder")
        if self.root is not None:
            require(Path(self.root).expanduser().is_dir(), f"{path}.root", f"{self.root!r} is not a folder")
        require(isinstance(self.eval_sets, list) and len(self.eval_sets) >= 1
                and all(isinstance(n, str) and n and "/" not in n and not n.startswith(".") for n in self.eval_sets),
                f"{path}.eval_sets", f"must be a non-empty list of set names (files <root>/<name>.jsonl); got {self.eval_sets!r}")
        require(len(set(self.eval_sets)) == len(self.eval_sets), f"{path}.eval_sets", f"names a set twice: {self.eval_sets}")
        require(self.dataset != "dolly" or self.root is not None or self.eval_sets == ["test"], f"{path}.eval_sets",
                "Dolly through datasets has one evaluation set, test; give root: a folder for more")
        require(2 <= self.max_length <= 1_000_000, f"{path}.max_length", f"must be in [2, 1000000]; got {self.max_length}")
        require(1 <= self.max_prompt_length < self.max_length, f"{path}.max_prompt_length",
                f"must be >= 1 and below max_length {self.max_length}; got {self.max_prompt_length}")
        require(self.prompt_policy in ("truncate", "refuse"), f"{path}.prompt_policy",
                f"must be truncate or refuse; got {self.prompt_policy!r}")
        for name in ("train_samples", "eval_samples"):
            value = getattr(self, name)
            require(value is None or value >= 1, f"{path}.{name}", f"must be >= 1 or null; got {value}")
        require(self.validation is None or (isinstance(self.validation, int) and not isinstance(self.validation, bool)
                                            and self.validation >= 1), f"{path}.validation",
                f"for a language model, how many records of the data's own validation split to generate on each epoch "
                f"(an integer >= 1) or null; got {self.validation!r}")
        require(self.chunk_tokens >= 1, f"{path}.chunk_tokens", f"must be >= 1; got {self.chunk_tokens}")
        self.generation.validate(f"{path}.generation")
        if self.teacher_cache is not None:
            self.teacher_cache.validate(f"{path}.teacher_cache")
        if self.generation.protocol == "minillm":  # MiniLLM cuts prompts at 256 tokens and stops at 512 in all
            for name, value in (("max_prompt_length", 256), ("max_length", 512)):
                require(getattr(self, name) == value, f"{path}.{name}",
                        f"protocol minillm evaluates with {name} {value}; got {getattr(self, name)} "
                        "(use generation.protocol: sample for other lengths)")

    def unused_fields(self) -> set[str]:
        """Fields that cannot change a result: where the cache lives, whether downloading is allowed,
        the generation settings greedy decoding does not read, and ``validation`` when null (off: left out
        of the evaluation a run records, as before the field existed)."""
        unused = {"cache_dir", "download"} | {f"generation.{name}" for name in self.generation.unused_fields()}
        unused |= {"teacher_cache"} if self.teacher_cache is None else {"teacher_cache.shard_records"}
        return unused | ({"validation"} if self.validation is None else set())


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

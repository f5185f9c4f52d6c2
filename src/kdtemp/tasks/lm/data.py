"""Instruction data for causal language models: records read once (Dolly through ``datasets`` or its
JSONL file, or your own JSONL), tokenised once and cached, then a seeded stream of padded batches.

A tokenised split is ragged: each record's prompt tokens then response tokens (ending with the
tokenizer's end-of-sequence token) one after another (``ids``), where each record begins
(``offsets``) and how many of its tokens are prompt (``prompt_lengths``). Only response tokens are
predicted: in a batch padded to ``[B, W]``, position ``i`` of record ``r`` counts when token ``i + 1``
is a response token (the causal shift), so prompt and padding positions never enter a loss. The
cache file is safetensors (data, never code), keyed by the files (names, sizes, modification times),
the tokenizer's rules and vocabulary, the lengths and the prompt policy.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from ...config import ConfigError
from ...files import warn
from ...readers import read_json_lines
from ..base import stream_seed
from ..hf import padded_rows, tokenizer_identity
from .config import DOLLY_FILE, DOLLY_HUB, MINILLM_SPLITS, LMDataConfig
from .indexed import TokenRecord, check_ids, index_files, token_records

CACHE_VERSION = 2
VALIDATION_NAMES = ("validation", "valid", "dev")
VALIDATION_GENERATION = "validation-generation"
"""The records of the validation split generated on each epoch (``data.validation``), in :func:`load_splits`."""
DOLLY_HELD_OUT = (500, 500)  # validation, test: MiniLLM holds out 1,000 records (--dev-num 1000)
DOLLY_SPLIT_SEED = 0

PROMPT_WITH_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further "
                     "context. Write a response that appropriately completes the request.\n\n"
                     "### Instruction:\n{instruction}\n\n### Input:\n{context}\n\n### Response:\n")
PROMPT_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                   "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def dolly_prompt(instruction: str, context: str | None = None) -> str:
    """MiniLLM's prompt for a Dolly record (Alpaca's template; ``### Input:`` only with a context)."""
    if context and context.strip():
        return PROMPT_WITH_INPUT.format(instruction=instruction, context=context)
    return PROMPT_NO_INPUT.format(instruction=instruction)


@dataclass
class Record:
    """One instruction: the prompt as the model sees it, the response it is trained on, and the
    references its generation is scored against (the response when none are given)."""

    prompt: str
    response: str
    references: list[str] = field(default_factory=list)


def record_of(line: dict, where: str, need_response: bool = True) -> Record:
    """A JSONL line as a :class:`Record`: ``prompt``/``response``/``references``, or Dolly's fields."""
    if not isinstance(line, dict):
        raise ConfigError(f"{where}: a line must be a JSON object; got {type(line).__name__}")
    if "prompt" in line:
        prompt = line["prompt"]
    elif "instruction" in line:
        prompt = dolly_prompt(str(line["instruction"]), line.get("context") or line.get("input"))
    else:
        raise ConfigError(f"{where}: no 'prompt' (a line needs prompt and response, or Dolly's instruction and response)")
    references = line.get("references")
    output = line.get("output")
    if references is None and isinstance(output, list):  # MiniLLM's evaluation files: S-NI lists its references
        references, line = output, {k: v for k, v in line.items() if k != "output"}
    if references is not None and (not isinstance(references, list) or not all(isinstance(r, str) for r in references)):
        raise ConfigError(f"{where}: 'references' must be a list of strings")
    if references == []:
        raise ConfigError(f"{where}: 'references' is empty; give at least one reference string (or leave it out)")
    response = line.get("response", line.get("output"))
    if response is None and (need_response or not references):
        raise ConfigError(f"{where}: no 'output' or 'response' (a line needs prompt and response, Dolly's instruction "
                          "and response, or MiniLLM's instruction and output)")
    if not isinstance(prompt, str) or (response is not None and not isinstance(response, str)):
        raise ConfigError(f"{where}: 'prompt' and 'response' must be strings")
    response = response if response is not None else references[0]
    return Record(prompt, response, list(references) if references else [response])


def read_jsonl(path: Path, need_response: bool = True, field_name: str = "data.root") -> list[Record]:
    """Every record of a JSONL file (:mod:`kdtemp.readers`: UTF-8, one object per line, no duplicate
    keys, bounded nesting); one line naming the file and line for a bad one."""
    records = [record_of(line, f"{field_name}: {path} line {number}", need_response)
               for number, line in read_json_lines(path, field_name)]
    if not records:
        raise ConfigError(f"{field_name}: {path} has no records")
    return records


def _first(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / f"{name}.jsonl").is_file():
            return root / f"{name}.jsonl"
    return None


def eval_file(config: LMDataConfig, name: str) -> Path:
    """The JSONL file of evaluation set ``name``: ``<name>.jsonl`` or MiniLLM's ``<name>/valid.jsonl`` in
    ``eval_root`` (``root`` when unset); one line when neither exists."""
    folder = Path(config.eval_root or config.root).expanduser()
    for path in (folder / f"{name}.jsonl", folder / name / "valid.jsonl"):
        if path.is_file():
            return path
    raise ConfigError(f"data.eval_sets: {folder} has no {name}.jsonl or {name}/valid.jsonl (the evaluation set {name!r})")


def split_files(config: LMDataConfig) -> dict[str, Path] | None:
    """The file of every split (``train``, ``validation`` and each evaluation set; for ``minillm`` the
    training splits' ``.bin``/``.idx`` prefix), or None for Dolly read whole (from ``datasets`` or its
    one file) and split here."""
    if config.root is None:
        return None
    root = Path(config.root).expanduser()
    if config.dataset == "dolly" and (root / DOLLY_FILE).is_file() and not (root / "train.jsonl").is_file():
        return None
    files: dict[str, Path] = {}
    if config.dataset == "minillm":
        for split, name in MINILLM_SPLITS.items():
            index_files(root / name, "data.root")  # both halves, or one line naming the missing one
            files[split] = root / name
    else:
        for split, names in (("train", ("train",)), ("validation", VALIDATION_NAMES)):
            found = _first(root, names)
            if found is None:
                wanted = " or ".join(f"{n}.jsonl" for n in names)
                extra = f" (or Dolly's {DOLLY_FILE})" if config.dataset == "dolly" else ""
                raise ConfigError(f"data.root: {root} has no {split} file ({wanted}){extra}")
            files[split] = found
    for name in config.eval_sets:
        files[name] = eval_file(config, name)
    return files


def _dolly_lines(config: LMDataConfig) -> tuple[list[dict], str]:
    if config.root is not None:
        path = Path(config.root).expanduser() / DOLLY_FILE
        return [line for _, line in read_json_lines(path, "data.root")], str(path)
    try:
        import datasets
    except ImportError:
        raise ConfigError("data.dataset: Dolly through `datasets` needs the lm extra: pip install 'kdtemp[lm]'") from None
    mode = "reuse_dataset_if_exists" if config.download else "reuse_cache_if_exists"
    previous = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = previous or not config.download
    try:
        loaded = datasets.load_dataset(DOLLY_HUB, split="train", download_mode=mode)
    except Exception as error:  # offline, not cached, or the hub refused: one line
        hint = "set data.download: true on a machine that is online" if not config.download else "check the connection"
        raise ConfigError(f"data.dataset: Dolly ({DOLLY_HUB}) could not be read through datasets "
                          f"({type(error).__name__}); {hint}, or give data.root: a folder with {DOLLY_FILE}") from None
    finally:
        datasets.config.HF_HUB_OFFLINE = previous
    return [dict(row) for row in loaded], DOLLY_HUB


def read_records(config: LMDataConfig) -> dict[str, list[Record]]:
    """Every split's records: ``train``, ``validation`` and each of ``eval_sets``, in file order (for
    ``minillm`` the training splits as :class:`~kdtemp.tasks.lm.indexed.TokenRecord`, already ids)."""
    files = split_files(config)
    if files is not None:
        return {split: (token_records(path, "data.root") if config.dataset == "minillm" and split in MINILLM_SPLITS
                        else read_jsonl(path, need_response=split in ("train", "validation"),
                                        field_name="data.eval_sets" if split not in ("train", "validation") else "data.root"))
                for split, path in files.items()}
    lines, source = _dolly_lines(config)
    records = [record_of(line, f"data.root: {source} record {number}") for number, line in enumerate(lines, 1)]
    held_validation, held_test = DOLLY_HELD_OUT
    if len(records) <= held_validation + held_test:
        raise ConfigError(f"data.root: {source} has {len(records)} records; Dolly's split holds out "
                          f"{held_validation + held_test}")
    order = np.random.default_rng(DOLLY_SPLIT_SEED).permutation(len(records))
    pick = lambda rows: [records[i] for i in sorted(rows)]  # noqa: E731  (file order inside each split)
    return {"train": pick(order[held_validation + held_test:]), "validation": pick(order[:held_validation]),
            "test": pick(order[held_validation:held_validation + held_test])}


@dataclass
class Tokenised:
    """A split's ragged tensors and what tokenising it counted."""

    tensors: dict[str, Tensor]


def tokenise(records: list[Record], tokenizer: Any, config: LMDataConfig, keep_first: bool = False) -> Tokenised:
    """Prompt tokens (as the tokenizer adds its special tokens, e.g. a BOS) then response tokens
    and the EOS token. A prompt over ``max_prompt_length`` keeps its last tokens (its first ones with
    ``keep_first``, as MiniLLM's evaluation cuts them); the response is cut so the whole fits
    ``max_length``. ``prompt_cut`` and ``response_cut`` mark each record that was cut (uint8)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("data.tokenizer: the tokenizer has no end-of-sequence token; a response needs one to end")
    if records and isinstance(records[0], TokenRecord):  # MiniLLM's processed ids: the response ends with EOS
        prompts = [r.prompt for r in records]
        responses = [r.response[:-1] for r in records]
    else:
        prompts = tokenizer([r.prompt for r in records])["input_ids"]
        responses = tokenizer([r.response for r in records], add_special_tokens=False)["input_ids"]
    ids, prompt_lengths, lengths = [], [], []
    cut_prompts, cut_responses = [], []
    for prompt, response in zip(prompts, responses):
        cut_prompts.append(len(prompt) > config.max_prompt_length)
        if len(prompt) > config.max_prompt_length and keep_first:
            prompt = prompt[:config.max_prompt_length]
        elif len(prompt) > config.max_prompt_length:
            if config.prompt_policy == "refuse":
                raise ConfigError(f"data.max_prompt_length: a prompt has {len(prompt)} tokens, over the limit of "
                                  f"{config.max_prompt_length}, and prompt_policy is refuse; raise the limit or set "
                                  "prompt_policy: truncate")
            prompt = prompt[-config.max_prompt_length:]
        response = list(response) + [eos]
        room = config.max_length - len(prompt)
        cut_responses.append(len(response) > room)
        if len(response) > room:
            response = response[:room]
        ids.extend(prompt)
        ids.extend(response)
        prompt_lengths.append(len(prompt))
        lengths.append(len(prompt) + len(response))
    length = torch.tensor(lengths, dtype=torch.long)
    tensors = {"ids": torch.tensor(ids, dtype=torch.int32),
               "offsets": torch.cat([torch.zeros(1, dtype=torch.long), length.cumsum(0)]),
               "prompt_lengths": torch.tensor(prompt_lengths, dtype=torch.long),
               "prompt_cut": torch.tensor(cut_prompts, dtype=torch.uint8),
               "response_cut": torch.tensor(cut_responses, dtype=torch.uint8)}
    return Tokenised(tensors)


def long_prompts(records: list[Record], tokenizer: Any, limit: int) -> list[int]:
    """The positions of the records whose prompt has more than ``limit`` tokens."""
    if records and isinstance(records[0], TokenRecord):
        prompts = [r.prompt for r in records]
    else:
        prompts = tokenizer([r.prompt for r in records])["input_ids"]
    return [i for i, prompt in enumerate(prompts) if len(prompt) > limit]


@dataclass
class LMSplit:
    """A tokenised split (ragged, see the module docstring) and its references (for generation)."""

    ids: Tensor
    offsets: Tensor
    prompt_lengths: Tensor
    pad_id: int
    references: list[list[str]]

    def __len__(self) -> int:
        return int(self.prompt_lengths.shape[0])

    def to(self, device: torch.device | str) -> "LMSplit":
        return LMSplit(self.ids.to(device), self.offsets.to(device), self.prompt_lengths.to(device), self.pad_id,
                       self.references)

    def lengths(self) -> Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    @classmethod
    def from_pairs(cls, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
                   device: torch.device | str = "cpu") -> "LMSplit":
        """The split of records ``prompt + response`` (ids; no references: trained on, not scored)."""
        lengths = torch.tensor([len(p) + len(r) for p, r in zip(prompts, responses)], dtype=torch.long)
        ids = torch.tensor([i for p, r in zip(prompts, responses) for i in (*p, *r)], dtype=torch.int32)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        return cls(ids.to(device), offsets.to(device), torch.tensor([len(p) for p in prompts]).to(device), pad_id,
                   [[] for _ in prompts])

    def responses(self) -> list[list[int]]:
        """Every record's response token ids, read to the host in one copy."""
        ids, offsets, prompts = self.ids.tolist(), self.offsets.tolist(), self.prompt_lengths.tolist()
        return [ids[start + length:end] for start, end, length in zip(offsets, offsets[1:], prompts)]

    def first(self, count: int | None) -> "LMSplit":
        """The split of its first ``count`` records (all when None)."""
        if count is None or count >= len(self):
            return self
        end = int(self.offsets[count])
        return LMSplit(self.ids[:end], self.offsets[:count + 1], self.prompt_lengths[:count], self.pad_id,
                       self.references[:count])

    def token_count(self) -> int:
        """How many positions of the split are predicted (response tokens)."""
        return int((self.lengths() - self.prompt_lengths).sum())

    def batch(self, rows: Tensor, host_lengths: Tensor, host_prompts: Tensor, host_rows: Tensor) -> "LMBatch":
        """Records ``rows`` (on the split's device; ``host_rows`` the same on the host) right-padded
        to their longest, with the flat positions ``[N]`` whose next token is a response token and
        those tokens (``targets``). Which positions count is worked out on the host from the lengths
        (no read of the device); the inputs are gathered on the device, and the positions are the
        batch's one copy to it."""
        lengths, prompts = host_lengths[host_rows], host_prompts[host_rows]
        width = int(lengths.max())
        positions = torch.arange(width).unsqueeze(0)
        counted = (positions >= (prompts - 1).unsqueeze(1)) & (positions < (lengths - 1).unsqueeze(1))
        flat = counted.flatten().nonzero().squeeze(1)
        inputs = padded_rows(self.ids, self.offsets, rows, self.pad_id, width)
        counted_rows = flat.to(self.ids.device, non_blocking=True)
        targets = inputs["input_ids"].view(-1)[counted_rows + 1]  # the next token, in the same record
        return LMBatch(inputs, targets, counted_rows, rows, int(flat.numel()), host_indices=host_rows)

    def host(self) -> tuple[Tensor, Tensor]:
        """Each record's length and prompt length, on the host (read once per split)."""
        return self.lengths().cpu(), self.prompt_lengths.cpu()

    def batches(self, batch_size: int) -> Iterator["LMBatch"]:
        """The split in order, ``batch_size`` records at a time (the last batch may be smaller)."""
        lengths, prompts = self.host()
        for start in range(0, len(self), batch_size):
            host_rows = torch.arange(start, min(start + batch_size, len(self)))
            yield self.batch(host_rows.to(self.ids.device), lengths, prompts, host_rows)

    def prompts(self) -> list[list[int]]:
        """Every record's prompt token ids (for generation), read to the host in one copy."""
        ids, offsets, prompts = self.ids.tolist(), self.offsets.tolist(), self.prompt_lengths.tolist()
        return [ids[start:start + length] for start, length in zip(offsets, prompts)]


@dataclass
class LMBatch:
    """A batch of instruction records: the padded inputs, the flat positions ``rows`` of the
    predicted tokens in ``[B * W]``, the tokens they predict (``targets``), each record's position
    in its split (``indices``) and the number of predicted tokens (known on the host)."""

    inputs: dict[str, Tensor]
    targets: Tensor
    rows: Tensor
    indices: Tensor
    tokens: int
    chunk_tokens: int | None = None
    host_indices: Tensor | None = None  # ``indices`` on the host, as the stream drew them (no device read)
    _fixed: tuple[Tensor, Tensor] | None = field(default=None, repr=False)  # (logits, their detached CE)

    def cross_entropy(self, logits: Tensor, label_smoothing: float = 0.0) -> Tensor:
        """The mean token cross-entropy of ``logits`` ``[N, V]`` (float32, ``chunk_tokens`` rows at a
        time). Logits that need no gradient (the teacher's, which every DTS member of the cohort asks
        for) are scored once per batch."""
        from ...objectives.teacher_cache import CachedRows
        from ...objectives.token import chunked_rows

        if isinstance(logits, CachedRows):  # a teacher cache's rows: L_1 - z_target, exact
            return logits.cross_entropy()
        fixed = not logits.requires_grad and label_smoothing == 0.0
        if fixed and self._fixed is not None and self._fixed[0] is logits:
            return self._fixed[1]

        def fn(s: Tensor, t: Tensor, y: Tensor, T: Tensor) -> Tensor:
            return torch.nn.functional.cross_entropy(s.float(), y, reduction="sum", label_smoothing=label_smoothing)

        value = chunked_rows(fn, logits, logits.detach(), self.targets, 1.0, chunk_tokens=self.chunk_tokens)
        if fixed:
            self._fixed = (logits, value)
        return value

    def per_sample_cross_entropy(self, logits: Tensor) -> Tensor:
        return torch.nn.functional.cross_entropy(logits.float(), self.targets, reduction="none")


class LMStream:
    """Per epoch, a seeded permutation of the training records cut into full batches (the last
    partial one dropped), each padded to its longest record. Epoch ``e`` depends only on
    ``(data_seed, e)``."""

    def __init__(self, split: LMSplit, batch_size: int, data_seed: int, chunk_tokens: int | None = None) -> None:
        if len(split) < batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the {len(split)} training records")
        self.split, self.batch_size, self.data_seed, self.chunk_tokens = split, batch_size, data_seed, chunk_tokens
        self._host = split.host()

    @property
    def batches_per_epoch(self) -> int:
        return len(self.split) // self.batch_size

    def epoch(self, epoch: int) -> Iterator[LMBatch]:
        generator = torch.Generator().manual_seed(stream_seed(self.data_seed, epoch))
        host = torch.randperm(len(self.split), generator=generator)
        order = host.to(self.split.ids.device)
        for index in range(self.batches_per_epoch):
            window = slice(index * self.batch_size, (index + 1) * self.batch_size)
            batch = self.split.batch(order[window], *self._host, host[window])
            batch.chunk_tokens = self.chunk_tokens
            yield batch


def minillm_prompts(config: LMDataConfig) -> bool:
    """Whether the evaluation sets' prompts keep their first tokens (MiniLLM's evaluation)."""
    return config.generation.protocol == "minillm"


def cache_key(config: LMDataConfig, tokenizer_id: str) -> str:
    files = split_files(config)
    paths = list(files.values()) if files is not None else (
        [Path(config.root).expanduser() / DOLLY_FILE] if config.root is not None else [])
    paths = [q for p in paths for q in ((p.with_name(p.name + ".bin"), p.with_name(p.name + ".idx"))
                                         if config.dataset == "minillm" and p.suffix != ".jsonl" else (p,))]
    stats = [{"name": p.name, "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in paths]
    text = json.dumps({"version": CACHE_VERSION, "dataset": config.dataset,
                       "root": str(Path(config.root).expanduser().resolve()) if config.root else None, "files": stats,
                       "eval_sets": config.eval_sets, "tokenizer": tokenizer_id,
                       "lengths": [config.max_prompt_length, config.max_length],
                       "evaluation_prompts": "first" if minillm_prompts(config) else "last"}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def splits_of(config: LMDataConfig) -> tuple[str, ...]:
    return ("train", "validation", *config.eval_sets)


def load_splits(config: LMDataConfig, tokenizer: Any, tokenizer_name: str, cache_dir: Path,
                progress: bool = False) -> dict[str, LMSplit]:
    """Every split of ``config``, tokenised, from the cache when it has them (written the first time),
    cut to ``train_samples`` / ``eval_samples``."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    key = cache_key(config, tokenizer_identity(tokenizer, tokenizer_name))
    path = cache_dir / "lm" / f"{config.dataset}-{key}.safetensors"
    tensors = meta = None
    if path.is_file():
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), "pt") as handle:
                meta = json.loads(handle.metadata()["kdtemp"])
        except Exception as error:  # a damaged cache file is rebuilt
            warn(f"the token cache {path.name} could not be read ({type(error).__name__}); tokenising again")
            tensors = meta = None
    if tensors is None:
        records = read_records(config)
        tensors, meta = {}, {"pad_id": None, "references": {}}
        for split in splits_of(config):
            if records[split] and isinstance(records[split][0], TokenRecord):
                check_ids(records[split], tokenizer.eos_token_id, len(tokenizer), split)
            keep_first = split in config.eval_sets and minillm_prompts(config)
            done = tokenise(records[split], tokenizer, config, keep_first)
            tensors.update({f"{split}.{name}": value for name, value in done.tensors.items()})
            if split != "train":
                meta["references"][split] = [r.references for r in records[split]]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        meta["pad_id"] = int(pad)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(temporary), metadata={"kdtemp": json.dumps(meta)})
        os.replace(temporary, path)
    out = {}
    for split in splits_of(config):
        part = {name.split(".", 1)[1]: value for name, value in tensors.items() if name.startswith(split + ".")}
        count = len(part["prompt_lengths"])
        references = meta["references"].get(split, [[] for _ in range(count)])
        whole = LMSplit(part["ids"], part["offsets"], part["prompt_lengths"], int(meta["pad_id"]), references)
        used = config.train_samples if split == "train" else config.eval_samples
        out[split] = whole.first(used)
        if split == "validation" and config.validation is not None:  # generated on: its own count
            out[VALIDATION_GENERATION] = whole.first(config.validation)
        if progress:  # counted over the records the run uses, not the whole file
            for kind, limit in (("prompts", config.max_prompt_length), ("responses", config.max_length)):
                count = int(part[f"{kind[:-1]}_cut"][:used].sum())
                if count:
                    print(f"data: {count} of {len(out[split])} {split} {kind} were truncated (limit {limit} tokens)")
    return out

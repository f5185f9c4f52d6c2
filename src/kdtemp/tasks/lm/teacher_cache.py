"""A causal LM teacher's outputs on the training records, written once and read by every cohort and study
that asks for the same teacher, data and settings (``data.teacher_cache``, :class:`TeacherCacheConfig`).

Where: ``<cache_dir>/lm/teacher-outputs/<key>/``, ``key`` a digest of the teacher (its configuration and
its weights file's or folder's size and modification time, so a cohort trained from the cache never
loads the teacher to name it), the training split's token ids (sha256 of the ids the teacher reads), the
tokenizer, the cache settings and the precision the teacher ran in. ``manifest.json`` records all of them
in clear, and every shard's sha256.

What: per training record, in order, one row per predicted response position (the rows a batch of the
record would score), each the teacher's :class:`~kdtemp.objectives.teacher_cache.TopKTail` (``k`` logits
and ids, ``bins`` tail bins, the tail's minimum) and its logit of the target token (for DTS's teacher
cross-entropy), stored narrow (:func:`encode`: ids and counts in 2 bytes, logits as ``dtype`` offsets
below the row's largest; :func:`stored_bytes`) and held so on the device, each batch's rows widened to
float32 when read (:func:`decode`). Shards of ``shard_records`` records, safetensors, each written atomically and then
entered in the manifest with its sha256: a kill while the teacher writes leaves whole shards, and the
next cohort writes only those that are missing; a shard whose checksum differs is named and written
again, alone. When read, the manifest's teacher, data, tokenizer and settings must be the cohort's
(one line naming what differs otherwise).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...config import ConfigError, to_dict
from ...files import atomic_write_bytes, atomic_write_text, warn
from ...objectives.teacher_cache import CachedRows, TopKTail, top_k_tail
from ..base import ModelAdapter
from .config import CausalLMConfig, TeacherCacheConfig
from .data import LMBatch, LMSplit

VERSION = 2  # 2: ids and counts narrowed, logits as offsets in data.teacher_cache.dtype
FOLDER = "teacher-outputs"


ID_OFFSET = 32768  # ids and counts below 65,536 are stored as int16 less this: exact, no wrap-around
FLOAT16_MAX = 65504.0


def stored_bytes(k: int, bins: int, vocabulary: int, dtype: str = "float16") -> int:
    """Bytes a response token takes in the cache as written (:func:`encode`): ids and counts in 2 bytes
    for a vocabulary of at most 65,536 (else 4); logits, log-sums and the tail's minimum in ``dtype``
    below the row's largest logit; that logit and the target's in float32."""
    index = 2 if vocabulary <= 65536 else 4
    value = 2 if dtype == "float16" else 4
    return k * (index + value) + bins * (index + value) + value + 8


def _narrow(values: Tensor, vocabulary: int) -> Tensor:
    return (values - ID_OFFSET).to(torch.int16) if vocabulary <= 65536 else values.to(torch.int32)


def _widen(values: Tensor) -> Tensor:
    return values.long() + ID_OFFSET if values.dtype == torch.int16 else values.long()


def _below(values: Tensor, shift: Tensor, dtype: str) -> Tensor:
    """``values - shift`` per row in ``dtype`` (finite offsets clamped to float16's range; +-inf kept)."""
    offsets = values - shift.unsqueeze(1) if values.dim() == 2 else values - shift
    if dtype == "float16":
        offsets = torch.where(offsets.isfinite(), offsets.clamp(-FLOAT16_MAX, FLOAT16_MAX), offsets)
    return offsets.to(getattr(torch, dtype))


def encode(table: TopKTail, label: Tensor, dtype: str) -> dict[str, Tensor]:
    """A cache shard's tensors for ``table``'s rows and their target logits ``label`` (:func:`decode`
    reverses it: ids and counts exactly; ``float32`` logits exactly, ``float16`` ones within the rounding
    of their offset below the row's largest logit)."""
    largest = table.logits[:, 0].float()
    shift = torch.where(largest.isfinite(), largest, 0.0) if dtype == "float16" else torch.zeros_like(largest)  # float32: as is
    return {"ids": _narrow(table.ids, table.vocab), "logits": _below(table.logits, shift, dtype),
            "counts": _narrow(table.counts, table.vocab), "log_sums": _below(table.log_sums, shift, dtype),
            "floor": _below(table.floor, shift, dtype), "shift": shift, "label": label.float()}


def read_bytes(k: int, bins: int) -> int:
    """Bytes a response token's rows take once read for a step (:func:`decode`: int64 ids and counts,
    float32 logits, log-sums, minimum and target logit), held while the cohort's members train on it."""
    return 12 * k + 12 * bins + 8


def decode(stored: dict[str, Tensor], index: Tensor | slice, width: float, vocabulary: int) -> tuple[TopKTail, Tensor]:
    """Rows ``index`` of stored tensors (:func:`encode`) as a float32 :class:`TopKTail` and their
    target logits."""
    shift = stored["shift"][index]
    table = TopKTail(_widen(stored["ids"][index]), stored["logits"][index].float() + shift.unsqueeze(1),
                     _widen(stored["counts"][index]), stored["log_sums"][index].float() + shift.unsqueeze(1),
                     stored["floor"][index].float() + shift, width, vocabulary)
    return table, stored["label"][index]


def _file_stats(path: Path) -> list[dict[str, Any]]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [{"name": str(p.relative_to(path)) if p != path else p.name, "size": p.stat().st_size,
             "mtime_ns": p.stat().st_mtime_ns} for p in files]


def teacher_identity(config: CausalLMConfig) -> dict[str, Any]:
    """The teacher as the cache names it, without loading it: its configuration and, for weights on disk
    (a checkpoint, a prepared teacher, a ``save_pretrained`` folder), their files' sizes and times."""
    identity: dict[str, Any] = {"config": {k: v for k, v in to_dict(config).items()
                                           if k not in config.unused_fields() | {"prepared"}}}
    for candidate in (config.weights, config.name if config.init == "pretrained" else None):
        if candidate and Path(candidate).expanduser().exists():
            path = Path(candidate).expanduser().resolve()
            identity["files"] = {"path": str(path), "stats": _file_stats(path)}
            break
    return identity


def split_digest(split: LMSplit) -> str:
    """The sha256 of the token ids, record boundaries and prompt lengths of ``split``."""
    digest = hashlib.sha256()
    for tensor in (split.ids, split.offsets, split.prompt_lengths):
        digest.update(tensor.detach().cpu().to(torch.int64).numpy().tobytes())
    return digest.hexdigest()


def identity(teacher: CausalLMConfig, train: LMSplit, tokenizer: str, vocabulary: int, settings: TeacherCacheConfig,
             runtime: Any) -> dict[str, Any]:
    """Everything a cache's contents depend on (the manifest's ``identity``)."""
    return {"version": VERSION, "teacher": teacher_identity(teacher), "data": split_digest(train),
            "records": len(train), "tokenizer": tokenizer, "vocabulary": int(vocabulary),
            "k": settings.k, "bins": settings.bins, "width": settings.width, "dtype": settings.dtype,
            "precision": "bf16" if runtime.bf16 else str(runtime.dtype).replace("torch.", "")}


def folder_of(cache_dir: Path, ident: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir / "lm" / FOLDER / key


def record_rows(split: LMSplit) -> np.ndarray:
    """How many rows (predicted response positions) each record of ``split`` has."""
    lengths, prompts = split.host()
    return (lengths - prompts).numpy().astype(np.int64)


def _shard_bytes(tensors: dict[str, Tensor]) -> bytes:
    from safetensors.torch import save

    return save({name: value.contiguous().cpu() for name, value in tensors.items()})


def _check_manifest(manifest: dict[str, Any], ident: dict[str, Any], folder: Path) -> None:
    recorded = manifest.get("identity", {})
    for name, what in (("tokenizer", "tokenizer"), ("vocabulary", "vocabulary"), ("teacher", "teacher"),
                       ("data", "training data"), ("records", "training data"), ("k", "k"), ("bins", "bins"),
                       ("width", "width"), ("dtype", "dtype"), ("precision", "precision"), ("version", "format version")):
        if recorded.get(name) != ident[name]:
            raise ConfigError(f"data.teacher_cache: the cache in {folder} was made for another {what} "
                              f"({name}: {json.dumps(recorded.get(name))[:120]}, this cohort's: "
                              f"{json.dumps(ident[name])[:120]}); remove the folder to write it again")


class TeacherCache:
    """The cache of one (teacher, data, settings): which shards are whole, writing the missing ones from
    a live teacher, and reading it whole onto a device."""

    def __init__(self, cache_dir: Path, ident: dict[str, Any], train: LMSplit, settings: TeacherCacheConfig) -> None:
        self.ident, self.train, self.settings = ident, train, settings
        self.folder = folder_of(cache_dir, ident)
        self.manifest_path = self.folder / "manifest.json"
        self.manifest = {"identity": ident, "shards": {}}
        if self.manifest_path.is_file():
            self.manifest = json.loads(self.manifest_path.read_text())
            _check_manifest(self.manifest, ident, self.folder)
        count = len(train)
        self.starts = list(range(0, count, settings.shard_records))

    def shard_path(self, index: int) -> Path:
        return self.folder / f"shard-{index:05d}.safetensors"

    def missing(self) -> list[int]:
        """The shards not written whole (a damaged one is named)."""
        todo = []
        for index in range(len(self.starts)):
            path = self.shard_path(index)
            recorded = self.manifest["shards"].get(path.name)
            if recorded is not None and path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == recorded:
                continue
            if recorded is not None:
                warn(f"teacher cache: {path} is damaged or missing (its sha256 differs from the manifest's); writing "
                     "that shard again")
            todo.append(index)
        return todo

    def write(self, teacher: Any, shards: list[int], runtime: Any, batch_size: int) -> None:
        """Run the live ``teacher`` over the records of ``shards`` and write them (each shard atomically,
        then its sha256 into the manifest)."""
        lengths, prompts = self.train.host()
        print(f"teacher cache: the teacher writes {len(shards)} of {len(self.starts)} shards "
              f"(k {self.settings.k}, {self.settings.bins} tail bins) in {self.folder}", flush=True)
        for index in shards:
            start = self.starts[index]
            stop = min(start + self.settings.shard_records, len(self.train))
            parts: dict[str, list[Tensor]] = {}
            for first in range(start, stop, batch_size):
                host_rows = torch.arange(first, min(first + batch_size, stop))
                batch = self.train.batch(host_rows.to(self.train.ids.device), lengths, prompts, host_rows)
                with torch.no_grad(), runtime.autocast():
                    logits = teacher(batch)
                logits = logits.float()
                table = top_k_tail(logits, self.settings.k, self.settings.bins, self.settings.width)
                label = logits.gather(1, batch.targets.long().unsqueeze(1)).squeeze(1)
                for name, value in encode(table, label, self.settings.dtype).items():
                    parts.setdefault(name, []).append(value.cpu())
            data = _shard_bytes({name: torch.cat(values) for name, values in parts.items()})
            path = self.shard_path(index)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
            self.manifest["shards"][path.name] = hashlib.sha256(data).hexdigest()
            self.manifest["identity"] = self.ident
            atomic_write_text(self.manifest_path, json.dumps(self.manifest, indent=1, sort_keys=True))

    def read(self, device: torch.device) -> "CachedTeacher":
        """Every shard, checked against its sha256, as one table on ``device``."""
        from safetensors.torch import load

        parts: dict[str, list[Tensor]] = {}
        for index in range(len(self.starts)):
            path = self.shard_path(index)
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != self.manifest["shards"].get(path.name):
                raise ConfigError(f"data.teacher_cache: {path} changed after it was checked; run again to rewrite it")
            for name, value in load(data).items():
                parts.setdefault(name, []).append(value)
        tensors = {name: torch.cat(values).to(device) for name, values in parts.items()}
        rows = record_rows(self.train)
        if int(rows.sum()) != tensors["label"].shape[0]:
            raise ConfigError(f"data.teacher_cache: {self.folder} holds {tensors['label'].shape[0]} rows; the training "
                              f"records have {int(rows.sum())} response positions (remove the folder to write it again)")
        return CachedTeacher(tensors, rows, self.folder, self.settings, int(self.ident["vocabulary"]))


class CachedTeacher(ModelAdapter):
    """The teacher as a cohort trained from a cache sees it: called on a training batch, the cached rows
    of its predicted positions (:class:`~kdtemp.objectives.teacher_cache.CachedRows`), in the order a
    live teacher returns its logits (record by record, position by position). Holds no parameters."""

    def __init__(self, stored: dict[str, Tensor], rows: np.ndarray, folder: Path, settings: TeacherCacheConfig,
                 vocabulary: int) -> None:
        self.module = nn.Module()
        self.stored, self.folder, self.settings, self.vocabulary = stored, folder, settings, vocabulary
        self.offsets = np.concatenate([[0], np.cumsum(rows)])

    def __call__(self, batch: LMBatch) -> CachedRows:
        records = batch.host_indices.numpy()
        index = np.concatenate([np.arange(self.offsets[r], self.offsets[r + 1]) for r in records])
        if index.shape[0] != batch.tokens:
            raise RuntimeError(f"teacher cache: {index.shape[0]} cached rows for a batch of {batch.tokens} positions")
        rows = torch.from_numpy(index).to(self.stored["label"].device, non_blocking=True)
        return CachedRows(*decode(self.stored, rows, self.settings.width, self.vocabulary))

    def metadata(self) -> dict[str, Any]:
        return {"teacher_cache": self.folder.name, "teacher_cache_dtype": self.settings.dtype,
                "teacher_cache_bytes_per_token": stored_bytes(self.settings.k, self.settings.bins, self.vocabulary,
                                                              self.settings.dtype)}


def cached_teacher(config: CausalLMConfig, train: LMSplit, tokenizer: str, vocabulary: int,
                   settings: TeacherCacheConfig, runtime: Any, cache_dir: Path, load_teacher: Any,
                   batch_size: int = 16) -> CachedTeacher:
    """The cache of ``config``'s teacher on ``train``: written first where shards are missing (the teacher
    loaded by ``load_teacher()`` for that only, then freed), then read onto the runtime's device."""
    if settings.k > vocabulary:
        raise ConfigError(f"data.teacher_cache.k: {settings.k} exceeds the vocabulary of {vocabulary:,} tokens; "
                          f"allowed: 1 to {vocabulary:,}")
    cache = TeacherCache(cache_dir, identity(config, train, tokenizer, vocabulary, settings, runtime), train, settings)
    todo = cache.missing()
    if todo:
        teacher = load_teacher()
        cache.write(teacher, todo, runtime, batch_size)
        del teacher
    return cache.read(runtime.device)

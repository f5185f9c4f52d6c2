"""Text data: rows read once (GLUE through ``datasets`` or its TSV files, or your own TSV/CSV/JSONL),
tokenised once and cached as integer tensors, then a deterministic stream of dynamically padded batches.

A split on the device is ragged: every input's token ids one after another (``ids``, int32), where
each begins (``offsets``), its token type ids where the tokenizer gives them, and its label. A batch
gathers its rows into ``[B, L]`` with ``L`` the longest of them (padding with the tokenizer's pad id,
masked out by the attention mask). The cache file is safetensors (data, never code), keyed by what
determines its content: the dataset, its files (names, sizes, modification times), the columns, the
tokenizer (name and vocabulary digest) and ``max_length``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor

from ...config import ConfigError
from ...files import warn
from ...readers import read_json_lines, read_table
from ..base import stream_seed
from ..hf import padded_rows, tokenizer_identity
from .config import FORMATS, GENERIC, TextDataConfig
from .glue import GLUE, GlueTask

CACHE_VERSION = 1
TEST_NAMES = ("test", "validation", "dev")


@dataclass
class Rows:
    """A split as read: the texts (and second texts of pairs), the label indices, the class names."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[int]
    classes: list[str]
    source: str  # where it was read, for messages


def natural(value: str) -> tuple:
    return (0, float(value), "") if value.replace(".", "", 1).lstrip("-").isdigit() else (1, 0.0, value)


Table = tuple[list[str] | None, list[tuple[int, list[str | None]]]]
"""A file's header (None without one) and its rows, each with the line it starts on; a JSONL record's
missing key is ``None``."""


def _read_table(path: Path, field: str, header: bool = True) -> Table:
    """The header and rows of a TSV/CSV file, or of a JSONL file as columns by name
    (:mod:`kdtemp.readers`: UTF-8, one object per line, no duplicate keys). A table's rows must have
    its header's columns: a row with fewer lost a value (a missing label), one with more has a stray
    separator inside a text (GLUE's TSVs quote nothing, so a tab inside a sentence splits it)."""
    if path.suffix == ".jsonl":
        records = read_json_lines(path, field)
        names = list(dict.fromkeys(key for _, record in records for key in record))
        rows: list[tuple[int, list[str | None]]] = []
        for number, record in records:
            for key, value in record.items():
                if isinstance(value, (dict, list)):
                    raise ConfigError(f"{field}: {path} line {number}: {key!r} holds a {type(value).__name__}; a "
                                      "column holds a string or a number")
            rows.append((number, [None if n not in record else "" if record[n] is None else str(record[n])
                                  for n in names]))
        return names, rows
    tsv = path.suffix == ".tsv"
    table = read_table(path, field, "\t" if tsv else ",", csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
    if not header or not table:
        return None, list(table)
    names = table[0][1]
    for number, row in table[1:]:
        if len(row) < len(names):
            raise ConfigError(f"{field}: {path} line {number} has {len(row)} columns; its header has {len(names)} "
                              f"({', '.join(names[len(row):])} missing)")
        if len(row) > len(names):
            separator = "tab" if tsv else "comma"
            hint = "remove it (GLUE's TSVs quote nothing)" if tsv else "quote the text"
            raise ConfigError(f"{field}: {path} line {number} has {len(row)} columns; its header has {len(names)} "
                              f"(a {separator} inside a text? {hint})")
    return names, list(table[1:])


def _columns(path: Path, header: list[str] | None, wanted: list[str | int], field: str) -> list[int]:
    """The indexes of the ``wanted`` columns (names, or indexes of a file without a header)."""
    indexes = []
    for name in wanted:
        if isinstance(name, int):
            indexes.append(name)
            continue
        if header is None or name not in header:
            shown = ", ".join(header or []) or "none (no header)"
            raise ConfigError(f"{field}: {path} has no column {name!r} (its columns: {shown})")
        indexes.append(header.index(name))
    return indexes


def _cell(path: Path, number: int, row: list[str | None], index: int, name: str, field: str) -> str:
    """The value of column ``index`` (called ``name``) of a row; one line when the row lacks it."""
    value = row[index] if index < len(row) else None
    if value is None:
        raise ConfigError(f"{field}: {path} line {number} has no {name!r}")
    return value


def read_glue_tsv(task: GlueTask, root: Path, split: str) -> Rows:
    """One split of GLUE task ``task`` from GLUE's own TSV file in ``root``."""
    path = root / task.tsv_files[split]
    if not path.is_file():
        raise ConfigError(f"data.root: {root} has no {task.tsv_files[split]} (GLUE's {task.name} {split} file)")
    header, table = _read_table(path, "data.root", task.tsv_header)
    text_columns = list(task.tsv_text_index) or list(task.tsv_columns)
    text, *pair = _columns(path, header, [*text_columns, task.tsv_label], "data.root")
    label = pair.pop()
    names = {name: index for index, name in enumerate(task.label_names)}
    texts, pairs, labels = [], [] if pair else None, []
    width = len(table[0][1]) if table and header is None else None  # a file without a header: its first row's
    for number, row in table:
        needed = max([text, label, *pair])
        if len(row) <= needed or (width is not None and len(row) != width):
            raise ConfigError(f"data.root: {path} line {number} has {len(row)} columns; {task.name}'s file has "
                              f"{width or needed + 1}")
        value = (row[label] or "").strip()
        if value in names:
            labels.append(names[value])
        elif value.isdigit() and int(value) < len(task.label_names):
            labels.append(int(value))
        else:
            raise ConfigError(f"data.root: {path} line {number}: label {value!r} is not one of {task.name}'s "
                              f"({', '.join(task.label_names)}, or their indexes)")
        texts.append(row[text] or "")
        if pairs is not None:
            pairs.append(row[pair[0]] or "")
    return Rows(texts, pairs, labels, list(task.label_names), str(path))


def read_glue_hub(task: GlueTask, split: str, download: bool) -> Rows:
    """One split of GLUE task ``task`` through ``datasets`` (``nyu-mll/glue``): from its cache, and
    from the hub only with ``download``."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("data.dataset: GLUE through `datasets` needs the text extra: pip install 'kdtemp[text]'") from None
    mode = "reuse_dataset_if_exists" if download else "reuse_cache_if_exists"
    previous = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = previous or not download
    try:
        loaded = datasets.load_dataset("nyu-mll/glue", task.name, split=split, download_mode=mode)
    except Exception as error:  # offline, not cached, or the hub refused: one line
        hint = "set data.download: true on a machine that is online" if not download else "check the connection"
        raise ConfigError(f"data.dataset: GLUE {task.name} ({split}) could not be read through datasets "
                          f"({type(error).__name__}); {hint}, or give data.root: a folder of GLUE's TSV files") from None
    finally:
        datasets.config.HF_HUB_OFFLINE = previous
    first, *second = task.hub_columns
    return Rows(list(loaded[first]), list(loaded[second[0]]) if second else None, [int(v) for v in loaded["label"]],
                list(task.label_names), f"nyu-mll/glue {task.name} {split}")


def generic_file(root: Path, names: tuple[str, ...], split: str) -> Path:
    for name in names:
        for suffix in FORMATS:
            if (root / f"{name}{suffix}").is_file():
                return root / f"{name}{suffix}"
    wanted = " or ".join(f"{n}{{{','.join(FORMATS)}}}" for n in names)
    raise ConfigError(f"data.root: {root} has no {split} file ({wanted})")


def read_generic(config: TextDataConfig, split: str, classes: list[str] | None = None) -> Rows:
    """One split of a ``text_classification`` folder; the class names are the training split's
    label values in natural order (``classes``, given for the test split). A row without a text or a
    label, or with an empty label, is refused with its line."""
    root = Path(config.root).expanduser()
    path = generic_file(root, ("train",) if split == "train" else TEST_NAMES, split)
    header, table = _read_table(path, "data.root")
    wanted = [config.text_column, config.label_column] + ([config.text_pair_column] if config.text_pair_column else [])
    fields = ["data.text_column", "data.label_column", "data.text_pair_column"]
    indexes = []
    for name, field in zip(wanted, fields):
        indexes += _columns(path, header, [name], field)
    text, label, *pair = indexes
    texts, pairs, values = [], [] if pair else None, []
    for number, row in table:
        value = _cell(path, number, row, label, config.label_column, "data.label_column").strip()
        if not value:
            raise ConfigError(f"data.label_column: {path} line {number} has an empty {config.label_column!r}")
        values.append(value)
        texts.append(_cell(path, number, row, text, config.text_column, "data.text_column"))
        if pairs is not None:
            pairs.append(_cell(path, number, row, pair[0], config.text_pair_column, "data.text_pair_column"))
    if classes is None:
        classes = sorted(set(values), key=natural)
        if len(classes) < 2:
            raise ConfigError(f"data.label_column: {path} has {len(classes)} label value(s); classification needs 2 or more")
    unknown = sorted(set(values) - set(classes), key=natural)
    if unknown:
        raise ConfigError(f"data.label_column: {path} has labels the training split has not ({', '.join(unknown[:5])})")
    index = {name: i for i, name in enumerate(classes)}
    return Rows(texts, pairs, [index[v] for v in values], list(classes), str(path))


def test_splits(config: TextDataConfig) -> tuple[str, ...]:
    """The evaluation splits: GLUE's validation split(s) (MNLI: matched, then mismatched), or ``test``."""
    return GLUE[config.dataset].test_splits if config.dataset in GLUE else ("test",)


def read_rows(config: TextDataConfig, split: str, classes: list[str] | None = None) -> Rows:
    if config.dataset == GENERIC:
        return read_generic(config, split, classes)
    task = GLUE[config.dataset]
    if config.root is not None:
        return read_glue_tsv(task, Path(config.root).expanduser(), split)
    return read_glue_hub(task, split, config.download)


def source_files(config: TextDataConfig) -> list[Path]:
    """The local files a dataset reads (none for GLUE through ``datasets``)."""
    if config.root is None:
        return []
    root = Path(config.root).expanduser()
    if config.dataset == GENERIC:
        return [generic_file(root, ("train",), "train"), generic_file(root, TEST_NAMES, "test")]
    return [root / name for name in GLUE[config.dataset].tsv_files.values()]


@dataclass
class TextSplit:
    """A tokenised split (ragged, see the module docstring)."""

    ids: Tensor
    offsets: Tensor
    type_ids: Tensor | None
    labels: Tensor
    classes: list[str]
    pad_id: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device: torch.device | str) -> "TextSplit":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TextSplit(move(self.ids), move(self.offsets), move(self.type_ids), move(self.labels), self.classes,
                         self.pad_id)

    def lengths(self) -> Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def inputs(self, rows: Tensor, width: int | None = None) -> dict[str, Tensor]:
        """``input_ids``, ``attention_mask`` (and ``token_type_ids``) of ``rows``, padded to the
        longest of them (``width``, when the caller knows it from the host, so the device is not
        asked); gathered on the split's device in a few kernels."""
        return padded_rows(self.ids, self.offsets, rows, self.pad_id, width, self.type_ids)

    def subset(self, rows: Tensor) -> "TextSplit":
        """The split of ``rows`` (in that order)."""
        starts, lengths = self.offsets[rows], self.lengths()[rows]
        pieces = [torch.arange(int(s), int(s) + int(n)) for s, n in zip(starts.tolist(), lengths.tolist())]
        take = torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.long)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        return TextSplit(self.ids[take], offsets, None if self.type_ids is None else self.type_ids[take],
                         self.labels[rows], self.classes, self.pad_id)


def first_per_class(labels: Tensor, classes: int, per_class: int | None) -> Tensor | None:
    """Row indexes of the first ``per_class`` rows of each class, in file order (None: all)."""
    if per_class is None:
        return None
    keep, seen = [], [0] * classes
    for row, label in enumerate(labels.tolist()):
        if seen[label] < per_class:
            seen[label] += 1
            keep.append(row)
    return torch.tensor(keep, dtype=torch.long)


def cache_key(config: TextDataConfig, tokenizer_id: str) -> str:
    files = [{"name": p.name, "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
             for p in source_files(config) if p.is_file()]
    text = json.dumps({"version": CACHE_VERSION, "dataset": config.dataset,
                       "root": str(Path(config.root).expanduser().resolve()) if config.root else None, "files": files,
                       "columns": [config.text_column, config.text_pair_column, config.label_column]
                       if config.dataset == GENERIC else None,
                       "tokenizer": tokenizer_id, "max_length": config.max_length}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def tokenize(rows: Rows, tokenizer: Any, max_length: int) -> tuple[dict[str, Tensor], int]:
    """The ragged tensors of ``rows`` and how many inputs were truncated to ``max_length``."""
    full = tokenizer(rows.texts, rows.pairs, truncation=False)["input_ids"]
    truncated = sum(len(ids) > max_length for ids in full)
    encoded = tokenizer(rows.texts, rows.pairs, truncation=True, max_length=max_length, return_token_type_ids=True)
    ids = encoded["input_ids"]
    lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
    tensors = {"ids": torch.tensor([t for x in ids for t in x], dtype=torch.int32),
               "offsets": torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]),
               "labels": torch.tensor(rows.labels, dtype=torch.long)}
    types = encoded.get("token_type_ids")
    if types is not None and any(any(x) for x in types):  # single-sentence inputs carry only zeros: not kept
        tensors["type_ids"] = torch.tensor([t for x in types for t in x], dtype=torch.int8)
    return tensors, truncated


def load_splits(config: TextDataConfig, tokenizer: Any, tokenizer_name: str, cache_dir: Path,
                progress: bool = False) -> dict[str, TextSplit]:
    """Every split of ``config`` (``train`` and the evaluation splits), tokenised, from the cache
    when it has them (written there the first time), with the per-class subsets applied."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    key = cache_key(config, tokenizer_identity(tokenizer, tokenizer_name))
    path = cache_dir / "text" / f"{config.dataset}-{key}.safetensors"
    splits = ("train", *test_splits(config))
    if path.is_file():
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), "pt") as handle:  # the header's metadata: classes, pad id, truncations
                meta = json.loads(handle.metadata()["kdtemp"])
        except Exception as error:  # a damaged cache file is rebuilt
            warn(f"the token cache {path.name} could not be read ({type(error).__name__}); tokenising again")
            tensors, meta = None, None
    else:
        tensors, meta = None, None
    if tensors is None:
        tensors, truncated, classes = {}, {}, None
        for split in splits:
            rows = read_rows(config, split, classes)
            classes = rows.classes
            encoded, truncated[split] = tokenize(rows, tokenizer, config.max_length)
            tensors.update({f"{split}.{name}": value for name, value in encoded.items()})
        meta = {"classes": classes, "pad_id": int(tokenizer.pad_token_id or 0), "truncated": truncated}
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(temporary), metadata={"kdtemp": json.dumps(meta)})
        os.replace(temporary, path)
        for split, count in truncated.items():
            if count and progress:
                print(f"data: {count} {split} inputs longer than max_length {config.max_length} were truncated")
    out = {}
    for split in splits:
        split_tensors = {name.split(".", 1)[1]: value for name, value in tensors.items() if name.startswith(split + ".")}
        whole = TextSplit(split_tensors["ids"], split_tensors["offsets"], split_tensors.get("type_ids"),
                          split_tensors["labels"], list(meta["classes"]), int(meta["pad_id"]))
        per_class = config.train_per_class if split == "train" else config.test_per_class
        rows = first_per_class(whole.labels, whole.num_classes, per_class)
        out[split] = whole if rows is None else whole.subset(rows)
    return out


@dataclass
class TextBatch:
    """A training batch of text: the padded inputs, the label per row and each row's position in
    the training split."""

    inputs: dict[str, Tensor]
    targets: Tensor
    indices: Tensor

    def cross_entropy(self, logits: Tensor, label_smoothing: float = 0.0) -> Tensor:
        return torch.nn.functional.cross_entropy(logits.float(), self.targets, label_smoothing=label_smoothing)

    def per_sample_cross_entropy(self, logits: Tensor) -> Tensor:
        return torch.nn.functional.cross_entropy(logits.float(), self.targets, reduction="none")


class TextStream:
    """Per epoch, a seeded permutation of the training split cut into full batches (the last partial
    one is dropped), each padded to its longest input. Epoch ``e`` depends only on ``(data_seed, e)``."""

    def __init__(self, split: TextSplit, batch_size: int, data_seed: int) -> None:
        if len(split) < batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the {len(split)} training inputs")
        self.split, self.batch_size, self.data_seed = split, batch_size, data_seed
        self._lengths = split.lengths().cpu()  # each batch's padded width from the host: no sync in the step

    @property
    def batches_per_epoch(self) -> int:
        return len(self.split) // self.batch_size

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[TextBatch]:
        generator = torch.Generator().manual_seed(stream_seed(self.data_seed, epoch))
        host = torch.randperm(len(self.split), generator=generator)
        order = host.to(self.split.labels.device)
        for index in range(start_batch, self.batches_per_epoch):
            window = slice(index * self.batch_size, (index + 1) * self.batch_size)
            rows = order[window]
            width = int(self._lengths[host[window]].max())
            yield TextBatch(self.split.inputs(rows, width), self.split.labels[rows], rows)

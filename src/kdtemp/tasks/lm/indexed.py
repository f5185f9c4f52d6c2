"""MiniLLM's processed training data as it is on disk: Megatron-style indexed datasets (``<name>.bin`` +
``<name>.idx``) of token ids, each record a prompt, the separator 65535 and its response.

``.idx``: the magic ``MMIDIDX\\x00\\x00``, version 1 (uint64 little-endian), a dtype code (uint8: 1 uint8,
2 int8, 3 int16, 4 int32, 5 int64, 8 uint16), the record count and the document count (uint64 each), then
``int32 sizes[count]``, ``int64 pointers[count]`` (byte offsets into ``.bin``) and ``int64
doc_idx[documents]``. ``.bin``: the records' ids back to back. Everything is checked against the files'
sizes before a record is read; a file that does not match is one line.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...config import ConfigError

MAGIC = b"MMIDIDX\x00\x00"
DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 8: np.uint16}
SEPARATOR = 65535
"""The id MiniLLM puts between a record's prompt and its response (``np.iinfo(np.uint16).max``)."""


@dataclass(frozen=True)
class TokenRecord:
    """A record read as token ids: the prompt's, and the response's (ending with the EOS MiniLLM appended)."""

    prompt: list[int]
    response: list[int]

    @property
    def references(self) -> list[str]:
        """None: a training or validation record is scored by its tokens, not by generation."""
        return []


def index_files(prefix: Path, where: str) -> tuple[Path, Path]:
    """``prefix.bin`` and ``prefix.idx``; one line naming the one that is missing."""
    data, index = prefix.with_name(prefix.name + ".bin"), prefix.with_name(prefix.name + ".idx")
    for path, other in ((data, index), (index, data)):
        if not path.is_file():
            beside = f" beside {other.name}" if other.is_file() else ""
            raise ConfigError(f"{where}: {path} is missing{beside}; MiniLLM's processed data is a .bin file and its "
                              ".idx index")
    return data, index


def read_indexed(prefix: Path, where: str = "data.root") -> list[np.ndarray]:
    """Every record of the indexed dataset at ``prefix`` (without suffix) as an integer array."""
    data, index = index_files(prefix, where)
    raw = index.read_bytes()
    bad = lambda why: ConfigError(f"{where}: {index} is not a Megatron index ({why})")  # noqa: E731
    header = len(MAGIC) + 8 + 1 + 8 + 8
    if len(raw) < header or raw[:len(MAGIC)] != MAGIC:
        raise bad("no MMIDIDX header")
    version, code, count, documents = struct.unpack_from("<QBQQ", raw, len(MAGIC))
    if version != 1:
        raise bad(f"version {version}; kdtemp reads version 1")
    if code not in DTYPES:
        raise bad(f"dtype code {code}; allowed: {', '.join(map(str, DTYPES))}")
    if len(raw) != header + count * 4 + count * 8 + documents * 8:
        raise bad(f"{len(raw)} bytes for {count} records and {documents} documents")
    sizes = np.frombuffer(raw, dtype="<i4", count=count, offset=header).astype(np.int64)
    pointers = np.frombuffer(raw, dtype="<i8", count=count, offset=header + count * 4)
    dtype = np.dtype(DTYPES[code]).newbyteorder("<")
    length = data.stat().st_size
    if (sizes < 0).any() or (pointers < 0).any() or ((pointers + sizes * dtype.itemsize) > length).any():
        raise ConfigError(f"{where}: {index} points past the end of {data.name} ({length} bytes); they are not a pair")
    tokens = np.fromfile(data, dtype=dtype)
    return [tokens[p // dtype.itemsize: p // dtype.itemsize + s].astype(np.int64) for p, s in zip(pointers, sizes)]


def token_records(prefix: Path, where: str = "data.root") -> list[TokenRecord]:
    """MiniLLM's records at ``prefix``, split at :data:`SEPARATOR` (one line for a record without
    exactly one separator). :func:`check_ids` checks them against a tokenizer."""
    records = []
    for number, ids in enumerate(read_indexed(prefix, where), 1):
        cut = np.flatnonzero(ids == SEPARATOR)
        if len(cut) != 1:
            raise ConfigError(f"{where}: {prefix.name} record {number} has {len(cut)} prompt/response separators "
                              f"({SEPARATOR}); MiniLLM's 'full' data has one")
        records.append(TokenRecord(ids[:cut[0]].tolist(), ids[cut[0] + 1:].tolist()))
    return records


def check_ids(records: list[TokenRecord], eos_id: int, vocabulary: int, split: str, where: str = "data.tokenizer") -> None:
    """One line for the first record with an id the tokenizer does not have, or a response that does
    not end with the tokenizer's EOS: the ids were made by another tokenizer."""
    for number, record in enumerate(records, 1):
        largest = max(record.prompt + record.response, default=0)
        if largest >= vocabulary or not record.response or record.response[-1] != eos_id:
            why = (f"has id {largest}, outside the tokenizer's {vocabulary}" if largest >= vocabulary
                   else f"has a response that does not end with the tokenizer's EOS {eos_id}")
            raise ConfigError(f"{where}: {split} record {number} {why}; MiniLLM's processed ids were made by another "
                              "tokenizer (its GPT-2 data needs GPT-2's: encoder.json and vocab.bpe)")

"""Reading users' text files as data: UTF-8 text, delimited tables and JSON lines.

Every problem is one :class:`~kdtemp.config.ConfigError` line that names the setting that pointed at
the file, the file, the line (or record) and, where there is one, the column or key:

* encoding: UTF-8, with a leading byte-order mark removed (Excel writes one); any other byte is named
  with its line and column (a Latin-1 file is refused, not guessed);
* tables: :func:`read_table` returns each row with its line number, so a reader can check its shape
  (the columns a row has against the header's: a missing label, a stray tab inside a text);
* JSON lines: one object per line, no key twice in an object (the second would silently win), and at
  most :data:`MAX_JSON_DEPTH` levels of nesting (a record is flat; deeper input is refused before the
  parser recurses).

Nothing here knows a task: the task's readers decide which columns and keys they need.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from .config import ConfigError

BOM = "\ufeff"
MAX_JSON_DEPTH = 32
"""How deep a JSON line may nest (objects and lists); instruction and classification records nest 2."""


def read_text(path: Path, field: str) -> str:
    """The file's text as UTF-8, a leading byte-order mark removed; one line naming the first byte
    that is not UTF-8 (its line and column) otherwise."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise ConfigError(f"{field}: {path} line {line} is not UTF-8 (byte 0x{data[error.start]:02x} at column "
                          f"{column}); save the file as UTF-8") from None
    return text[1:] if text.startswith(BOM) else text


def read_table(path: Path, field: str, delimiter: str, quoting: int = csv.QUOTE_MINIMAL
               ) -> list[tuple[int, list[str]]]:
    """Every non-empty row of a delimited file with the line it starts on (1-based)."""
    reader = csv.reader(io.StringIO(read_text(path, field), newline=""), delimiter=delimiter, quoting=quoting)
    rows = []
    start = 1
    try:
        for row in reader:
            if row:
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as error:
        raise ConfigError(f"{field}: {path} line {reader.line_num} is not a valid row ({error})") from None
    return rows


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


class _DuplicateKey(Exception):
    pass


def json_depth(text: str) -> int:
    """The deepest nesting of objects and lists in a JSON text (brackets inside strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json_line(text: str, where: str) -> dict[str, Any]:
    """One JSON line as an object (``where`` names it in a message): no duplicate key, bounded nesting."""
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ConfigError(f"{where} nests deeper than {MAX_JSON_DEPTH} levels; a record is an object of strings "
                          "(and lists of them)")
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as duplicate:
        raise ConfigError(f"{where} has the key {str(duplicate)!r} twice; each key once") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{where} is not JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: a line must be a JSON object; got {type(value).__name__}")
    return value


def read_json_lines(path: Path, field: str) -> list[tuple[int, dict[str, Any]]]:
    """Every non-blank line of a JSONL file as an object, with its line number."""
    records = []
    for number, text in enumerate(read_text(path, field).splitlines(), 1):
        if text.strip():
            records.append((number, parse_json_line(text, f"{field}: {path} line {number}")))
    return records

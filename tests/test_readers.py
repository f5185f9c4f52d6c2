"""Reading users' files as data (``kdtemp.readers``): UTF-8 with a byte-order mark removed, rows with
their line numbers, JSON lines without duplicate keys or deep nesting; each problem one line."""

import csv

import pytest

from kdtemp.config import ConfigError
from kdtemp.readers import MAX_JSON_DEPTH, json_depth, parse_json_line, read_json_lines, read_table, read_text


def test_a_byte_order_mark_is_removed_and_other_encodings_are_named(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes("\ufefftext,label\nok,1\n".encode("utf-8"))
    assert read_text(path, "data.root") == "text,label\nok,1\n"
    path.write_bytes("text,label\nok,1\nna\u00efve,0\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^data.root: {path} line 3 is not UTF-8 \(byte 0xef at column 3\); "
                                          "save the file as UTF-8$"):
        read_text(path, "data.root")


def test_rows_keep_the_line_they_start_on(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\n"two\nlines",1\n\nthird,0\n')
    assert read_table(path, "data.root", ",") == [(1, ["text", "label"]), (2, ["two\nlines", "1"]), (5, ["third", "0"])]
    path.write_text("text\tlabel\na \"quote\tb\n")
    assert read_table(path, "data.root", "\t", csv.QUOTE_NONE)[1] == (2, ['a "quote', "b"])


def test_json_lines_are_objects_with_each_key_once_and_bounded_nesting(tmp_path):
    assert parse_json_line('{"a": "[[[{", "b": [1, {"c": 2}]}', "x") == {"a": "[[[{", "b": [1, {"c": 2}]}
    assert json_depth('{"a": "[[[[\\"]]"}') == 1
    with pytest.raises(ConfigError, match=r"^x has the key 'a' twice; each key once$"):
        parse_json_line('{"a": 1, "b": {"a": 2}, "a": 3}', "x")
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(ConfigError, match=rf"^x nests deeper than {MAX_JSON_DEPTH} levels"):
        parse_json_line(deep, "x")
    with pytest.raises(ConfigError, match=r"^x nests deeper"):  # far past Python's recursion limit: still one line
        parse_json_line("[" * 100_000 + "]" * 100_000, "x")
    with pytest.raises(ConfigError, match=r"^x: a line must be a JSON object; got int$"):
        parse_json_line("3", "x")
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(ConfigError, match=rf"^data.root: {path} line 3 is not JSON \(Expecting ',' delimiter"):
        read_json_lines(path, "data.root")

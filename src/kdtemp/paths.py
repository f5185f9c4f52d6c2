"""Where the paths in a config file point, and the example files shipped with kdtemp.

A relative path written in a study, distill or teacher file resolves against that file's folder,
so a study runs the same from any working directory. The packaged examples are templates: their
relative paths resolve against the current directory (where a user keeps their data and runs).
Paths given as command-line overrides resolve against the current directory, as shells do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import ConfigError

EXAMPLES = Path(__file__).parent / "examples"

RUN_PATHS = ("data.root", "data.cache_dir", "data.split_file", "data.tokenizer", "teacher.weights",
             "student.model.weights")
PATH_FIELDS = {
    "study": RUN_PATHS,
    "distill": RUN_PATHS + ("output",),
    "teacher": ("data.root", "data.cache_dir", "data.split_file", "data.tokenizer", "model.weights", "output"),
}
NAME_OR_PATH = ("tokenizer",)
"""Fields that hold a hub name or a folder: made absolute only when the folder exists beside the file."""


def default_cache_dir() -> Path:
    """Where every task caches its decoded or tokenised data: ``$KDTEMP_CACHE``, else
    ``$XDG_CACHE_HOME/kdtemp``, else ``~/.cache/kdtemp``."""
    if os.environ.get("KDTEMP_CACHE"):
        return Path(os.environ["KDTEMP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kdtemp"


def examples() -> dict[str, Path]:
    """The example files shipped with kdtemp, by name (file name without ``.yaml``)."""
    return {path.stem: path for path in sorted(EXAMPLES.glob("*.yaml"))}


def example_summary(path: Path) -> str:
    """The first comment line of an example."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def locate(argument: str) -> tuple[Path, Path]:
    """``(config file, folder its relative paths resolve against)`` for a command-line argument:
    an existing file (its own folder), else the name of a packaged example (the current folder)."""
    path = Path(argument).expanduser()
    if path.is_file():
        return path, path.resolve().parent
    name = path.name[:-5] if path.name.endswith((".yaml", ".yml")) else path.name
    shipped = examples()
    if path.parent == Path(".") and name in shipped:
        return shipped[name], Path.cwd()
    if path.exists():
        return path, Path.cwd()  # a folder or the like: load_yaml says what is wrong
    raise ConfigError(f"config file {argument!r} does not exist (nor is it a packaged example; "
                      f"`kdtemp examples` lists them: {', '.join(shipped)})")


def _absolute(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        return str((base / value).resolve())
    if isinstance(value, str):
        return str(Path(value).expanduser())
    return value


def _resolve_field(node: dict, dotted: str, base: Path) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return
    if keys[-1] in node:
        value = node[keys[-1]]
        if keys[-1] in NAME_OR_PATH and isinstance(value, str) and not (base / value).expanduser().exists():
            return  # a hub name (``bert-base-uncased``), not a folder here
        node[keys[-1]] = _absolute(value, base)


def _axis_value(key: str, value: Any, fields: tuple[str, ...], base: Path) -> Any:
    """An axis value for field ``key``: a path itself, or a mapping (``data``, ``teacher``) holding paths."""
    if key in fields:
        return _absolute(value, base)
    if isinstance(value, dict):
        for field in fields:
            if field.startswith(key + "."):
                _resolve_field(value, field[len(key) + 1:], base)
    return value


def resolve_paths(data: dict, base: Path, kind: str) -> dict:
    """``data`` (a parsed config file of ``kind`` study, distill or teacher) with every relative
    path made absolute against ``base``, in place; returns it."""
    if not isinstance(data, dict):
        return data
    fields = PATH_FIELDS[kind]
    if kind == "study":
        if isinstance(data.get("base"), dict):
            for field in fields:
                _resolve_field(data["base"], field, base)
        axes = [data["grid"]] if isinstance(data.get("grid"), dict) else []
        axes += [group for group in data.get("zip") or [] if isinstance(group, dict)]
        for axis in axes:
            for key, values in axis.items():
                if isinstance(values, list):
                    axis[key] = [_axis_value(key, value, fields, base) for value in values]
        for key in ("output", "prepare_output"):
            if key in data:
                data[key] = _absolute(data[key], base)
        for blocks in (data.get("prepare") or {}).values():  # preparation stages are teacher configs
            for block in blocks if isinstance(blocks, list) else [blocks]:
                if not isinstance(block, dict):
                    continue
                if isinstance(block.get("base"), dict):
                    for field in PATH_FIELDS["teacher"]:
                        _resolve_field(block["base"], field, base)
                stage_axes = [block["grid"]] if isinstance(block.get("grid"), dict) else []
                stage_axes += [group for group in block.get("zip") or [] if isinstance(group, dict)]
                for axis in stage_axes:
                    for key, values in axis.items():
                        if isinstance(values, list):
                            axis[key] = [_axis_value(key, value, PATH_FIELDS["teacher"], base) for value in values]
        return data
    for field in fields:
        _resolve_field(data, field, base)
    for member in data.get("members") or []:  # distill variants: overrides relative to the student
        if isinstance(member, dict) and "model.weights" in member:
            member["model.weights"] = _absolute(member["model.weights"], base)
    return data


def load_config(argument: str | Path, kind: str) -> tuple[dict, Path]:
    """A config file (or packaged example) as plain data with its relative paths resolved,
    and the file it came from."""
    from .config import load_yaml

    path, base = locate(str(argument))
    return resolve_paths(load_yaml(path), base, kind), path

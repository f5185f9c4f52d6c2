"""Typed configuration: dataclasses are the schema, YAML and dotted overrides sit on top.

``from_dict(cls, data)`` builds a dataclass from plain data and checks every field before any
work starts: an unknown field, a wrong type or a value out of range raises ``ConfigError`` with
the dotted path of the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is not allowed; the message names the field."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{path}: {value!r} is not allowed; allowed: {_type_name(tp)}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{path}: null is not allowed; expected {_type_name(tp)}")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ConfigError as error:
                errors.append(error)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{path}: {value!r} is not a {_type_name(tp)}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping for {tp.__name__}; got {value!r}")
        return from_dict(tp, value, path)
    if tp in (list, dict):
        tp = list[Any] if tp is list else dict[str, Any]
        origin = get_origin(tp)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list; got {value!r}")
        (item,) = get_args(tp)[:1] or (Any,)
        items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping; got {value!r}")
        args = get_args(tp)
        if len(args) == 2:
            return {key: _convert(args[1], item, f"{path}.{key}") for key, item in value.items()}
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false; got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer; got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number; got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string; got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, checking field names and types recursively.

    After construction the dataclass's own ``validate(path)`` method, if any, checks ranges.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{path}." if path else ""
    unknown = [key for key in data if key not in fields]
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown field; allowed: {', '.join(fields)}")
    # a dataclass may choose some of its fields' types from the data itself (a run's ``task`` chooses
    # the dataclasses of its data and models): ``field_types(data, prefix) -> {name: type}``
    chosen = cls.field_types(data, prefix) if callable(getattr(cls, "field_types", None)) else {}
    hints = {**hints, **chosen}
    kwargs = {name: _convert(hints[name], data[name], prefix + name) for name in fields if name in data}
    for name, hint in chosen.items():  # a chosen dataclass that is not given: its defaults, not the declared one's
        if name not in kwargs and dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, {}, prefix + name)
    missing = [
        name for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]}: required field is missing")
    instance = cls(**kwargs)
    validate = getattr(instance, "validate", None)
    if callable(validate):
        validate(path)
    return instance


def to_dict(instance: Any) -> Any:
    """Plain data (dicts, lists, scalars) for a dataclass tree, ready for YAML or JSON."""
    if dataclasses.is_dataclass(instance):
        return {f.name: to_dict(getattr(instance, f.name)) for f in dataclasses.fields(instance)}
    if isinstance(instance, (list, tuple)):
        return [to_dict(v) for v in instance]
    if isinstance(instance, dict):
        return {k: to_dict(v) for k, v in instance.items()}
    if isinstance(instance, Path):
        return str(instance)
    return instance


class StudyYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads floats the way people write them and rejects duplicate keys.

    YAML 1.1 (PyYAML's default) reads ``1e-3`` as a string; here every decimal number with an
    exponent is a float, as in YAML 1.2 and JSON. A key given twice in one mapping is an error
    naming its line (PyYAML would silently keep the last value).
    """

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: PyYAML reports it below
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice in one mapping (first on line {first})",
                        key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


StudyYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml_error(error: yaml.YAMLError, where: str) -> ConfigError:
    """One line for a YAML error: where, line and column (1-based), and the problem."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is not None:
        return ConfigError(f"{where} line {mark.line + 1}, column {mark.column + 1}: {problem}")
    return ConfigError(f"{where}: {problem}")


def parse_yaml(text: str, where: str) -> Any:
    """``text`` parsed with :class:`StudyYamlLoader`; errors become one ``ConfigError`` line."""
    try:
        return yaml.load(text, Loader=StudyYamlLoader)
    except yaml.YAMLError as error:
        raise _yaml_error(error, where) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"distill.epochs=64"`` -> ``(["distill", "epochs"], 64)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like field.path=value")
    key, raw = text.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise ConfigError(f"override {text!r} has an empty field name")
    return keys, parse_yaml(raw, f"override {text!r}") if raw.strip() else None


def set_path(data: dict[str, Any], keys: list[str], value: Any, label: str | None = None) -> None:
    """Set ``data[k1][k2]...[kn] = value`` in place, creating mappings on the way."""
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{label or '.'.join(keys)}: {key} is not a mapping")
        node = child
    node[keys[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply dotted ``key.path=value`` overrides to nested plain data (in a copy)."""
    import copy

    result = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        set_path(result, keys, value, f"override {text!r}")
    return result


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, binary or malformed file or non-mapping content is a
    ``ConfigError`` (with the line and column of a syntax error)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    raw = path.read_bytes()
    try:
        if b"\x00" in raw:
            raise UnicodeDecodeError("utf-8", raw, raw.index(b"\x00"), raw.index(b"\x00") + 1, "NUL byte")
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not a UTF-8 text file (is it a binary file?)") from None
    data = parse_yaml(text, f"config file {str(path)!r}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return data


def require(condition: bool, path: str, message: str) -> None:
    """Raise ``ConfigError(f"{path}: {message}")`` unless ``condition``."""
    if not condition:
        raise ConfigError(f"{path}: {message}")

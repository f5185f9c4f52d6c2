"""A study's axes: named dimensions of labelled variants, from a ``grid``, ``zip`` groups and presets.

Both the study file (:mod:`kdtemp.study.spec`) and its preparation stages (:mod:`kdtemp.study.stages`)
vary their base along axes; this module is what they share, below both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, require
from .presets import PRESETS


@dataclass
class Axis:
    """One dimension of the grid: a name and its labelled variants (each a set of overrides)."""

    name: str
    variants: list[tuple[Any, dict[str, Any]]]

    @property
    def fields(self) -> set[str]:
        return {key for _, overrides in self.variants for key in overrides}


def axes_of(grid: dict[str, list] | None, groups: list[dict[str, list]], presets: list[str], prefix: str,
            seed_fields: tuple[str, ...] = ()) -> list[Axis]:
    """Axes from a ``grid``, ``zip`` groups and named ``presets`` (field names in errors start
    with ``prefix``); a field varied twice, or one of ``seed_fields``, is an error."""
    if grid is not None and not grid:
        raise ConfigError(f"{prefix}grid: is empty; give at least one field with a list of values, or leave grid out")
    axes: list[Axis] = []
    for key, values in (grid or {}).items():
        require(isinstance(values, list) and len(values) > 0, f"{prefix}grid.{key}",
                f"needs a non-empty list of values; got {values!r}")
        axes.append(Axis(key, [(_label({key: value}), {key: value}) for value in values]))
    for index, group in enumerate(groups):
        require(len(group) > 0, f"{prefix}zip[{index}]", "is empty")
        lengths = {key: len(values) if isinstance(values, list) else -1 for key, values in group.items()}
        require(all(n > 0 for n in lengths.values()), f"{prefix}zip[{index}]", f"needs non-empty lists; got {group}")
        require(len(set(lengths.values())) == 1, f"{prefix}zip[{index}]", f"lists differ in length: {lengths}")
        count = next(iter(lengths.values()))
        variants = [({k: group[k][i] for k in group}, {k: group[k][i] for k in group}) for i in range(count)]
        axes.append(Axis("+".join(group), [(_label(label), overrides) for label, overrides in variants]))
    for name in presets:
        axes.append(Axis(name, [(label, dict(overrides)) for label, overrides in PRESETS[name]]))
    seen: dict[str, str] = {}
    for axis in axes:
        for key in sorted(axis.fields):
            require(key not in seed_fields, f"{axis.name}", f"sets {key}, which `seeds` controls; vary seeds with `seeds`")
            # a field, or a field inside it (``student.model`` and ``student.model.name``): one would undo the other
            overlap = next((other for other in seen if _covered(key, {other}) or _covered(other, {key})), None)
            require(overlap is None, f"{axis.name}",
                    f"varies {key!r}, which axis {seen.get(overlap)!r} already varies" if overlap == key else
                    f"varies {key!r}, which overlaps {overlap!r} that axis {seen.get(overlap)!r} varies; "
                    "vary one of them")
            seen[key] = axis.name
    return axes


def _label(values: dict[str, Any]) -> Any:
    """An axis value's label: a scalar stays itself; a mapping shows its values compactly (a
    reference to a prepared model shows the preparation's name)."""
    def show(value: Any) -> str:
        if isinstance(value, dict):
            if "prepared" in value:
                return str(value["prepared"])
            if "dataset" in value:  # a dataset: its name, and its folder for folder datasets
                root = value.get("root")
                return f"{value['dataset']} {Path(str(root)).name}" if value["dataset"] == "folder" and root else \
                    str(value["dataset"])
            if "name" in value:  # a model: its name and how it starts
                return " ".join(str(value[k]) for k in ("name", "init") if k in value)
            return " ".join(show(v) for v in value.values())
        return f"{value}"

    if len(values) == 1:
        (value,) = values.values()
        return value if not isinstance(value, (dict, list)) else show(value)
    return ", ".join(show(v) for v in values.values())


def _covered(field_path: str, unused: set[str]) -> bool:
    """Whether ``field_path`` lies in (or is) one of the ``unused`` fields."""
    return any(field_path == u or field_path.startswith(u + ".") for u in unused)

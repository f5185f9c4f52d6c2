"""Where a study's results live: the folder its file names, the default beside the file, or where an
earlier kdtemp version put it. The one place the study's expansion learns about results already on
disk (it asks the store which runs a folder holds); the spec itself only reads the file."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .store import Store

Planned = Callable[[Path], set[str]]
"""The run ids a study has when its results live in a given folder."""


def _stored_ids(folder: Path) -> set[str]:
    with Store(folder / "study.sqlite", readonly=True) as store:
        return {run["run_id"] for run in store.runs()}


def _legacy_output(base: Path, name: str, planned: Planned) -> Path | None:
    """Where earlier kdtemp versions put a study without ``output`` (the current folder's
    ``studies/<name>``), when that store holds runs of this study (``planned(folder)``: the run
    ids the study has with that folder) and the default beside the file has none yet."""
    default, legacy = base / "studies" / name, Path("studies") / name
    if (default / "study.sqlite").exists() or not (legacy / "study.sqlite").exists() \
            or legacy.resolve() == default.resolve():
        return None
    return legacy if _stored_ids(legacy) & planned(legacy) else None


def output_folder(base: Path, name: str, output: str | Path | None, planned: Planned) -> tuple[Path, Path | None]:
    """The results folder of study ``name`` whose file lies in ``base``, and the earlier version's
    folder when it is that one (None otherwise). ``output``: the folder the user named (command line
    or file), used as is. Without it: ``studies/<name>`` beside the file, or ``<name>`` beside it when
    the file already lies in a folder called ``studies``; an earlier version's folder holding runs of
    this study wins while the default holds none."""
    nested = base / "studies" / name  # where earlier versions put a file that lies in studies/
    default = base / name if base.resolve().name == "studies" else nested
    if output:
        return Path(output), None
    legacy = _legacy_output(base, name, planned)
    if legacy is not None and legacy.resolve() == default.resolve():
        legacy = None  # the current folder is the file's: its studies/<name> is the default itself
    if legacy is None and default != nested and (nested / "study.sqlite").exists() \
            and not (default / "study.sqlite").exists():
        legacy = nested
    return (legacy if legacy is not None else default), legacy

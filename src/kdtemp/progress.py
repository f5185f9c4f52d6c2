"""Progress on long work: a tqdm bar on a terminal, one line per epoch in a log file.

On a terminal tqdm redraws one line; written to a file (a cluster job's log, ``nohup``, CI) the
same bar would add a line per update. :func:`progress_bar` therefore returns tqdm only when
standard error is a terminal, and otherwise a :class:`LineProgress` that prints one plain line
when a stage of the work ends (each epoch), with the same ``update`` / ``set_postfix`` /
``close`` calls.
"""

from __future__ import annotations

import sys
import time


class LineProgress:
    """tqdm's interface, printing ``desc: done/total (pct), key=value, elapsed`` at each ``set_postfix``."""

    def __init__(self, total: int, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self.started = time.perf_counter()

    def update(self, count: int = 1) -> None:
        self.done += count

    def set_postfix(self, **values) -> None:
        details = ", ".join(f"{k}={v}" for k, v in values.items())
        elapsed = time.perf_counter() - self.started
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        print(f"{self.desc}: {self.done}/{self.total} {self.unit}{share}, {details}, {elapsed:.0f} s",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def is_terminal() -> bool:
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def progress_bar(total: int, desc: str, unit: str):
    """A tqdm bar on a terminal, a :class:`LineProgress` otherwise."""
    if is_terminal():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
    return LineProgress(total, desc, unit)

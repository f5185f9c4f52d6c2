"""One driver per study folder.

``<study>/driver.lock`` is held with an exclusive ``flock`` for as long as a driver runs the study.
The operating system releases it when the driver's process ends, however it ends (a SIGKILL
included), so a lock left by a dead driver is simply taken over by the next one; nothing needs
cleaning. The file also says who holds it (host, pid, since when), for the error a second driver
gets and for ``study status``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from ..config import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one driver is the user's care
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "driver.lock"


class StudyLock:
    """The study folder's driver lock; use as a context manager around a run."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.handle = None

    def __enter__(self) -> "StudyLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise ``ConfigError`` naming the driver that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        if fcntl is not None:
            for attempt in range(20):  # ``study status`` may hold a shared lock for a moment
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if attempt < 19:
                        time.sleep(0.05)
                        continue
                    handle.close()
                    holder = describe(read_holder(self.path))
                    raise ConfigError(f"study: {self.path.parent} is being run by another driver ({holder}); wait "
                                      "for it to finish or stop it, then run again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}))
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file releases the flock
            self.handle = None


def read_holder(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def describe(holder: dict) -> str:
    if not holder:
        return "holder unknown"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')} since {since}"


def live_holder(folder: Path) -> dict | None:
    """Who runs the study now, or None when no driver holds its lock (tested without taking it)."""
    path = Path(folder) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return read_holder(path) or {"host": "?", "pid": "?"}
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None

"""Files kdtemp writes: atomic, verified on load, and no litter left by interrupted writes.

* :func:`atomic_write_text` and :func:`save_verified` write through a temporary file in the same
  folder and a rename, so a reader sees the old file or the new one, never half of one.
* :func:`save_verified` stores a mapping with the SHA-256 of its content beside it (the file stays
  an ordinary ``torch.load``-able dict); :func:`load_verified` checks it, so a truncated file or
  one changed float is an :class:`IntegrityError` naming the file, never a silently different
  result. Loading uses ``weights_only=True``: it runs no code from the file. Files without a
  checksum (older kdtemp files, a user's state dict) load as they are, unverified.
* Temporary names carry the host and process id (``.<name>.tmp-<host>-<pid>``), so
  :func:`remove_stale_temporaries` can delete those of writers that are gone.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import socket
import sys
import time
from pathlib import Path
from typing import Any

import torch

STALE_FOREIGN_SECONDS = 24 * 3600


class IntegrityError(ValueError):
    """A file kdtemp wrote is damaged (truncated, garbled, or changed since it was written)."""


def _host() -> str:
    return socket.gethostname().replace("-", "_").replace("/", "_") or "host"


def temporary_name(path: Path) -> Path:
    """``path``'s temporary sibling for this process: ``.<name>.tmp-<host>-<pid>``."""
    return path.with_name(f".{path.name}.tmp-{_host()}-{os.getpid()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, flushed to disk, and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    atomic_write_bytes(Path(path), text.encode())


CHECKSUM_KEY = "kdtemp_checksum"


def content_digest(obj: Any) -> str:
    """SHA-256 of ``obj``'s content (nested dicts, lists, tensors and plain values), independent
    of how ``torch.save`` lays it out: every tensor's dtype, shape and bytes, every key and value."""
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        elif isinstance(value, dict):
            digest.update(f"D{len(value)}".encode())
            for key in sorted(value, key=repr):
                feed(key)
                feed(value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(f"L{len(value)}".encode())
            for item in value:
                feed(item)
        elif isinstance(value, bytes):
            digest.update(b"B" + len(value).to_bytes(8, "big") + value)
        else:
            digest.update(f"V{value!r};".encode())

    feed(obj)
    return digest.hexdigest()


def save_verified(obj: dict, path: Path) -> None:
    """``torch.save`` the mapping ``obj`` to ``path`` atomically, with the SHA-256 of its content
    under ``"kdtemp_checksum"``. The file stays an ordinary ``torch.load``-able dict."""
    buffer = io.BytesIO()
    torch.save({**obj, CHECKSUM_KEY: content_digest(obj)}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def verify(loaded: Any, path: Path) -> Any:
    """``loaded`` without its checksum entry, after checking it; unchanged when it has none."""
    if not isinstance(loaded, dict) or CHECKSUM_KEY not in loaded:
        return loaded
    stored = loaded.pop(CHECKSUM_KEY)
    if content_digest(loaded) != stored:
        raise IntegrityError(f"{path} is damaged: its contents do not match the checksum written with them")
    return loaded


def load_verified(path: Path) -> Any:
    """Load a file written by :func:`save_verified` (or a plain ``torch.save`` file), checking it.

    Raises :class:`IntegrityError` for a damaged file (truncated, garbled, checksum mismatch) and
    ``pickle.UnpicklingError`` for a file that holds Python objects other than tensors and plain data.
    """
    path = Path(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" in str(error).lower():
            raise
        raise IntegrityError(f"{path} is damaged or not a PyTorch file ({_first_line(error)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as error:
        raise IntegrityError(f"{path} is damaged or not a PyTorch file ({_first_line(error)})") from None
    return verify(loaded, path)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()
             and not line.startswith(("Weights only load failed", "Please file", "Check the"))]
    return (lines[-1] if lines else type(error).__name__)[:160]


def quarantine(path: Path, reason: str) -> Path:
    """Move a damaged file aside (``<name>.damaged-<time>``) so it is neither used nor lost."""
    target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, target)
    target.with_name(target.name + ".why").write_text(reason + "\n")
    return target


def warn(message: str) -> None:
    """One line on standard error: something was repaired or differs, and the run goes on."""
    print(f"kdtemp: warning: {message}", file=sys.stderr, flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of interrupted writes in ``folder`` (not recursive): those of
    this host whose process is gone, and those of other hosts older than a day."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    host = _host()
    for path in folder.iterdir():
        name = path.name
        if not (name.startswith(".") and ".tmp-" in name) or not path.is_file():
            continue
        try:
            writer_host, pid = name.rsplit(".tmp-", 1)[1].rsplit("-", 1)
            stale = (not _alive(int(pid))) if writer_host == host else \
                time.time() - path.stat().st_mtime > STALE_FOREIGN_SECONDS
        except (ValueError, OSError):
            continue
        if stale:
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed

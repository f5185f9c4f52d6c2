"""Write the locked test environment: ``locks/py<X.Y>.txt`` for each Python given.

    python locks/make.py python3.10 python3.11 python3.12 python3.13

For each interpreter, pip resolves ``kdtemp[test]`` from scratch in a throw-away virtual environment
(``pip install --dry-run --report``: only the packages' metadata is fetched, nothing is installed) and
the versions it chose are written, one ``name==version`` a line, sorted. ``make run`` and ``make test``
install with ``pip install -c locks/py<X.Y>.txt``, so a fresh clone gets exactly what the lock's
last green CI installed; ``make lock`` runs this script on purpose (new releases, a changed
dependency in ``pyproject.toml``). pyproject.toml keeps the ranges users install with.

The lock is a pip constraints file: it pins versions and installs nothing by itself, so one file
serves every Linux machine of that Python (a CPU-only or aarch64 machine ignores the CUDA libraries
it lists).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = """# The locked test environment of kdtemp for Python {version} on Linux: what `make run` and `make test`
# install (pip install -c this file). Written by `make lock` (locks/make.py); do not edit by hand.
"""


def resolve(python: str) -> tuple[str, list[str]]:
    """The Python version of ``python`` and pip's resolution of ``kdtemp[test]`` for it."""
    with tempfile.TemporaryDirectory(prefix="kdtemp-lock-") as folder:
        venv = Path(folder) / "venv"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        version = subprocess.run([str(venv / "bin" / "python"), "-c",
                                  "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        report = Path(folder) / "report.json"
        done = subprocess.run([*pip, "install", "--quiet", "--disable-pip-version-check", "--dry-run",
                               "--ignore-installed", "--report", str(report), "-e", f"{ROOT}[test]"],
                              capture_output=True, text=True)
        if done.returncode != 0:  # pip's own reason, without the notes about absent local indexes
            said = [line for line in done.stderr.splitlines() if "is neither a file nor a directory" not in line]
            sys.exit(f"locks/make.py: pip could not resolve kdtemp[test] for {python}:\n" + "\n".join(said[-20:]))
        chosen = json.loads(report.read_text())["install"]
    pins = sorted(f"{item['metadata']['name'].lower()}=={item['metadata']['version']}" for item in chosen
                  if item["metadata"]["name"].lower() != "kdtemp")
    return version, pins


def main(pythons: list[str]) -> None:
    if not pythons:
        sys.exit("usage: python locks/make.py PYTHON [PYTHON ...]  (e.g. python3.11)")
    for python in pythons:
        if shutil.which(python) is None and not Path(python).exists():
            sys.exit(f"locks/make.py: no interpreter {python!r} on this machine")
    for python in pythons:
        version, pins = resolve(python)
        path = ROOT / "locks" / f"py{version}.txt"
        path.write_text(HEADER.format(version=version) + "\n".join(pins) + "\n")
        print(f"{path.relative_to(ROOT)}: {len(pins)} packages")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The test tree itself: test modules never import each other.

Tests live in folders named after the package's modules (``tests/objectives``, ``tests/study``,
...). What several test modules share lives in ``tests/helpers/`` (imported as
``helpers.<module>``: ``pythonpath = ["tests"]``) or, for fixtures, in a ``conftest.py``. A test
module that imports another one (``from test_report import find_browser``) ties the two together
and breaks under ``--import-mode=importlib``, which lets two folders hold files of one name; a
module beside the tests that is neither a helper nor a conftest is a test module in disguise.

The walk reads every import statement of every test module, helper and conftest with ``ast``
(those inside functions too) and resolves it against ``tests/``, the first entry of ``sys.path``
that pytest adds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# Test files still being written at the top of tests/ by someone else, and the one old module they
# may import there (``trust_helpers``, which re-exports ``helpers.trust``). Remove an entry when its
# file moves into the tree and imports ``helpers.trust``; remove tests/trust_helpers.py with the last.
PENDING: dict[str, set[str]] = {}  # test files being written elsewhere may import these old names for a while
ALLOWED = {"helpers", "conftest"}  # the only modules under tests/ that anything may import


def checked_files() -> list[Path]:
    """Every test module, helper and conftest under tests/ (not the data in tests/fixtures)."""
    files = [p for p in TESTS.rglob("*.py") if "fixtures" not in p.relative_to(TESTS).parts]
    return sorted(p for p in files if p.name.startswith("test_") or p.name == "conftest.py"
                  or p.relative_to(TESTS).parts[0] == "helpers")


def import_statements(tree: ast.AST) -> list[tuple[int, list[str], int]]:
    """(line, the modules it may load, relative level) of every import statement, those in
    functions too; ``from pkg import name`` may load the module ``pkg.name``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, [alias.name], 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            found.append((node.lineno, [base] + [f"{base}.{alias.name}" for alias in node.names], node.level))
    return sorted(found, key=lambda statement: statement[0])


def under(root: Path, module: str) -> bool:
    """Whether ``module`` resolves to a file or folder of ``root`` (tests/ is first on sys.path)."""
    top = module.split(".")[0]
    return (root / f"{top}.py").exists() or (root / top).is_dir() or top == root.name


def problems_of(path: Path, root: Path = TESTS) -> list[str]:
    relative = path.relative_to(root)
    pending = PENDING.get(str(relative), set())
    problems = []
    for line, modules, level in import_statements(ast.parse(path.read_text(), str(path))):
        where = f"{root.name}/{relative}:{line}"
        if level:
            problems.append(f"{where}: relative import (from {'.' * level}{modules[0]} ...): import helpers.<module>")
            continue
        tests = [m for m in modules if any(part.startswith("test_") for part in m.split("."))]
        others = [m for m in modules if under(root, m) and m.split(".")[0] not in ALLOWED | pending]
        if tests:
            problems.append(f"{where}: imports the test module {tests[0]}")
        elif others:
            problems.append(f"{where}: imports {others[0]} from {root.name}/, which is neither helpers/ nor a conftest")
    return problems


def test_no_test_module_imports_another_test_module():
    files = checked_files()
    assert any(p.parent == TESTS / "helpers" for p in files) and len(files) > 40  # the walk sees the tree
    problems = [problem for path in files for problem in problems_of(path)]
    if problems:
        pytest.fail("test modules that import other test modules; move what they share into tests/helpers/ or a "
                    f"conftest.py ({len(problems)}):\n  " + "\n  ".join(problems), pytrace=False)


def test_the_walk_finds_every_kind_of_test_import(tmp_path):
    """The walk itself, on a planted tree: each forbidden form is found; helpers and conftest are not."""
    root = tmp_path / "tests"
    (root / "helpers").mkdir(parents=True)
    (root / "helpers" / "__init__.py").write_text("")
    (root / "old_helpers.py").write_text("")
    (root / "study").mkdir()
    planted = root / "study" / "test_planted.py"
    planted.write_text("from helpers.engine import member\nimport conftest\nimport torch\n"
                       "from test_report import find_browser\nimport old_helpers\n"
                       "def test_x():\n    from study.test_spec import BASE\n    from . import sibling\n"
                       "from tests.report import test_tables\nfrom helpers import engine\n")
    found = problems_of(planted, root)
    assert found == [
        "tests/study/test_planted.py:4: imports the test module test_report",
        "tests/study/test_planted.py:5: imports old_helpers from tests/, which is neither helpers/ nor a conftest",
        "tests/study/test_planted.py:7: imports the test module study.test_spec",
        "tests/study/test_planted.py:8: relative import (from . ...): import helpers.<module>",
        "tests/study/test_planted.py:9: imports the test module tests.report.test_tables",
    ], found

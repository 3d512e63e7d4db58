"""docs/reliability.md stays honest: at least 30 fault rows, each naming a test that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
REF = re.compile(r"`([^`\s]+)::([A-Za-z0-9_]+)(\[[^`]*\])?`")


def _rows() -> list[str]:
    return [line for line in DOC.read_text().splitlines() if re.match(r"\| \d+ \|", line)]


def _tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_fault_row_names_a_test_that_exists() -> None:
    rows = _rows()
    assert len(rows) >= 30, f"{len(rows)} fault rows"
    known: dict[str, set[str]] = {}
    missing = []
    for row in rows:
        refs = REF.findall(row)
        assert refs, f"a row without a test: {row[:80]}"
        last = ""
        for file, test, _ in refs:
            file = last if file == "..." else file  # `...::test` repeats the file named before it
            last = file
            if file not in known:
                known[file] = _tests(ROOT / file) if (ROOT / file).is_file() else set()
            if test not in known[file]:
                missing.append(f"{file}::{test}")
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"

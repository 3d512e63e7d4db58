"""Validation issues: every problem names the file, the field, what is wrong and how to fix it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

_FIELD_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, order=True)
class Issue:
    file: str
    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.problem}. Fix: {self.fix}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class InvalidRepository(Exception):
    """Raised with every issue of a repository at once, so users fix them in one pass."""

    def __init__(self, issues: Iterable[Issue]):
        self.issues: list[Issue] = sorted(set(issues))
        super().__init__(self.summary())

    def summary(self) -> str:
        count = len(self.issues)
        lines = [f"{count} problem{'s' if count != 1 else ''} found:"] + [f"  - {i}" for i in self.issues]
        return "\n".join(lines)


def field_path(loc: Sequence[Any]) -> str:
    """('waves', 2, 'smokeWindow') -> 'waves[2].smokeWindow'."""
    out = ""
    for part in loc:
        if isinstance(part, str) and not _FIELD_NAME.match(part):
            continue  # pydantic's union branch tags, e.g. "list[Wave]"
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_FIXES = {
    "missing": "add the field",
    "extra_forbidden": "remove it or check its spelling against docs/repository.md",
    "string_pattern_mismatch": "use lowercase letters, digits and '-' (or the documented format)",
    "literal_error": "use one of the allowed values",
    "enum": "use one of the allowed values",
    "greater_than": "use a larger value",
    "less_than_equal": "use a smaller value",
    "greater_than_equal": "use a larger value",
    "too_short": "add at least one entry",
}


def problem_and_fix(error_type: str, message: str) -> tuple[str, str]:
    """Split a validation message into what is wrong and how to fix it.

    Our own validators write "<problem>; <fix>"; pydantic's built-in errors get a fix by type."""
    if error_type == "value_error" and "; " in message:
        problem, fix = message.split("; ", 1)
        return problem, fix
    return message, _FIXES.get(error_type, "correct the value to match docs/repository.md")

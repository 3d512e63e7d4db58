"""The limits of one render: one type for both renderers, set in one place.

Jinja templates render in config/sandbox.py's fork-server children (`JINJA`); helm and kustomize
run as child processes of config/sources/tools.py (`TOOLS`). Both are limited in wall-clock time,
CPU time, memory (address space, RLIMIT_AS) and output size; the external tools also in the size
of any file they write (RLIMIT_FSIZE). The defaults differ because the programs do: the Go
runtime of helm reserves a lot of address space up front (it fails to start under 1 GiB: 512 MiB
is not enough for an empty chart), and 2 GiB lets a 50 MB rendering run into the output limit
rather than the memory limit.

Operators change them with one environment variable, read once here:
`ROLLOUT_RENDER_LIMITS="wall=20,cpu=20,output=16,tools.memory=3072"` - seconds, seconds, MiB,
MiB; a key alone sets both renderers, `jinja.<key>` or `tools.<key>` one of them; keys left out
keep their defaults.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

MiB = 1024 * 1024

Renderer = Literal["jinja", "tools"]
ENVIRONMENT = "ROLLOUT_RENDER_LIMITS"


@dataclass(frozen=True)
class Limits:
    """Limits of one render; `describe` gives the words used in issues ("10 s of wall-clock time")."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 512 * MiB
    output_bytes: int = 8 * MiB
    file_bytes: int = 64 * MiB  # RLIMIT_FSIZE of the external tools (a Jinja render writes no file)

    def describe(self, limit: str) -> str:
        return {
            "wall": f"{self.wall_seconds:g} s of wall-clock time",
            "cpu": f"{self.cpu_seconds} s of CPU time",
            "memory": f"{mib(self.memory_bytes)} of memory",
            "output": f"{mib(self.output_bytes)} of output",
        }.get(limit, limit)


JINJA = Limits()
TOOLS = Limits(wall_seconds=30.0, cpu_seconds=30, memory_bytes=2048 * MiB, output_bytes=16 * MiB)
DEFAULTS: dict[Renderer, Limits] = {"jinja": JINJA, "tools": TOOLS}

_FIELDS = {
    "wall": ("wall_seconds", 1.0),
    "cpu": ("cpu_seconds", 1),
    "memory": ("memory_bytes", MiB),
    "output": ("output_bytes", MiB),
}


def from_env(value: str | None = None) -> dict[Renderer, Limits]:
    """Both renderers' limits from ROLLOUT_RENDER_LIMITS (or `value`). Raises ValueError naming the
    variable and the part that is wrong."""
    text = os.environ.get(ENVIRONMENT, "") if value is None else value
    changes: dict[Renderer, dict[str, Any]] = {"jinja": {}, "tools": {}}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, number = part.partition("=")
        scope, _, name = key.strip().rpartition(".")
        try:
            field, unit = _FIELDS[name]
            targets: tuple[Renderer, ...] = ("jinja", "tools") if not scope else (_renderer(scope),)
            amount = float(number)
            if amount <= 0:
                raise ValueError
        except (KeyError, ValueError):
            raise ValueError(
                f"{ENVIRONMENT}: {part!r} is not one of wall=SECONDS, cpu=SECONDS, memory=MIB, output=MIB "
                "with a positive number, optionally prefixed by jinja. or tools."
            ) from None
        for target in targets:
            changes[target][field] = amount if field == "wall_seconds" else max(1, int(amount * unit))
    return {kind: replace(DEFAULTS[kind], **changes[kind]) for kind in DEFAULTS}


def _renderer(scope: str) -> Renderer:
    if scope == "jinja":
        return "jinja"
    if scope == "tools":
        return "tools"
    raise ValueError(scope)


_current = from_env()
_lock = threading.Lock()


def current(kind: Renderer) -> Limits:
    return _current[kind]


def set_limits(kind: Renderer, limits: Limits) -> Limits:
    """Replace one renderer's process-wide limits; returns the previous ones."""
    with _lock:
        previous = _current[kind]
        _current[kind] = limits
    return previous


@contextlib.contextmanager
def changed(kind: Renderer, **changes: Any) -> Iterator[Limits]:
    """Temporarily change some of one renderer's limits (tests use small ones)."""
    new = replace(current(kind), **changes)
    previous = set_limits(kind, new)
    try:
        yield new
    finally:
        set_limits(kind, previous)


def mib(size: int) -> str:
    return f"{size / MiB:g} MiB"

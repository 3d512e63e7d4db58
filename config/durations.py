"""Durations as release engineers write them: `30s`, `5m`, `2h`, `1h30m`, `500ms`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """Parse a positive duration; raise ValueError with the accepted forms otherwise."""
    cleaned = str(text).strip()
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned):
        raise ValueError(f"{text!r} is not a duration; write a number and a unit, e.g. 30s, 5m, 2h, 1h30m")
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero; write e.g. 30s")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of a duration, for plans and status."""
    total = value.total_seconds()
    if total < 1:
        return f"{round(total * 1000)}ms"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    return "".join(parts) or "0s"

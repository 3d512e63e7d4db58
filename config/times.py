"""The one time format of every stored field: RFC 3339 in UTC with a `Z`, to the millisecond.

`format_time` writes it; `parse_time` reads it back to an aware datetime (and still reads the
`+00:00` form, with any precision, that earlier versions wrote into statuses). Compare times only
after parsing them: two spellings of one instant are not equal as strings.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(value: datetime) -> str:
    """`2026-05-04T10:20:30.123Z`. A naive datetime is taken to be UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    """The instant `text` names (None for None or ""); raises ValueError for anything else."""
    if not text:
        return None
    parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)

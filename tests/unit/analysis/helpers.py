from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from config.schema import Check
from regions.analysis.model import Measurement, Verdict

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def check(**fields: Any) -> Check:
    data: dict[str, Any] = {
        "name": "c",
        "query": "q",
        "successCondition": "result <= 0.01",
        "interval": "10s",
        "count": 3,
    }
    data.update(fields)
    return Check.model_validate({k: v for k, v in data.items() if v is not None})


def series(check_name: str, verdicts: str, interval: float = 10.0, start: float = 0.0) -> list[Measurement]:
    """'ssfie' -> measurements every `interval` seconds with those verdicts."""
    letters = {"s": Verdict.SUCCESS, "f": Verdict.FAILURE, "i": Verdict.INCONCLUSIVE, "e": Verdict.ERROR}
    return [Measurement(check_name, at(start + i * interval), letters[v], reason=v) for i, v in enumerate(verdicts)]

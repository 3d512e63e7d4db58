"""The one time format of stored fields: written as RFC 3339 UTC with `Z`, read in either form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from config.times import format_time, parse_time
from regions.analysis.runner import AnalysisRun
from strategies.model import Phase, StrategyStatus

T = datetime(2026, 5, 4, 10, 20, 30, 123456, tzinfo=UTC)


def test_format_is_utc_with_z_to_the_millisecond() -> None:
    assert format_time(T) == "2026-05-04T10:20:30.123Z"
    assert format_time(T.astimezone(timezone(timedelta(hours=2)))) == "2026-05-04T10:20:30.123Z"
    assert format_time(datetime(2026, 5, 4, 10, 20, 30)) == "2026-05-04T10:20:30.000Z"  # naive: UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-05-04T10:20:30.123Z",
        "2026-05-04T10:20:30.123+00:00",  # what earlier versions wrote (.isoformat())
        "2026-05-04T12:20:30.123+02:00",
        "2026-05-04T10:20:30.123000+00:00",
    ],
)
def test_parse_reads_both_forms_to_the_same_instant(text: str) -> None:
    parsed = parse_time(text)
    assert parsed == T.replace(microsecond=123000) and parsed.tzinfo is UTC


def test_parse_of_nothing_is_none_and_of_garbage_an_error() -> None:
    assert parse_time(None) is None and parse_time("") is None
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_round_trip() -> None:
    assert parse_time(format_time(T)) == T.replace(microsecond=123000)


def test_statuses_stored_by_the_previous_version_still_read() -> None:
    old = {
        "phase": "Progressing",
        "step": 2,
        "startedAt": "2026-05-04T10:20:30.123456+00:00",
        "stepStartedAt": "2026-05-04T10:21:00+00:00",
    }
    status = StrategyStatus.from_dict(old)
    assert status.phase is Phase.PROGRESSING and status.started_at == T
    assert status.to_dict()["startedAt"] == "2026-05-04T10:20:30.123Z"
    run = AnalysisRun.from_status(
        {
            "startedAt": "2026-05-04T10:20:30.123456+00:00",
            "endsAt": "2026-05-04T10:25:30.123456+00:00",
            "measurements": [{"check": "c", "at": "2026-05-04T10:21:30.5+00:00", "verdict": "success"}],
        }
    )
    assert run.started_at == T and run.ends_at == T + timedelta(minutes=5)
    assert run.to_status()["startedAt"] == "2026-05-04T10:20:30.123Z"
    assert run.to_status()["measurements"][0]["at"] == "2026-05-04T10:21:30.500Z"

"""Smoke-window length: fixed, or auto = 2 x mean time-to-detect clamped to floor/ceiling."""

from __future__ import annotations

from datetime import timedelta

import pytest

from config.schema import SmokeWindow
from regions.analysis.runner import AnalysisRun
from regions.smoke import detected_at, smoke_duration
from tests.unit.analysis.helpers import T0, at, check, series

M = timedelta(minutes=1)
AUTO = SmokeWindow.model_validate({"auto": {"floor": "10m", "ceiling": "2h"}})


@pytest.mark.parametrize(
    ("history", "expected", "reason"),
    [
        ([], 120 * M, "no failed release in history: the ceiling 2h"),
        ([30 * M], 60 * M, "2 x mean time-to-detect 30m over 1 failed release(s) = 1h"),
        ([60 * M, 0 * M], 60 * M, "mean time-to-detect 30m over 2"),
        ([1 * M, 2 * M, 3 * M], 10 * M, "raised to the floor 10m"),
        ([3 * 60 * M], 120 * M, "cut to the ceiling 2h"),
        ([-5 * M], 120 * M, "no failed release"),  # a negative record is ignored, not averaged
        ([5 * M], 10 * M, "= 10m"),  # exactly the floor: not "raised"
    ],
)
def test_auto(history: list[timedelta], expected: timedelta, reason: str) -> None:
    got = smoke_duration(AUTO, history)
    assert got.duration == expected and got.mode == "auto"
    assert reason in got.reason


def test_fixed_ignores_history() -> None:
    got = smoke_duration(SmokeWindow.model_validate("15m"), [1 * M])
    assert (got.duration, got.mode, got.to_json()["duration"]) == (15 * M, "fixed", "15m")


def test_detected_at_is_when_the_run_first_failed() -> None:
    c = check(failureLimit=1)
    run = AnalysisRun(T0, at(300), tuple(series("c", "sfsf")))
    assert detected_at(run, [c]) == at(30)
    assert detected_at(AnalysisRun(T0, at(300), tuple(series("c", "sss"))), [c]) is None

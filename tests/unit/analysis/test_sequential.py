"""Sequential judging in a smoke window: the per-look level, that the runner applies it, and the
whole-window false-alarm rate it gives on seeded realistic noise (bench/judge_false_alarm.py)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from bench.judge_false_alarm import Setup, false_alarm_rate
from config.schema import Check
from regions.analysis.fake import FakeMetricsProvider
from regions.analysis.model import Verdict
from regions.analysis.runner import AnalysisRun, Analyzer, Target, poll
from regions.analysis.sequential import planned_looks, pocock_level, window_level
from tests.unit.analysis.helpers import T0, check


def _judged(**fields: object) -> Check:
    return check(
        query='m{version="{{ version }}"}',
        baselineQuery='m{version="{{ version }}"}',
        successCondition=None,
        judge={"confidence": 0.95, "minSamples": 5},
        **fields,
    )


def test_one_look_keeps_the_stated_level() -> None:
    # Discreteness of U: the threshold lies between the tails of two neighbouring statistics.
    assert pocock_level(0.05, 1, 20) == pytest.approx(0.05, abs=0.003)


def test_more_looks_lower_the_per_look_level_but_less_than_bonferroni() -> None:
    levels = [pocock_level(0.05, k, 20) for k in (1, 5, 11, 31, 121)]
    assert levels == sorted(levels, reverse=True)
    # Consecutive looks share most of their samples, so splitting alpha evenly would waste power.
    assert all(level > 0.05 / k for level, k in zip(levels, (1, 5, 11, 31, 121), strict=True))


def test_a_failure_limit_allows_a_higher_per_look_level() -> None:
    assert pocock_level(0.05, 31, 20, failure_limit=1) > pocock_level(0.05, 31, 20)
    assert pocock_level(0.05, 2, 20, failure_limit=2) == 0.05  # the judge alone cannot fail it


def test_planned_looks_follow_the_window() -> None:
    c = _judged(interval="30s")  # first look after minSamples x interval = 150 s
    assert planned_looks(c, T0, T0 + timedelta(minutes=10)) == math.ceil(450 / 30) + 1
    assert planned_looks(c, T0, T0 + timedelta(seconds=100)) == 1
    assert window_level(c, T0, None) is None  # analysis steps keep 1 - confidence per look
    assert window_level(check(), T0, T0 + timedelta(minutes=10)) is None  # no judge


def test_poll_judges_each_look_of_a_smoke_window_at_the_window_level() -> None:
    c = _judged(interval="30s")
    # The canary is a little worse: p lies between the window level and 0.05.
    canary = [1.0, 1.2, 1.1, 1.3, 1.25, 1.15, 1.05, 1.35, 1.22, 1.12]
    base = [1.0, 1.1, 1.05, 1.2, 1.15, 1.08, 1.02, 1.18, 1.12, 1.01]

    def answer(promql: str, at: object) -> tuple[float, ...]:
        values = canary if "2.0.0" in promql else base
        i = round((at - T0).total_seconds() / 30) % len(values)  # type: ignore[operator]
        return (values[i],)

    target = Target(app="a", region="r", release="r1", version="2.0.0", stable_version="1.0.0", baseline_at=T0)
    analyzer = Analyzer(FakeMetricsProvider(answer), target)
    first = T0 + timedelta(seconds=150)
    window, _ = poll(analyzer, [c], AnalysisRun(T0, T0 + timedelta(hours=1)), first)
    step, _ = poll(analyzer, [c], AnalysisRun(T0), first)
    [w], [s] = window.measurements, step.measurements
    assert w.p_value == s.p_value
    level = window_level(c, T0, T0 + timedelta(hours=1))
    assert level is not None and w.p_value is not None and level < w.p_value < 0.05
    assert s.verdict is Verdict.FAILURE
    assert w.verdict is Verdict.SUCCESS and "per-look level" in w.reason


def test_whole_window_false_alarm_rate_matches_the_stated_rate_on_seeded_noise() -> None:
    """150 noise-only smoke windows of 11 looks each (Poisson requests, binomial errors): the
    sequential judge's share of failed windows lies within 3 sigma of the stated 5 %; the old
    per-look judging, on the same windows, lies above that band."""
    setup, windows, alpha = Setup(window_s=600), 150, 0.05
    assert setup.looks == 11
    sigma3 = 3 * math.sqrt(alpha * (1 - alpha) / windows)
    sequential = false_alarm_rate(setup, windows, 3, sequential=True, metrics=("error-ratio",))
    per_look = false_alarm_rate(setup, windows, 3, sequential=False, metrics=("error-ratio",))
    assert abs(sequential - alpha) <= sigma3, f"sequential {sequential:.3f}, stated {alpha} +- {sigma3:.3f}"
    assert per_look > alpha + sigma3, f"per-look {per_look:.3f}: the old judging should exceed the band"

"""Table tests of the pure decisions: one observation -> verdict, measurements -> check state,
check states -> outcome."""

from __future__ import annotations

import math

import pytest

from config.schema import Analysis
from regions.analysis.model import CheckState, Observation, Verdict
from regions.analysis.verdicts import (
    UnknownCheck,
    aggregate,
    assess,
    evaluate,
    first_due,
    run_state,
    select_checks,
)
from tests.unit.analysis.helpers import T0, at, check, series

NAN = math.nan
INF = math.inf
RATIO = {"successCondition": "result <= max(1.5 * baseline, 0.001)", "baselineQuery": "b"}


@pytest.mark.parametrize(
    ("fields", "obs", "min_requests", "verdict", "reason"),
    [
        ({}, Observation(value=(0.001,)), 0, Verdict.SUCCESS, "successCondition holds"),
        ({}, Observation(value=(0.5,)), 0, Verdict.FAILURE, "does not hold"),
        ({}, Observation(value=()), 0, Verdict.INCONCLUSIVE, "no data"),
        ({}, Observation(value=(NAN,)), 0, Verdict.INCONCLUSIVE, "NaN"),
        ({}, Observation(value=(0.0, 0.0)), 0, Verdict.ERROR, "2 series"),
        ({}, Observation(error="Prometheus unreachable"), 0, Verdict.ERROR, "unreachable"),
        # A NaN or empty result never passes, even against a condition NaN would satisfy vacuously.
        ({"successCondition": "not (result > 1)"}, Observation(value=(NAN,)), 0, Verdict.INCONCLUSIVE, "NaN"),
        (
            {"successCondition": None, "failureCondition": "result > 1"},
            Observation(value=()),
            0,
            Verdict.INCONCLUSIVE,
            "no data",
        ),
        (
            {"successCondition": None, "failureCondition": "result > 1"},
            Observation(value=(0.5,)),
            0,
            Verdict.SUCCESS,
            "does not hold",
        ),
        (
            {"successCondition": None, "failureCondition": "result > 1"},
            Observation(value=(2.0,)),
            0,
            Verdict.FAILURE,
            "failureCondition holds",
        ),
        (
            {"failureCondition": "result > 0.5"},
            Observation(value=(0.6,)),
            0,
            Verdict.FAILURE,
            "failureCondition",
        ),
        (
            {"successCondition": "result <= 0.2"},
            Observation(value=(INF,)),
            0,
            Verdict.FAILURE,
            "does not hold",
        ),
        # baseline comparison
        (RATIO, Observation(value=(0.012,), baseline=(0.01,)), 0, Verdict.SUCCESS, "holds"),
        (RATIO, Observation(value=(0.02,), baseline=(0.01,)), 0, Verdict.FAILURE, "does not hold"),
        (RATIO, Observation(value=(0.0009,), baseline=(0.0,)), 0, Verdict.SUCCESS, "holds"),
        (RATIO, Observation(value=(0.01,), baseline=()), 0, Verdict.INCONCLUSIVE, "baseline: no data"),
        (RATIO, Observation(value=(0.01,), baseline=(NAN,)), 0, Verdict.INCONCLUSIVE, "baseline: NaN"),
        (
            {"successCondition": "result / baseline < 2", "baselineQuery": "b"},
            Observation(value=(1.0,), baseline=(0.0,)),
            0,
            Verdict.INCONCLUSIVE,
            "could not be computed",
        ),
        # minimum-evidence guard: too little traffic is inconclusive whatever the ratios say
        ({}, Observation(value=(0.0,), requests=(49.0,)), 50, Verdict.INCONCLUSIVE, "only 49 requests"),
        ({}, Observation(value=(0.9,), requests=(3.0,)), 50, Verdict.INCONCLUSIVE, "too little traffic"),
        ({}, Observation(value=(0.0,), requests=()), 50, Verdict.INCONCLUSIVE, "only 0 requests"),
        ({}, Observation(value=(0.0,), requests=(NAN,)), 50, Verdict.INCONCLUSIVE, "only 0 requests"),
        ({}, Observation(value=(0.0,), requests=(50.0,)), 50, Verdict.SUCCESS, "holds"),
        ({}, Observation(value=(0.9,), requests=(500.0,)), 50, Verdict.FAILURE, "does not hold"),
    ],
)
def test_evaluate(
    fields: dict[str, object], obs: Observation, min_requests: int, verdict: Verdict, reason: str
) -> None:
    m = evaluate(check(**fields), obs, T0, min_requests)
    assert (m.verdict, m.at, m.check) == (verdict, T0, "c")
    assert reason in m.reason


def test_evaluate_keeps_numbers_for_status() -> None:
    m = evaluate(check(**RATIO), Observation(value=(0.02,), baseline=(0.01,), requests=(120.0,)), T0, 50)
    assert (m.value, m.baseline, m.requests) == (0.02, 0.01, 120.0)


def _state(verdicts: str, **fields: object) -> CheckState:
    c = check(**fields)
    ms = series("c", verdicts)
    now = ms[-1].at if ms else T0
    return assess(c, ms, now, started_at=T0)


@pytest.mark.parametrize(
    ("verdicts", "fields", "phase", "outcome"),
    [
        ("", {}, None, None),
        ("ss", {}, None, None),
        ("sss", {}, Verdict.SUCCESS, Verdict.SUCCESS),
        ("f", {}, Verdict.FAILURE, Verdict.FAILURE),
        ("ssf", {}, Verdict.FAILURE, Verdict.FAILURE),
        ("sfs", {"failureLimit": 1}, Verdict.SUCCESS, Verdict.SUCCESS),
        ("sff", {"failureLimit": 1}, Verdict.FAILURE, Verdict.FAILURE),
        # inconclusive and error measurements do not count towards `count`: never a pass without data
        ("iis", {}, None, None),
        ("iii", {}, Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE),
        ("iii", {"onInconclusive": "fail"}, Verdict.INCONCLUSIVE, Verdict.FAILURE),
        ("isisi", {"inconclusiveLimit": 2}, Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE),
        ("eee", {}, None, None),
        ("eeee", {}, Verdict.ERROR, Verdict.INCONCLUSIVE),
        ("eeee", {"onInconclusive": "fail"}, Verdict.ERROR, Verdict.FAILURE),
        ("eeseeesss", {}, Verdict.SUCCESS, Verdict.SUCCESS),  # errors that are not consecutive
        ("e", {"consecutiveErrorLimit": 0}, Verdict.ERROR, Verdict.INCONCLUSIVE),
        ("iiiiii", {"inconclusiveLimit": 10, "count": 1}, None, None),
    ],
)
def test_assess_count_mode(
    verdicts: str, fields: dict[str, object], phase: Verdict | None, outcome: Verdict | None
) -> None:
    state = _state(verdicts, **fields)
    assert (state.verdict, state.outcome) == (phase, outcome)
    assert (state.next_due is None) == (phase is not None)


def test_assess_timing_initial_delay_and_interval() -> None:
    c = check(initialDelay="25s")
    assert assess(c, [], T0, started_at=T0).next_due == at(25)
    state = assess(c, series("c", "s", start=25), at(25), started_at=T0)
    assert state.next_due == at(35)
    assert first_due(check(baselineQuery="b", judge={"minSamples": 6}), T0) == at(60)


def test_assess_ignores_other_checks() -> None:
    assert _state("").verdict is None
    state = assess(check(), series("other", "fff"), at(30), started_at=T0)
    assert (state.verdict, state.failures) == (None, 0)


@pytest.mark.parametrize(
    ("verdicts", "now", "phase", "next_due"),
    [
        ("sss", 25, None, 30),  # window not over: keeps measuring after `count`
        ("sss", 28, None, 30),
        ("ssss", 30, Verdict.SUCCESS, None),  # last measurement at the end
        ("sss", 30, None, 30),  # at(20) is before the end: measure at the end
        ("ss", 40, None, 40),  # late (the controller was down): take one more now
        ("sssi", 30, None, 40),  # ended on no data: never a pass; measured again an interval later
        ("sssis", 40, Verdict.SUCCESS, None),  # the next conclusive measurement decides
        ("sssii", 40, None, 50),  # still within inconclusiveLimit (2)
        ("sssiii", 50, Verdict.INCONCLUSIVE, None),  # beyond it: inconclusive (pause)
        ("ssse", 30, None, 40),  # ended on an error (Prometheus went away at the end): again
        ("sssf", 30, Verdict.FAILURE, None),
        ("", 30, None, 30),
        ("ssf", 20, Verdict.FAILURE, None),  # a failure ends the window early
    ],
)
def test_assess_window_mode(verdicts: str, now: float, phase: Verdict | None, next_due: float | None) -> None:
    state = assess(check(), series("c", verdicts), at(now), started_at=T0, ends_at=at(30))
    assert state.verdict is phase
    assert state.next_due == (None if next_due is None else at(next_due))


def test_assess_window_never_sleeps_past_its_end() -> None:
    state = assess(check(interval="20s"), series("c", "s", start=15), at(16), started_at=T0, ends_at=at(30))
    assert state.next_due == at(30)


R, P, F, IN = None, Verdict.SUCCESS, Verdict.FAILURE, Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([], IN),
        ([P], P),
        ([P, P], P),
        ([R, P], R),
        ([R, R], R),
        ([F, R], F),
        ([F, IN], F),
        ([P, F], F),
        ([IN, R], IN),
        ([IN, P], IN),
        ([IN, IN], IN),
    ],
)
def test_aggregate(outcomes: list[Verdict | None], expected: Verdict | None) -> None:
    states = [CheckState(f"c{i}", None if o is R else Verdict.SUCCESS, o) for i, o in enumerate(outcomes)]
    assert aggregate(states) is expected


def test_run_state_reports_earliest_due_and_reason() -> None:
    a, b = check(name="a"), check(name="b", interval="5s")
    ms = series("a", "s") + series("b", "s")
    state = run_state([a, b], ms, at(1), started_at=T0)
    assert (state.outcome, state.next_due) == (None, at(5))
    state = run_state([a, b], ms + series("b", "f", start=5), at(5), started_at=T0)
    assert state.outcome is Verdict.FAILURE and state.next_due is None
    assert state.reason.startswith("b: 1 failed measurement(s)")


def test_select_checks() -> None:
    a, b = check(name="a"), check(name="b")
    defaults = [check(name="d")]
    assert select_checks(Analysis(), (), defaults) == defaults
    assert select_checks(Analysis(checks=[a, b]), (), defaults) == [a, b]
    assert select_checks(Analysis(checks=[a, b]), ["b"]) == [b]
    with pytest.raises(UnknownCheck, match="unknown check"):
        select_checks(Analysis(checks=[a]), ["zz"])


def test_a_baseline_condition_without_baseline_query_is_an_error_not_a_pass() -> None:
    """The loader refuses such a check; the engine still never lets one pass (defence in depth)."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="uses baseline"):
        check(successCondition="result <= baseline")
    unchecked = check().model_copy(update={"success_condition": "result <= baseline"})
    measurement = evaluate(unchecked, Observation(value=(1.0,)), T0, 0)
    assert measurement.verdict is Verdict.ERROR and "no baselineQuery" in measurement.reason

"""Pure decisions: one observation -> a verdict; a check's measurements -> its state; the states of
all checks -> one verdict. No IO and no clock: time is always an argument.

Rules that hold everywhere (DESIGN §5): no data, NaN, an empty vector, a failed query or too little
traffic is never SUCCESS; INCONCLUSIVE and ERROR beyond their limits pause the release (or fail it
when the check says `onInconclusive: fail`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from config.expressions import ConditionError, parse_condition
from config.schema import Analysis, Check
from regions.analysis.judge import mann_whitney
from regions.analysis.model import CheckState, Measurement, Observation, RunState, Verdict

# Worst first: combining two verdicts on one measurement keeps the worse one.
_SEVERITY = (Verdict.FAILURE, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.SUCCESS)


class UnknownCheck(KeyError):
    """An analysis step names a check the plan does not define."""


def select_checks(analysis: Analysis, names: Sequence[str] = (), defaults: Sequence[Check] = ()) -> list[Check]:
    """The checks an analysis step or smoke window runs: the plan's (or `defaults` when the plan
    names none), restricted to `names` when given."""
    pool = list(analysis.checks) or list(defaults)
    if not names:
        return pool
    by_name = {c.name: c for c in pool}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise UnknownCheck(f"unknown check(s) {', '.join(missing)}; defined: {', '.join(sorted(by_name))}")
    return [by_name[n] for n in names]


def judge_window(check: Check) -> tuple[timedelta, timedelta]:
    """(lookback, step) of the range queries a judge compares.

    Samples are taken every `interval` and each sample's rate window is `interval` too, so
    neighbouring samples do not share data (the test assumes independent samples). The lookback
    holds twice the minimum sample size, so a window is judged on fresh data only."""
    assert check.judge is not None
    return check.interval * (2 * check.judge.min_samples), check.interval


def first_due(check: Check, started_at: datetime) -> datetime:
    """When a check takes its first measurement. A judge needs `minSamples` intervals of data
    before it can say anything, so its first measurement waits for them."""
    delay = check.initial_delay or timedelta(0)
    if check.judge is not None:
        delay = max(delay, check.interval * check.judge.min_samples)
    return started_at + delay


def _single(values: tuple[float, ...], what: str) -> tuple[float | None, Verdict | None, str]:
    """One number out of an instant vector, or the verdict that replaces it."""
    if not values:
        return None, Verdict.INCONCLUSIVE, f"{what}: no data (empty result)"
    if len(values) > 1:
        return None, Verdict.ERROR, f"{what}: {len(values)} series; aggregate the query to one (sum, max)"
    value = values[0]
    if math.isnan(value):
        return value, Verdict.INCONCLUSIVE, f"{what}: NaN (no data in the window)"
    return value, None, ""


def evaluate(
    check: Check, observation: Observation, at: datetime, min_requests: int = 0, judge_level: float | None = None
) -> Measurement:
    """Judge one observation of `check`. Order: query errors, the minimum-evidence guard, missing
    data, then the judge and the conditions (the worse of the two wins). `judge_level` is the
    judge's per-look p-value threshold in a smoke window (`sequential.window_level`); None keeps
    `1 - confidence`."""
    obs = observation

    def measurement(verdict: Verdict, reason: str, **extra: object) -> Measurement:
        return Measurement(check=check.name, at=at, verdict=verdict, reason=reason, **extra)  # type: ignore[arg-type]

    if obs.error is not None:
        return measurement(Verdict.ERROR, obs.error)

    requests: float | None = None
    if obs.requests is not None:
        requests, problem, _ = _single(obs.requests, "requests")
        if problem is Verdict.ERROR:
            return measurement(Verdict.ERROR, "the request-count query returned several series")
        requests = 0.0 if requests is None or math.isnan(requests) else requests
        if requests < min_requests:
            return measurement(
                Verdict.INCONCLUSIVE,
                f"only {requests:g} requests in the window (minRequests {min_requests}): too little traffic to judge",
                requests=requests,
            )

    value, problem, why = _single(obs.value, "result")
    if problem is not None:
        return measurement(problem, why, value=value, requests=requests)
    assert value is not None

    baseline: float | None = None
    if obs.baseline is not None:
        baseline, problem, why = _single(obs.baseline, "baseline")
        if problem is not None and check.judge is None and _uses_baseline(check):
            return measurement(problem, why, value=value, baseline=baseline, requests=requests)
        if problem is not None:
            baseline = None

    verdicts: list[tuple[Verdict, str]] = []
    extra: dict[str, object] = {}
    if check.judge is not None:
        result = mann_whitney(check.judge, obs.canary_samples or (), obs.baseline_samples or (), judge_level)
        verdicts.append((result.verdict, result.reason))
        extra = {"p_value": result.p_value, "samples": result.canary_n, "baseline_samples": result.baseline_n}
        if result.baseline_median is not None and baseline is None:
            baseline = result.baseline_median
    if check.success_condition is not None or check.failure_condition is not None:
        verdicts.append(_conditions(check, value, baseline))
    verdict, reason = min(verdicts, key=lambda v: _SEVERITY.index(v[0]))
    return measurement(verdict, reason, value=value, baseline=baseline, requests=requests, **extra)


def _uses_baseline(check: Check) -> bool:
    texts = [t for t in (check.success_condition, check.failure_condition) if t is not None]
    return any("baseline" in parse_condition(t).variables for t in texts)


def _conditions(check: Check, value: float, baseline: float | None) -> tuple[Verdict, str]:
    values = {"result": value} if baseline is None else {"result": value, "baseline": baseline}
    if _uses_baseline(check) and check.baseline_query is None:
        return Verdict.ERROR, "the condition uses baseline but the check has no baselineQuery"
    if baseline is None and _uses_baseline(check):
        return Verdict.INCONCLUSIVE, "baseline: no data"
    try:
        if check.failure_condition is not None and parse_condition(check.failure_condition).evaluate(values):
            return Verdict.FAILURE, f"failureCondition holds: {check.failure_condition}"
        if check.success_condition is not None:
            if parse_condition(check.success_condition).evaluate(values):
                return Verdict.SUCCESS, f"successCondition holds: {check.success_condition}"
            return Verdict.FAILURE, f"successCondition does not hold: {check.success_condition}"
    except ConditionError as exc:
        return Verdict.ERROR, str(exc)
    except ArithmeticError as exc:  # e.g. result / baseline with a zero baseline
        return Verdict.INCONCLUSIVE, f"condition could not be computed ({exc})"
    return Verdict.SUCCESS, f"failureCondition does not hold: {check.failure_condition}"


def assess(
    check: Check,
    measurements: Iterable[Measurement],
    now: datetime,
    *,
    started_at: datetime,
    ends_at: datetime | None = None,
    folded: Mapping[str, int] | None = None,
) -> CheckState:
    """The state of `check` from its measurements (others are ignored), oldest first.

    Count mode (`ends_at` None, a strategy's analysis step): done after `count` conclusive
    (success or failure) measurements. Window mode (a smoke window until `ends_at`): measured every
    interval until the window ends and once at its end; it passes only if that final measurement is
    a success (so an outage late in the window cannot pass it). In both modes, at any time: more failures than
    failureLimit fail the check; more inconclusive measurements than inconclusiveLimit, or more
    consecutive errors than consecutiveErrorLimit, end it inconclusive (-> onInconclusive).
    `folded`: counts by verdict value of this check's older measurements that are no longer kept;
    they count towards every limit (the newest ones, which decide the rest, are always kept).
    """
    ms = [m for m in measurements if m.check == check.name]
    earlier = folded or {}
    counts = {v: sum(1 for m in ms if m.verdict is v) + int(earlier.get(v.value, 0)) for v in Verdict}
    consecutive = 0
    for m in reversed(ms):
        if m.verdict is not Verdict.ERROR:
            break
        consecutive += 1
    tally: dict[str, Any] = {
        "successes": counts[Verdict.SUCCESS],
        "failures": counts[Verdict.FAILURE],
        "inconclusives": counts[Verdict.INCONCLUSIVE],
        "errors": counts[Verdict.ERROR],
        "consecutive_errors": consecutive,
    }
    last = ms[-1] if ms else None

    def done(verdict: Verdict, reason: str) -> CheckState:
        return CheckState(check.name, verdict, outcome_of(check, verdict), reason=reason, **tally)

    if counts[Verdict.FAILURE] > check.failure_limit:
        return done(
            Verdict.FAILURE,
            f"{counts[Verdict.FAILURE]} failed measurement(s), failureLimit "
            f"{check.failure_limit}; last: {_last_reason(ms, Verdict.FAILURE)}",
        )
    if consecutive > check.consecutive_error_limit:
        return done(
            Verdict.ERROR,
            f"{consecutive} consecutive errors, consecutiveErrorLimit "
            f"{check.consecutive_error_limit}; last: {_last_reason(ms, Verdict.ERROR)}",
        )
    if counts[Verdict.INCONCLUSIVE] > check.inconclusive_limit:
        return done(
            Verdict.INCONCLUSIVE,
            f"{counts[Verdict.INCONCLUSIVE]} inconclusive measurement(s), "
            f"inconclusiveLimit {check.inconclusive_limit}; last: "
            f"{_last_reason(ms, Verdict.INCONCLUSIVE)}",
        )
    next_due = last.at + check.interval if last else first_due(check, started_at)
    if ends_at is None:
        conclusive = counts[Verdict.SUCCESS] + counts[Verdict.FAILURE]
        if conclusive >= check.count:
            return done(Verdict.SUCCESS, f"{counts[Verdict.SUCCESS]} of {conclusive} measurements passed")
    elif now >= ends_at:
        if last is not None and last.at >= ends_at:
            if last.verdict is Verdict.SUCCESS:
                return done(
                    Verdict.SUCCESS,
                    f"window ended; {counts[Verdict.SUCCESS]} of {sum(counts.values())} measurements passed, "
                    "the final one included",
                )
            if last.verdict is Verdict.FAILURE:
                return done(Verdict.INCONCLUSIVE, f"window ended on a failure measurement: {last.reason}")
            # No evidence at the end (too little traffic yet, no data, a failed query): measure again
            # each interval until a conclusive one, within the limits checked above. A quiet region
            # at night, or a scrape that lags, then costs an interval or two instead of a pause.
        else:
            next_due = now  # the window's verdict needs a measurement taken at its end
    else:
        next_due = min(next_due, ends_at)  # never sleep past the end of the window
    return CheckState(check.name, None, None, next_due=next_due, **tally)


def _last_reason(ms: Sequence[Measurement], verdict: Verdict) -> str:
    return next((m.reason for m in reversed(ms) if m.verdict is verdict), "")


def outcome_of(check: Check, verdict: Verdict | None) -> Verdict | None:
    """The verdict a caller acts on, from a check's own: ERROR and INCONCLUSIVE become the check's
    onInconclusive (INCONCLUSIVE: pause, or FAILURE)."""
    if verdict in (None, Verdict.SUCCESS, Verdict.FAILURE):
        return verdict
    return Verdict.FAILURE if check.on_inconclusive == "fail" else Verdict.INCONCLUSIVE


def aggregate(states: Sequence[CheckState]) -> Verdict | None:
    """One verdict for all checks: FAILURE > INCONCLUSIVE > running (None) > SUCCESS.

    A failure anywhere ends the run at once (time to rollback is bounded by one interval); an
    inconclusive check pauses at once rather than after the others finish, so that the alert is
    not delayed by a long smoke window. No checks at all is no evidence: INCONCLUSIVE."""
    if not states:
        return Verdict.INCONCLUSIVE
    outcomes = {s.outcome for s in states}
    for outcome in (Verdict.FAILURE, Verdict.INCONCLUSIVE, None):
        if outcome in outcomes:
            return outcome
    return Verdict.SUCCESS


def run_state(
    checks: Sequence[Check],
    measurements: Iterable[Measurement],
    now: datetime,
    *,
    started_at: datetime,
    ends_at: datetime | None = None,
    folded: Mapping[str, Mapping[str, int]] | None = None,
) -> RunState:
    """Assess every check and aggregate; `next_due` is the earliest measurement still to take.
    `folded`: per check, the counts by verdict of older measurements no longer kept (see
    `runner.AnalysisRun.compacted`)."""
    ms = list(measurements)
    older = folded or {}
    states = tuple(assess(c, ms, now, started_at=started_at, ends_at=ends_at, folded=older.get(c.name)) for c in checks)
    outcome = aggregate(states)
    due = [s.next_due for s in states if s.next_due is not None]
    next_due = min(due) if due and outcome is None else None
    decisive = [s for s in states if s.outcome is outcome and s.reason]
    reason = "; ".join(f"{s.check}: {s.reason}" for s in decisive) if outcome is not None else ""
    if not states:
        reason = "no checks to run"
    return RunState(outcome, states, next_due, reason)

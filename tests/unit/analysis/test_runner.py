"""The runner against a fake provider: rendered queries, baseline variables, the evidence guard,
polling over injected time, serialisation, and a provider that goes away mid-run."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from config.defaults import DEFAULT_CHECKS
from regions.analysis.fake import FakeMetricsProvider
from regions.analysis.model import Verdict
from regions.analysis.provider import MetricsProvider, MetricsUnavailable
from regions.analysis.runner import AnalysisRun, Analyzer, Target, poll, run_analysis
from tests.unit.analysis.helpers import T0, at, check

TARGET = Target(app="checkout", region="eu-west", release="abc123def456", version="1.5.0", stable_version="1.4.2")


def answers(table: dict[str, float | None]) -> FakeMetricsProvider:
    """Answer a query by the first key it contains; None: empty vector."""

    def answer(promql: str, when: datetime) -> tuple[float, ...]:
        for key, value in table.items():
            if key in promql:
                return () if value is None else (value,)
        return ()

    return FakeMetricsProvider(answer)


def down_after(when: datetime, outage: datetime) -> tuple[float, ...]:
    if when >= outage:
        raise MetricsUnavailable("Prometheus went away")
    return (0.0,)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=max(seconds, 0.001))


def test_queries_render_target_and_baseline_variables() -> None:
    provider = answers({'track="canary"': 0.001, 'track="stable"': 0.001})
    c = check(
        query='m{app="{{ app }}",region="{{ region }}",track="{{ track }}",version="{{ version }}"}[{{ interval }}]',
        baselineQuery='m{track="{{ track }}",version="{{ version }}",v2="{{ stable_version }}"}',
        successCondition="result <= max(1.5 * baseline, 0.001)",
    )
    m = Analyzer(provider, TARGET).measure(c, T0)
    assert m.verdict is Verdict.SUCCESS
    (canary, _), (baseline, _) = provider.calls
    assert canary == 'm{app="checkout",region="eu-west",track="canary",version="1.5.0"}[10s]'
    assert baseline == 'm{track="stable",version="1.4.2",v2="1.4.2"}'


def test_baseline_at_compares_with_the_past() -> None:
    provider = answers({"": 1.0})
    target = Target(**{**TARGET.__dict__, "baseline_at": at(-600)})
    Analyzer(provider, target).measure(check(baselineQuery="b", successCondition="result <= baseline"), T0)
    assert [when for _, when in provider.calls] == [T0, at(-600)]


def test_evidence_guard_queries_request_count() -> None:
    provider = answers({"increase(http_requests_total": 12.0, "": 0.0})
    m = Analyzer(provider, TARGET, min_requests=50).measure(DEFAULT_CHECKS[0], T0)
    assert m.verdict is Verdict.INCONCLUSIVE and m.requests == 12.0
    assert any(
        'increase(http_requests_total{app="checkout",region="eu-west",track="canary"' in q for q, _ in provider.calls
    )


def test_template_errors_are_errors() -> None:
    m = Analyzer(answers({}), TARGET).measure(check(query="{{ nope }}"), T0)
    assert m.verdict is Verdict.ERROR and "template" in m.reason


def test_default_checks_pass_on_healthy_numbers() -> None:
    provider = answers(
        {"deriv": 0.0, "histogram_quantile": 0.035, "5..": 0.0, "increase": 400.0, "rate(http_requests_total": 20.0}
    )
    analyzer = Analyzer(provider, TARGET, min_requests=50)
    assert [analyzer.measure(c, T0).verdict for c in DEFAULT_CHECKS] == [Verdict.SUCCESS] * 4


def test_poll_measures_only_what_is_due() -> None:
    provider = answers({"": 0.0})
    a, b = check(name="a", interval="10s"), check(name="b", interval="30s")
    analyzer = Analyzer(provider, TARGET)
    run = AnalysisRun(T0)
    run, state = poll(analyzer, [a, b], run, T0)
    assert [m.check for m in run.measurements] == ["a", "b"] and state.next_due == at(10)
    run, _ = poll(analyzer, [a, b], run, T0)  # same instant again: nothing due
    run, _ = poll(analyzer, [a, b], run, at(5))
    assert len(run.measurements) == 2
    run, _ = poll(analyzer, [a, b], run, at(10))
    assert [m.check for m in run.measurements] == ["a", "b", "a"]


def test_run_analysis_count_mode_passes_after_count() -> None:
    clock = Clock(T0)
    result = run_analysis(Analyzer(answers({"": 0.0}), TARGET), [check()], clock=clock, sleep=clock.sleep)
    assert result.outcome is Verdict.SUCCESS
    assert [m.at for m in result.run.measurements] == [at(0), at(10), at(20)]


def test_error_spike_fails_within_one_interval() -> None:
    clock = Clock(T0)
    provider = FakeMetricsProvider(lambda q, t: (0.5,) if t >= at(33) else (0.0,))
    result = run_analysis(
        Analyzer(provider, TARGET), [check(count=100)], duration=timedelta(minutes=5), clock=clock, sleep=clock.sleep
    )
    assert result.outcome is Verdict.FAILURE
    assert result.run.measurements[-1].at - at(33) <= timedelta(seconds=10)


def test_provider_down_mid_window_is_inconclusive_not_pass() -> None:
    clock = Clock(T0)
    provider = FakeMetricsProvider(lambda q, t: down_after(t, at(25)))

    result = run_analysis(
        Analyzer(provider, TARGET), [check()], duration=timedelta(seconds=600), clock=clock, sleep=clock.sleep
    )
    assert result.outcome is Verdict.INCONCLUSIVE
    assert "consecutive errors" in result.state.reason
    assert result.run.measurements[-1].verdict is Verdict.ERROR
    assert result.run.measurements[-1].at == at(30 + 3 * 10)  # the fourth consecutive error


def test_window_ending_during_outage_is_inconclusive() -> None:
    """The final measurement fails to run: the window waits for a conclusive one, within
    consecutiveErrorLimit (3), and an outage that lasts ends it Inconclusive, never a pass."""
    clock = Clock(T0)
    provider = FakeMetricsProvider(lambda q, t: down_after(t, at(45)))

    result = run_analysis(
        Analyzer(provider, TARGET), [check()], duration=timedelta(seconds=50), clock=clock, sleep=clock.sleep
    )
    assert result.outcome is Verdict.INCONCLUSIVE and "4 consecutive errors" in result.state.reason
    assert [m.at for m in result.run.measurements[-4:]] == [at(50), at(60), at(70), at(80)]


def test_a_window_ending_on_too_little_traffic_waits_for_evidence_then_passes() -> None:
    """A quiet region: the measurement at the window's end has fewer requests than minRequests. The
    window is not passed on it, nor paused: the next interval's measurement (enough traffic) decides."""
    clock = Clock(T0)

    def answer(promql: str, when: datetime) -> tuple[float, ...]:
        if "increase(http_requests_total" in promql:
            return (10.0,) if at(45) <= when < at(55) else (400.0,)
        return (0.0,)

    analyzer = Analyzer(FakeMetricsProvider(answer), TARGET, min_requests=50)
    result = run_analysis(analyzer, [check()], duration=timedelta(seconds=50), clock=clock, sleep=clock.sleep)
    verdicts = [(m.at, m.verdict) for m in result.run.measurements]
    assert result.outcome is Verdict.SUCCESS
    assert verdicts[-2:] == [(at(50), Verdict.INCONCLUSIVE), (at(60), Verdict.SUCCESS)]


def test_deadline_is_inconclusive_not_pass() -> None:
    clock = Clock(T0)
    result = run_analysis(
        Analyzer(answers({}), TARGET), [check(inconclusiveLimit=1000)], clock=clock, sleep=clock.sleep, deadline=at(60)
    )
    assert result.outcome is Verdict.INCONCLUSIVE


def test_run_round_trips_through_json() -> None:
    clock = Clock(T0)
    provider = FakeMetricsProvider(lambda q, t: (float("nan"),) if t >= at(10) else (float("inf"),))
    result = run_analysis(
        Analyzer(provider, TARGET),
        [check(successCondition="result > 0")],
        duration=timedelta(seconds=30),
        clock=clock,
        sleep=clock.sleep,
    )
    status = json.loads(json.dumps(result.run.to_status(), allow_nan=False))
    assert AnalysisRun.from_status(status).to_status() == result.run.to_status()
    assert status["measurements"][0]["value"] == "+Inf"
    assert status["measurements"][1]["value"] == "NaN"
    json.dumps(result.state.to_json(), allow_nan=False)


def test_judge_check_uses_range_queries_and_fails_a_step() -> None:
    judged = check(
        successCondition=None,
        baselineQuery='m{track="{{ track }}"}',
        query='m{track="{{ track }}"}',
        judge={"minSamples": 10},
        interval="2s",
    )
    noise = [0.020, 0.022, 0.019, 0.021, 0.023, 0.018, 0.020, 0.024, 0.019, 0.021]

    def answer(promql: str, when: datetime) -> tuple[float, ...]:
        i = int(when.timestamp()) // 2 % len(noise)
        return (noise[i] * (1.5 if "canary" in promql and when >= at(60) else 1.0),)

    provider: MetricsProvider = FakeMetricsProvider(answer)
    clock = Clock(T0)
    result = run_analysis(
        Analyzer(provider, TARGET), [judged], duration=timedelta(minutes=5), clock=clock, sleep=clock.sleep
    )
    assert result.outcome is Verdict.FAILURE
    folded = sum(result.run.folded.get("c", {}).values())  # the oldest looks, kept as counts only
    first = result.run.measurements[0]
    assert first.at == at(20 + 2 * folded)  # minSamples x interval of data before the first judgement
    assert first.verdict is Verdict.SUCCESS and first.samples == 21  # 40 s lookback, both ends
    failed = result.run.measurements[-1]
    assert at(60) < failed.at <= at(80) and failed.p_value is not None and failed.p_value < 0.05


def test_judge_with_no_canary_samples_is_inconclusive() -> None:
    judged = check(successCondition=None, baselineQuery="b", query="q", judge={"minSamples": 10}, interval="2s")
    provider = FakeMetricsProvider(lambda q, t: () if q == "q" else (1.0,))
    m = Analyzer(provider, TARGET).measure(judged, T0)
    assert m.verdict is Verdict.INCONCLUSIVE and "no data" in m.reason

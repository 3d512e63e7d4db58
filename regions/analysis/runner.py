"""Taking measurements (the only IO of the engine) and driving a run of checks over time.

`Analyzer.measure(check, now)` renders a check's queries for one target, asks the metrics
provider, and hands the raw numbers to the pure `verdicts.evaluate`. An `AnalysisRun` is the
serialisable record of a run (start, optional end, every measurement); `poll` takes whatever
measurements are due and returns the new record and its state. `run_analysis` loops `poll` until
the verdict is known, for callers that may block (the detection benchmark, the lab tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from jinja2 import TemplateError

from config.defaults import REQUEST_COUNT_QUERY
from config.schema import Check
from config.templating import render_query
from config.times import format_time, parse_time
from regions.analysis.model import Measurement, Observation, RunState, Verdict, prom_duration
from regions.analysis.provider import MetricsError, MetricsProvider
from regions.analysis.sequential import window_level
from regions.analysis.verdicts import evaluate, judge_window, run_state


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Target:
    """What is being judged: one app's version and track in one region, and what it is compared
    with (`baseline_track` at `stable_version`).

    `baseline_at` evaluates baseline queries at a fixed past instant instead of now: a smoke window
    after a region is fully on the new version has no stable track left to compare with, so it
    compares with the region just before the rollout started."""

    app: str
    region: str
    release: str
    version: str
    stable_version: str
    namespace: str = ""
    track: str = "canary"
    baseline_track: str = "stable"
    baseline_at: datetime | None = None

    def variables(self, interval: timedelta, *, baseline: bool = False) -> dict[str, str]:
        return {
            "app": self.app,
            "namespace": self.namespace or self.app,
            "region": self.region,
            "release": self.release,
            "stable_version": self.stable_version,
            "version": self.stable_version if baseline else self.version,
            "track": self.baseline_track if baseline else self.track,
            "interval": prom_duration(interval),
        }


class Analyzer:
    """Measures checks of one target through one metrics provider.

    `min_requests` is the minimum-evidence guard (Analysis.minRequests): a window in which the
    target served fewer requests (counted by `evidence_query`, rendered like a check query) is
    inconclusive. `window` overrides the range of `{{ interval }}` in queries (default: each
    check's interval), e.g. to cover at least a few scrapes when the interval is very short."""

    def __init__(
        self,
        provider: MetricsProvider,
        target: Target,
        *,
        min_requests: int = 0,
        evidence_query: str | None = REQUEST_COUNT_QUERY,
        window: timedelta | None = None,
    ) -> None:
        self.provider = provider
        self.target = target
        self.min_requests = min_requests
        self.evidence_query = evidence_query if min_requests > 0 else None
        self.window = window

    def measure(self, check: Check, now: datetime, judge_level: float | None = None) -> Measurement:
        return evaluate(check, self.observe(check, now), now, self.min_requests, judge_level)

    def observe(self, check: Check, now: datetime) -> Observation:
        """Ask the provider everything `check` needs at `now`. Failures become `error`."""
        try:
            if check.judge is not None:
                return self._observe_judged(check, now)
            window = self.window or check.interval
            value = self.provider.query(self._render(check.query, window), now)
            baseline = None
            if check.baseline_query is not None:
                baseline = self.provider.query(
                    self._render(check.baseline_query, window, baseline=True), self.target.baseline_at or now
                )
            return Observation(value=value, baseline=baseline, requests=self._requests(window, now))
        except MetricsError as exc:
            return Observation(error=str(exc))
        except TemplateError as exc:
            return Observation(error=f"query template: {exc}")

    def _observe_judged(self, check: Check, now: datetime) -> Observation:
        assert check.baseline_query is not None
        lookback, step = judge_window(check)
        # Each sample's range is the step, so samples do not share data; a `window` override (very
        # short intervals) makes neighbouring samples overlap, which the test tolerates less well.
        rng = max(self.window or step, step)
        canary = _one_series(self.provider.query_range(self._render(check.query, rng), now - lookback, now, step))
        b_end = self.target.baseline_at or now
        baseline = _one_series(
            self.provider.query_range(
                self._render(check.baseline_query, rng, baseline=True), b_end - lookback, b_end, step
            )
        )
        return Observation(
            value=(median(canary),) if canary else (),
            baseline=(median(baseline),) if baseline else (),
            requests=self._requests(lookback, now),
            canary_samples=canary,
            baseline_samples=baseline,
        )

    def _requests(self, window: timedelta, now: datetime) -> tuple[float, ...] | None:
        if self.evidence_query is None:
            return None
        return self.provider.query(self._render(self.evidence_query, window), now)

    def _render(self, source: str, interval: timedelta, *, baseline: bool = False) -> str:
        return render_query(source, self.target.variables(interval, baseline=baseline))


def _one_series(series: tuple[tuple[float, ...], ...]) -> tuple[float, ...]:
    if len(series) > 1:
        raise MetricsError(f"{len(series)} series returned; aggregate the query to one (sum, max)")
    return series[0] if series else ()


# Measurements kept per check in a run's record. A smoke window of an hour with a check every 10 s
# would otherwise write 360 measurements per check into the Release status on every pass, for
# every region: the object grows past what etcd takes (1.5 MiB) and every status write costs more.
# Older ones are folded into counts by verdict, which is all the verdicts read of them.
KEEP_PER_CHECK = 30


@dataclass(frozen=True)
class AnalysisRun:
    """The record of one run: kept in the Release status, enough to resume after a restart.

    `ends_at` None: a strategy's analysis step (each check runs `count` measurements).
    `ends_at` set: a smoke window (checks run every interval until then).
    `folded`: per check, counts by verdict of the older measurements no longer kept."""

    started_at: datetime
    ends_at: datetime | None = None
    measurements: tuple[Measurement, ...] = field(default=())
    folded: dict[str, dict[str, int]] = field(default_factory=dict)

    def state(self, checks: Sequence[Check], now: datetime) -> RunState:
        return run_state(
            checks, self.measurements, now, started_at=self.started_at, ends_at=self.ends_at, folded=self.folded
        )

    def compacted(self, checks: Sequence[Check]) -> AnalysisRun:
        """The record with at most `keep` measurements per check, older ones folded into counts.
        A check keeps more than its consecutiveErrorLimit, so a run of errors that ends it is
        always counted from kept measurements; verdicts are the same as from the whole record."""
        keep = {c.name: max(KEEP_PER_CHECK, c.consecutive_error_limit + 1) for c in checks}
        seen: dict[str, int] = {}
        kept: list[Measurement] = []
        folded = {name: dict(counts) for name, counts in self.folded.items()}
        for m in reversed(self.measurements):  # newest first: the newest of each check are kept
            seen[m.check] = seen.get(m.check, 0) + 1
            if seen[m.check] <= keep.get(m.check, KEEP_PER_CHECK):
                kept.append(m)
                continue
            counts = folded.setdefault(m.check, {})
            counts[m.verdict.value] = counts.get(m.verdict.value, 0) + 1
        if len(kept) == len(self.measurements):
            return self
        return replace(self, measurements=tuple(reversed(kept)), folded=folded)

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "startedAt": format_time(self.started_at),
            "measurements": [m.to_json() for m in self.measurements],
        }
        if self.folded:
            out["folded"] = {name: dict(sorted(counts.items())) for name, counts in sorted(self.folded.items())}
        if self.ends_at is not None:
            out["endsAt"] = format_time(self.ends_at)
        return out

    @classmethod
    def from_status(cls, data: dict[str, Any]) -> AnalysisRun:
        started = parse_time(data.get("startedAt"))
        if started is None:
            raise ValueError("an analysis run without its start (startedAt)")
        return cls(
            started_at=started,
            ends_at=parse_time(data.get("endsAt")),
            measurements=tuple(Measurement.from_json(m) for m in data.get("measurements", [])),
            folded={
                str(name): {str(v): int(n) for v, n in (counts or {}).items()}
                for name, counts in (data.get("folded") or {}).items()
            },
        )


def poll(analyzer: Analyzer, checks: Sequence[Check], run: AnalysisRun, now: datetime) -> tuple[AnalysisRun, RunState]:
    """Take the measurements due at `now` (none once the outcome is known); return the new record
    and its state. Idempotent within one instant: a check measured at `now` is not due again."""
    state = run.state(checks, now)
    if state.done:
        return run, state
    due = [
        c
        for c, s in zip(checks, state.checks, strict=True)
        if s.verdict is None and s.next_due is not None and s.next_due <= now
    ]
    if not due:
        return run, state
    # In a smoke window a judge looks every interval: each look is tested at the level that keeps
    # the judge's stated false-alarm rate for the whole window (regions/analysis/sequential.py).
    fresh = tuple(analyzer.measure(c, now, window_level(c, run.started_at, run.ends_at)) for c in due)
    run = replace(run, measurements=run.measurements + fresh).compacted(checks)
    return run, run.state(checks, now)


@dataclass(frozen=True)
class AnalysisResult:
    outcome: Verdict  # never ERROR
    run: AnalysisRun
    state: RunState


def run_analysis(
    analyzer: Analyzer,
    checks: Sequence[Check],
    *,
    run: AnalysisRun | None = None,
    duration: timedelta | None = None,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    on_poll: Callable[[AnalysisRun, RunState], None] | None = None,
    deadline: datetime | None = None,
) -> AnalysisResult:
    """Poll until the outcome is known; block in between. Starts a new run at `clock()` (a smoke
    window when `duration` is given) unless `run` resumes one. `on_poll` sees every new state (to
    write status). `deadline` bounds the wait: reaching it returns INCONCLUSIVE, never SUCCESS."""
    if run is None:
        start = clock()
        run = AnalysisRun(start, start + duration if duration is not None else None)
    while True:
        now = clock()
        run, state = poll(analyzer, checks, run, now)
        if on_poll is not None:
            on_poll(run, state)
        if state.outcome is not None:
            return AnalysisResult(state.outcome, run, state)
        if deadline is not None and now >= deadline:
            state = replace(state, outcome=Verdict.INCONCLUSIVE, reason="the analysis deadline passed")
            return AnalysisResult(Verdict.INCONCLUSIVE, run, state)
        wake = state.next_due or now + timedelta(seconds=1)
        if deadline is not None:
            wake = min(wake, deadline)
        sleep(max(0.0, (wake - clock()).total_seconds()))

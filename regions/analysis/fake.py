"""An in-memory metrics provider for unit tests of the engine and of its callers (strategies,
the orchestrator): answers are functions of the query text and the time asked about."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from regions.analysis.provider import MetricsUnavailable

Answer = Callable[[str, datetime], tuple[float, ...]]


class FakeMetricsProvider:
    """`answer(promql, at)` gives the instant vector; a range query samples it every step.
    Set `down = True` to simulate an unreachable backend. Every call is recorded in `calls`."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.down = False
        self.calls: list[tuple[str, datetime]] = []

    def query(self, promql: str, at: datetime) -> tuple[float, ...]:
        self.calls.append((promql, at))
        if self.down:
            raise MetricsUnavailable("fake Prometheus is down")
        return self.answer(promql, at)

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> tuple[tuple[float, ...], ...]:
        self.calls.append((promql, end))
        if self.down:
            raise MetricsUnavailable("fake Prometheus is down")
        series: list[float] = []
        t = start
        while t <= end:
            values = self.answer(promql, t)
            if len(values) > 1:
                raise ValueError("the fake's range queries support one series")
            series.extend(values)
            t += step
        return (tuple(series),) if series else ()

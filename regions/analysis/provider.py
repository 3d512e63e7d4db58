"""The metrics-provider interface the analysis engine talks to, and its typed errors.

A provider returns plain numbers, one per series the query produced; it never judges them. Empty
results are empty tuples, NaN stays NaN: the pure verdict logic decides what they mean.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol


class MetricsError(RuntimeError):
    """A measurement could not be taken. The verdict is ERROR, never SUCCESS."""


class MetricsUnavailable(MetricsError):
    """The metrics backend did not answer (connection refused, timeout, 5xx): temporary."""


class QueryRejected(MetricsError):
    """The backend refused the query (bad PromQL, 4xx): permanent until the plan changes."""


class MetricsProvider(Protocol):
    def query(self, promql: str, at: datetime) -> tuple[float, ...]:
        """Instant query evaluated at `at`: one value per series (empty: no data)."""
        ...

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> tuple[tuple[float, ...], ...]:
        """Range query: for each series, its values from `start` to `end` every `step`."""
        ...

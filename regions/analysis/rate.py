"""A region's request rate for one app: what a drain moves away and a restore brings back.

Used by the reconciler (a failed region's drain) and the drill (drain and restore targets).
"""

from __future__ import annotations

from datetime import datetime

from config.templating import render_query
from regions.analysis.provider import MetricsError, MetricsProvider

DEFAULT_DRAIN_QUERY = 'sum(rate(http_requests_total{app="{{ app }}",region="{{ region }}"}[5s]))'


def request_rate(provider: MetricsProvider | None, query: str, app: str, region: str, now: datetime) -> float | None:
    """Requests per second of `app` in `region` at `now` (`query` rendered with app and region):
    0.0 for no data, None when it cannot be measured (no provider, the query failed)."""
    if provider is None:
        return None
    try:
        values = provider.query(render_query(query, {"app": app, "region": region}), now)
    except MetricsError:
        return None
    return float(sum(values)) if values else 0.0

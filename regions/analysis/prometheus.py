"""The Prometheus metrics provider, on prometheus-api-client."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from regions.analysis.model import prom_duration
from regions.analysis.provider import MetricsError, MetricsUnavailable, QueryRejected


class PrometheusProvider:
    """Instant and range queries against one Prometheus. Every failure becomes a MetricsError:
    MetricsUnavailable when Prometheus did not answer, QueryRejected when it refused the query."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, headers: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self._timeout_s = timeout_s
        # No retries here: one failed attempt is one ERROR measurement, and the check's
        # consecutiveErrorLimit is the retry policy.
        self._client = PrometheusConnect(
            url=self.url, headers=headers, disable_ssl=True, retry=Retry(total=0, raise_on_status=False)
        )

    def query(self, promql: str, at: datetime) -> tuple[float, ...]:
        data = self._call(
            self._client.custom_query, promql, params={"time": f"{at.timestamp():.3f}"}, timeout=self._timeout_s
        )
        return tuple(_value(item) for item in _items(data, promql))

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> tuple[tuple[float, ...], ...]:
        data = self._call(
            self._client.custom_query_range,
            promql,
            start_time=start,
            end_time=end,
            step=prom_duration(step),
            timeout=self._timeout_s,
        )
        return tuple(tuple(float(v) for _, v in item.get("values", [])) for item in _items(data, promql))

    def _call(self, method: Any, promql: str, **kwargs: Any) -> Any:
        try:
            return method(promql, **kwargs)
        except requests.RequestException as exc:
            raise MetricsUnavailable(f"Prometheus at {self.url} unreachable: {type(exc).__name__}") from None
        except PrometheusApiClientException as exc:
            text = str(exc)
            if "HTTP Status Code 4" in text:
                raise QueryRejected(f"Prometheus rejected {promql!r}: {_short(text)}") from None
            raise MetricsUnavailable(f"Prometheus at {self.url} failed: {_short(text)}") from None
        except (ValueError, KeyError) as exc:  # a body that is not Prometheus' JSON
            raise MetricsError(f"unexpected answer from {self.url}: {exc}") from None


def _items(data: Any, promql: str) -> list[dict[str, Any]]:
    # custom_query returns data.result: a list of series, or [ts, "v"] for a scalar/string result.
    if isinstance(data, list) and len(data) == 2 and not isinstance(data[0], dict):
        return [{"value": data}]
    if not isinstance(data, list):
        raise MetricsError(f"unexpected result for {promql!r}: {type(data).__name__}")
    return data


def _value(item: dict[str, Any]) -> float:
    return float(item["value"][1])  # Prometheus spells NaN and infinities as strings float() reads


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."

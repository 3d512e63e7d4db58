"""The checks a plan gets when it names none: RED signals relative to the stable track, plus
memory growth. Queries use the metric names of docs/conventions.md."""

from __future__ import annotations

from config.schema import Check

_SEL = 'app="{{ app }}",region="{{ region }}",track="{{ track }}",version="{{ version }}"'
_ERRORS = f'sum(rate(http_requests_total{{{_SEL},code=~"5.."}}[{{{{ interval }}}}]))'
_REQUESTS = f"sum(rate(http_requests_total{{{_SEL}}}[{{{{ interval }}}}]))"
_P99 = (
    f"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{_SEL}}}[{{{{ interval }}}}])))"
)
_MEMORY_GROWTH = f"sum(deriv(app_memory_bytes{{{_SEL}}}[{{{{ interval }}}}]))"

# The minimum-evidence guard (Analysis.minRequests): requests the judged track served in the window.
REQUEST_COUNT_QUERY = f"sum(increase(http_requests_total{{{_SEL}}}[{{{{ interval }}}}]))"

DEFAULT_CHECKS: tuple[Check, ...] = (
    Check.model_validate(
        {
            "name": "error-ratio",
            "query": f"({_ERRORS} or vector(0)) / {_REQUESTS}",
            "baselineQuery": f"({_ERRORS} or vector(0)) / {_REQUESTS}",
            "successCondition": "result <= max(1.5 * baseline, 0.001)",
            "interval": "30s",
            "count": 5,
        }
    ),
    Check.model_validate(
        {
            "name": "latency-p99",
            "query": _P99,
            "baselineQuery": _P99,
            "successCondition": "result <= max(1.2 * baseline, baseline + 0.05)",
            "interval": "30s",
            "count": 5,
        }
    ),
    Check.model_validate(
        {
            "name": "request-rate",
            "query": _REQUESTS,
            "successCondition": "result > 0",
            "interval": "30s",
            "count": 5,
        }
    ),
    Check.model_validate(
        {
            "name": "memory-growth",
            "query": _MEMORY_GROWTH,
            "baselineQuery": _MEMORY_GROWTH,
            "successCondition": "result <= max(2 * baseline, 1048576 / 60)",
            "interval": "30s",
            "count": 5,
        }
    ),
)

"""The controller's own Prometheus metrics (served on /metrics)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

RELEASES = Gauge("rollout_releases", "Releases by app and phase", ["app", "phase"], registry=REGISTRY)
REGIONS = Gauge("rollout_regions", "Regions of active releases by phase", ["app", "phase"], registry=REGISTRY)
VERDICTS = Counter(
    "rollout_analysis_verdicts_total", "Smoke-window outcomes", ["app", "region", "outcome"], registry=REGISTRY
)
ROLLBACKS = Counter("rollout_rollbacks_total", "Regions rolled back", ["app", "region"], registry=REGISTRY)
DRAINS = Histogram(
    "rollout_drain_seconds",
    "Time to drain a region to its target",
    ["app", "region"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300),
    registry=REGISTRY,
)
RECONCILE = Histogram(
    "rollout_reconcile_seconds",
    "Duration of one release reconcile",
    ["app"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)
API_CALLS = Counter(
    "rollout_api_calls_total",
    "Kubernetes API calls by cluster, verb, resource and outcome",
    ["cluster", "verb", "resource", "code"],
    registry=REGISTRY,
)
API_THROTTLE = Counter(
    "rollout_api_throttle_seconds_total",
    "Seconds Kubernetes API requests waited for the client-side rate limit (--kube-api-qps), by cluster",
    ["cluster"],
    registry=REGISTRY,
)
GIT_SYNCS = Counter("rollout_git_syncs_total", "Git syncs by outcome", ["outcome"], registry=REGISTRY)
LEADER = Gauge("rollout_leader", "1 while this replica holds the lease", registry=REGISTRY)


def instrument(api_client: Any, cluster: str) -> Any:
    """Count every HTTP request an ApiClient makes, by cluster, verb and status code. A watch (a
    long-lived stream, not a read per pass) is counted under the verb WATCH."""
    rest = api_client.rest_client
    original = rest.request

    def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        resource = resource_of(url)
        verb = "WATCH" if watching(url) else method
        try:
            response = original(method, url, *args, **kwargs)
        except Exception as exc:
            API_CALLS.labels(cluster, verb, resource, str(getattr(exc, "status", "error"))).inc()
            raise
        API_CALLS.labels(cluster, verb, resource, str(getattr(response, "status", 200))).inc()
        return response

    rest.request = counted
    return api_client


def watching(url: str) -> bool:
    """'...releases?watch=true&...' -> True (the client puts its query parameters in the URL)."""
    return any(p.lower() in ("watch=true", "watch=1") for p in urlsplit(url).query.split("&"))


def resource_of(url: str) -> str:
    """'/apis/coordination.k8s.io/v1/namespaces/x/leases/y' -> 'leases' (a bounded label, not the name)."""
    path = urlsplit(url).path.strip("/").split("/")
    rest = path[2:] if path[:1] == ["api"] else path[3:] if path[:1] == ["apis"] else path
    if len(rest) > 2 and rest[0] == "namespaces":
        return rest[2]
    return rest[0] if rest else "discovery"

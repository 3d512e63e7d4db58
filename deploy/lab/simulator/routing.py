"""Pure routing math (docs/conventions.md): which region, which backend, which pod answers.

No IO here: the cluster adapter turns Kubernetes objects into the value types of `model`, and these
functions turn those into request rates per (region, app, version, track).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .model import (
    TRACK_LABEL,
    UNKNOWN,
    VERSION_LABEL,
    Answer,
    AppSpec,
    AppView,
    BackendRef,
    Pod,
    RegionSpec,
    Route,
    Service,
    Track,
)

FULL_WEIGHT = 100.0  # a missing DNS record or weight means 100
WEIGHT_KEY = "aws/weight"

# (region, app, answer) -> requests per second
RatePlan = dict[tuple[str, str, Answer], float]


# --- global traffic -------------------------------------------------------------------------


def region_rates(total: float, shares: Mapping[str, float], weights: Mapping[str, float]) -> dict[str, float]:
    """total * share_r * w_r / sum_j(share_j * w_j); a drained region's users go to the others."""
    mass = {r: max(0.0, s) * max(0.0, weights.get(r, FULL_WEIGHT)) for r, s in shares.items()}
    denominator = sum(mass.values())
    if denominator <= 0:
        return {r: 0.0 for r in shares}
    return {r: total * m / denominator for r, m in mass.items()}


def parse_dns_weights(endpoint: Mapping[str, Any] | None, regions: Iterable[str]) -> dict[str, float]:
    """Region -> weight from a DNSEndpoint's weighted records (missing record or weight: 100)."""
    weights = {r: FULL_WEIGHT for r in regions}
    if not endpoint:
        return weights
    seen: set[str] = set()
    for record in (endpoint.get("spec") or {}).get("endpoints") or []:
        region = record.get("setIdentifier")
        if region not in weights or region in seen:
            continue  # first record per region wins
        seen.add(region)
        weights[region] = _record_weight(record)
    return weights


def _record_weight(record: Mapping[str, Any]) -> float:
    for prop in record.get("providerSpecific") or []:
        if prop.get("name") == WEIGHT_KEY:
            try:
                return max(0.0, float(prop.get("value")))
            except (TypeError, ValueError):
                return FULL_WEIGHT
    return FULL_WEIGHT


# --- inside a region ------------------------------------------------------------------------


def backend_split(view: AppView, app: str) -> dict[str, float]:
    """Backend Service -> share of the app's requests: HTTPRoute weights, else Service `<app>`."""
    if view.route is None:
        return {app: 1.0}
    total = sum(b.weight for b in view.route.backends)
    if total <= 0:
        return {}  # every weight 0: Gateway API answers 500, handled by the caller
    split: dict[str, float] = {}
    for b in view.route.backends:
        if b.weight > 0:
            split[b.service] = split.get(b.service, 0.0) + b.weight / total
    return split


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def service_answers(service: Service | None, pods: Iterable[Pod]) -> dict[Answer, float]:
    """Share per answerer among a Service's Ready pods (so versions share by Ready pod count)."""
    if service is None or not service.selector:
        return {Answer(Track(UNKNOWN, UNKNOWN), served=False): 1.0}
    counts: dict[Track, int] = {}
    for pod in pods:
        if pod.ready and selects(service.selector, pod.labels):
            counts[pod.answerer] = counts.get(pod.answerer, 0) + 1
    total = sum(counts.values())
    if total == 0:
        sel = service.selector  # name the unserved traffic after whom the Service was meant for
        unserved = Track(sel.get(VERSION_LABEL, UNKNOWN), sel.get(TRACK_LABEL, UNKNOWN))
        return {Answer(unserved, served=False): 1.0}
    return {Answer(t): n / total for t, n in counts.items()}


def region_split(view: AppView | None, app: str) -> dict[Answer, float]:
    """Share of one region's requests of `app` per answerer; {} when the app is not deployed."""
    if view is None or (view.route is None and app not in view.services):
        return {}
    backends = backend_split(view, app)
    if not backends:
        return {Answer(Track(UNKNOWN, UNKNOWN), served=False): 1.0}
    split: dict[Answer, float] = {}
    for service, share in backends.items():
        for answer, fraction in service_answers(view.services.get(service), view.pods).items():
            split[answer] = split.get(answer, 0.0) + share * fraction
    return split


def plan(
    apps: Iterable[AppSpec],
    regions: Iterable[RegionSpec],
    global_weights: Mapping[str, Mapping[str, float]],
    views: Mapping[str, Mapping[str, AppView | None]],
) -> RatePlan:
    """Requests per second per (region, app, answerer) from every read gathered in one poll.

    global_weights: app -> region -> DNS weight; views: region -> app -> what the cluster shows.
    """
    regions = list(regions)
    shares = {r.name: r.traffic_share for r in regions}
    rates: RatePlan = {}
    for app in apps:
        per_region = region_rates(app.rate_rps, shares, global_weights.get(app.name, {}))
        for region, rate in per_region.items():
            if rate <= 0:
                continue
            for answer, share in region_split(views.get(region, {}).get(app.name), app.name).items():
                rates[(region, app.name, answer)] = rate * share
    return rates


# --- Kubernetes objects -> value types (pure, so tested with plain dicts) --------------------


def parse_route(obj: Mapping[str, Any]) -> Route:
    namespace = (obj.get("metadata") or {}).get("namespace")
    rules = (obj.get("spec") or {}).get("rules") or []
    refs = (rules[0].get("backendRefs") or []) if rules else []
    backends = []
    for ref in refs:
        if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", "core"):
            continue
        if ref.get("namespace") not in (None, namespace):
            continue  # cross-namespace backends are outside the app's namespace: not simulated
        backends.append(BackendRef(ref["name"], int(ref.get("weight", 1))))
    return Route(tuple(backends))


def parse_service(obj: Mapping[str, Any]) -> Service:
    spec = obj.get("spec") or {}
    return Service(obj["metadata"]["name"], dict(spec["selector"]) if spec.get("selector") else None)


def parse_pod(obj: Mapping[str, Any]) -> Pod:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    ready = (
        not meta.get("deletionTimestamp")  # terminating pods leave the endpoints at once
        and status.get("phase") == "Running"
        and any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    )
    return Pod(dict(meta.get("labels") or {}), bool(ready))


def app_view(
    app: str, routes: Iterable[Mapping[str, Any]], services: Iterable[Mapping[str, Any]], pods: Iterable[Pod]
) -> AppView | None:
    """Assemble one app's view from its namespace's listed objects; None if it is not deployed."""
    route = next((parse_route(r) for r in routes if r["metadata"]["name"] == app), None)
    svc = {s.name: s for s in map(parse_service, services)}
    if route is None and app not in svc:
        return None
    return AppView(route, svc, tuple(pods))


def present_answerers(view: AppView | None, app: str) -> set[Track]:
    """Versions with Ready pods behind the app's Services (they report memory even without traffic)."""
    if view is None:
        return set()
    names = {app} | ({b.service for b in view.route.backends} if view.route else set())
    tracks: set[Track] = set()
    for name in names:
        svc = view.services.get(name)
        if svc is None or not svc.selector:
            continue
        tracks |= {p.answerer for p in view.pods if p.ready and selects(svc.selector, p.labels)}
    return tracks

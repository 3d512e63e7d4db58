"""Where the simulator learns the live weights: the clusters (KubeSource) or a static table for
development without clusters (StaticSource). Both hand out frozen `Topology` snapshots."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from .model import TRACK_LABEL, VERSION_LABEL, AppSpec, AppView, BackendRef, Pod, RegionSpec, Route, Service
from .routing import app_view, parse_dns_weights, parse_pod

log = structlog.get_logger(__name__)

DNS_GROUP, DNS_VERSION, DNS_PLURAL = "externaldns.k8s.io", "v1alpha1", "dnsendpoints"
ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
GLOBAL_NAMESPACE = "rollout-system"


@dataclass(frozen=True)
class Topology:
    """Every read the planner needs: app -> region -> DNS weight; region -> app -> view."""

    global_weights: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    views: Mapping[str, Mapping[str, AppView | None]] = field(default_factory=dict)
    read_at: Mapping[str, float] = field(default_factory=dict)  # cluster -> monotonic time of last good read


class TopologySource(Protocol):
    def snapshot(self) -> Topology: ...

    def close(self) -> None: ...


# --- static ---------------------------------------------------------------------------------


class StaticSource:
    """A hand-set table: {"weights": {app: {region: w}}, "regions": {region: {app: [
    {"version": v, "track": t, "weight": w}, ...]}}}. Each entry becomes a route backend with one
    Ready pod, so the same routing math applies."""

    def __init__(self, table: Mapping[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._topology = Topology()
        self.set(table or {})

    def set(self, table: Mapping[str, Any]) -> None:
        views = {
            region: {app: _static_view(app, entries) for app, entries in apps.items()}
            for region, apps in (table.get("regions") or {}).items()
        }
        weights = {app: {r: float(w) for r, w in ws.items()} for app, ws in (table.get("weights") or {}).items()}
        with self._lock:
            self._topology = Topology(weights, views, {})

    def snapshot(self) -> Topology:
        with self._lock:
            return self._topology

    def close(self) -> None:
        pass


def _static_view(app: str, entries: Sequence[Mapping[str, Any]]) -> AppView:
    backends, services, pods = [], {}, []
    for e in entries:
        name = f"{app}-{e['track']}-{e['version']}"
        selector = {"app.kubernetes.io/name": app, VERSION_LABEL: e["version"], TRACK_LABEL: e["track"]}
        backends.append(BackendRef(name, int(e.get("weight", 1))))
        services[name] = Service(name, selector)
        pods.append(Pod(dict(selector), True))
    return AppView(Route(tuple(backends)), services, tuple(pods))


# --- clusters -------------------------------------------------------------------------------


class KubeSource:
    """Polls each region's API server and the home cluster every `poll_s` (one thread each).

    A failed read keeps the last good view of that cluster (and logs), so a slow API server
    freezes its region's weights instead of dropping its traffic.
    """

    def __init__(
        self,
        kubeconfig: Path,
        regions: Sequence[RegionSpec],
        home_context: str,
        apps: Callable[[], Sequence[AppSpec]],
        poll_s: float = 0.25,
    ) -> None:
        self._kubeconfig, self._regions, self._home = kubeconfig, list(regions), home_context
        self._apps, self._poll_s = apps, poll_s
        self._lock = threading.Lock()
        self._views: dict[str, dict[str, AppView | None]] = {}
        self._weights: dict[str, dict[str, float]] = {}
        self._read_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(r.context, self._read_region, r.name), daemon=True)
            for r in self._regions
        ]
        self._threads.append(
            threading.Thread(target=self._loop, args=(home_context, self._read_home, "home"), daemon=True)
        )
        for t in self._threads:
            t.start()

    def snapshot(self) -> Topology:
        with self._lock:
            return Topology(
                {a: dict(w) for a, w in self._weights.items()},
                {r: dict(v) for r, v in self._views.items()},
                dict(self._read_at),
            )

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def _loop(self, context: str, read: Callable[[Any, str], None], key: str) -> None:
        from kubernetes import config as kconfig

        api = None
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if api is None:
                    api = kconfig.new_client_from_config(config_file=str(self._kubeconfig), context=context)
                read(api, key)
                with self._lock:
                    self._read_at[key] = time.monotonic()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - one cluster's error must not stop the others
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("simulator.read_failed", cluster=key, context=context, error=str(exc)[:300])
            self._stop.wait(max(0.0, self._poll_s - (time.monotonic() - started)))

    def _read_region(self, api: Any, region: str) -> None:
        # Three cluster-wide lists per poll, whatever the number of apps: cheaper than per namespace.
        apps = list(self._apps())
        routes = _by_namespace(_list(api, f"/apis/{ROUTE_GROUP}/{ROUTE_VERSION}/{ROUTE_PLURAL}", missing_ok=True))
        services = _by_namespace(_list(api, "/api/v1/services"))
        pods = {ns: [parse_pod(p) for p in items] for ns, items in _by_namespace(_list(api, "/api/v1/pods")).items()}
        views = {
            a.name: app_view(
                a.name, routes.get(a.namespace, []), services.get(a.namespace, []), pods.get(a.namespace, [])
            )
            for a in apps
        }
        with self._lock:
            self._views[region] = views

    def _read_home(self, api: Any, _key: str) -> None:
        names = [r.name for r in self._regions]
        endpoints = {
            e["metadata"]["name"]: e
            for e in _list(
                api,
                f"/apis/{DNS_GROUP}/{DNS_VERSION}/namespaces/{GLOBAL_NAMESPACE}/{DNS_PLURAL}",
                missing_ok=True,
            )
        }
        weights = {a.name: parse_dns_weights(endpoints.get(a.name), names) for a in self._apps()}
        with self._lock:
            self._weights = weights


def _by_namespace(items: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for item in items:
        out.setdefault(item["metadata"].get("namespace", ""), []).append(item)
    return out


class KubeReadError(RuntimeError):
    """An API server answered a read with an error status."""


def _list(api: Any, path: str, missing_ok: bool = False) -> list[Any]:
    """GET a list as raw JSON: the client's model classes cost more CPU than the API server does."""
    method, url, headers, body, post = api.param_serialize(
        "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    resp = api.call_api(method, url, header_params=headers, body=body, post_params=post, _request_timeout=2.0)
    data = resp.read()
    if resp.status == 404 and missing_ok:
        return []  # CRD not installed: nothing routes through it
    if resp.status >= 400:
        raise KubeReadError(f"GET {path}: {resp.status} {data[:200]!r}")
    return list(json.loads(data).get("items") or [])

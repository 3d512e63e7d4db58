"""The lab's traffic: a real Prometheus scrapes the simulator, which routes by the live weights in
real API servers (HTTPRoute per region, DNSEndpoint in `home`), as docs/conventions.md says.

Figures are printed (run with -s) so the lab's closing note can quote them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as kconfig

from deploy.lab import prometheus as prom
from deploy.lab.services import ServicesHandle
from deploy.lab.simulator import process as simulator_process
from deploy.lab.simulator.client import SimulatorClient
from deploy.lab.simulator.model import AppSpec, FaultProfile, RegionSpec
from deploy.lab.simulator.routing import parse_pod
from deploy.lab.simulator.server import SimulatorConfig
from tests.fixtures.traffic import PromQuery, wait_until

pytestmark = pytest.mark.integration

APP = "weblab"
STABLE_V, CANARY_V = "1.0.0", "1.1.0"
TARGET_REGION_RPS = 100.0  # requests per second the busiest test region should see
# Timing is measured, not asserted tight: on a shared 2-core machine a bound is SLACK times the
# design figure (two scrapes to show a weight change, three to drain), and the measured figure is
# printed beside it; the exact figures live in bench/.
SLACK = 5


def per_second(prometheus: PromQuery, selector: str) -> float:
    """Requests per second over the last scrape interval (irate uses the last two samples)."""
    return prometheus.scalar(f"sum(irate(http_requests_total{{{selector}}}[10s]))") or 0.0


def counter(prometheus: PromQuery, selector: str) -> float:
    return prometheus.scalar(f"sum(http_requests_total{{{selector}}})") or 0.0


# --- Kubernetes objects -----------------------------------------------------------------------


def labels(version: str, track: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/managed-by": "regional-rollout",
        "rollout.dev/track": track,
    }


def deployment(name: str, version: str, track: str, replicas: int) -> dict[str, Any]:
    lbl = labels(version, track)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": lbl},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": APP, "rollout.dev/track": track}},
            "template": {
                "metadata": {"labels": lbl},
                "spec": {"containers": [{"name": "app", "image": f"registry.example.com/{APP}:{version}"}]},
            },
        },
    }


def service(name: str, track: str | None) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": APP, **({"rollout.dev/track": track} if track else {})}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def httproute(stable: int, canary: int) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": APP},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": f"{APP}-stable", "port": 80, "weight": stable},
                        {"name": f"{APP}-canary", "port": 80, "weight": canary},
                    ]
                }
            ]
        },
    }


def dns_endpoint(weights: dict[str, int]) -> dict[str, Any]:
    return {
        "apiVersion": "externaldns.k8s.io/v1alpha1",
        "kind": "DNSEndpoint",
        "metadata": {"name": APP},
        "spec": {
            "endpoints": [
                {
                    "dnsName": f"{APP}.global.example.com",
                    "recordType": "CNAME",
                    "targets": [f"{APP}.{region}.example.com"],
                    "setIdentifier": region,
                    "providerSpecific": [{"name": "aws/weight", "value": str(w)}],
                }
                for region, w in weights.items()
            ]
        },
    }


ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"
DNS = "/apis/externaldns.k8s.io/v1alpha1/namespaces/rollout-system/dnsendpoints"


@dataclass
class Cluster:
    """Raw JSON REST on one lab cluster (plain dicts, exactly as the conventions doc writes them)."""

    api: Any

    @classmethod
    def connect(cls, kubeconfig: Path, context: str) -> Cluster:
        return cls(kconfig.new_client_from_config(config_file=str(kubeconfig), context=context))

    def request(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (), merge: bool = False
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if merge:
            headers["Content-Type"] = "application/merge-patch+json"
        m, url, hdrs, data, post = self.api.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        resp = self.api.call_api(m, url, header_params=hdrs, body=data, post_params=post, _request_timeout=10)
        raw = resp.read()
        if resp.status >= 400 and resp.status not in ok:
            raise AssertionError(f"{method} {path}: {resp.status} {raw[:500]!r}")
        return dict(json.loads(raw)) if raw else {}

    def create(self, path: str, body: dict[str, Any]) -> None:
        self.request("POST", path, body)

    def ensure_namespace(self, ns: str) -> None:
        self.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}}, ok=(409,))

    def delete_namespace(self, ns: str) -> None:
        self.request("DELETE", f"/api/v1/namespaces/{ns}", ok=(404,))

    def apply_app(self, ns: str, canary: bool) -> None:
        self.create(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment(APP, STABLE_V, "stable", 2))
        self.create(f"/api/v1/namespaces/{ns}/services", service(APP, None))
        if canary:
            self.create(
                f"/apis/apps/v1/namespaces/{ns}/deployments",
                deployment(f"{APP}-canary", CANARY_V, "canary", 2),
            )
            self.create(f"/api/v1/namespaces/{ns}/services", service(f"{APP}-stable", "stable"))
            self.create(f"/api/v1/namespaces/{ns}/services", service(f"{APP}-canary", "canary"))
            self.create(ROUTES.format(ns=ns), httproute(100, 0))

    def set_route(self, ns: str, stable: int, canary: int) -> None:
        patch = {"spec": httproute(stable, canary)["spec"]}
        self.request("PATCH", f"{ROUTES.format(ns=ns)}/{APP}", patch, merge=True)

    def set_dns(self, weights: dict[str, int]) -> None:
        body = dns_endpoint(weights)
        if self.request("POST", DNS, body, ok=(409,)).get("code") == 409:
            self.request("PATCH", f"{DNS}/{APP}", {"spec": body["spec"]}, merge=True)

    def delete_dns(self) -> None:
        self.request("DELETE", f"{DNS}/{APP}", ok=(404,))

    def ready_pods(self, ns: str) -> int:
        pods = self.request("GET", f"/api/v1/namespaces/{ns}/pods").get("items") or []
        return sum(1 for p in pods if parse_pod(p).ready)


# --- fixtures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    namespace: str
    regions: list[RegionSpec]  # where the app runs, busiest first
    clusters: dict[str, Cluster]
    home: Cluster


def _all_ready(cluster: Cluster, ns: str, n: int) -> bool:
    return cluster.ready_pods(ns) >= n


def _app_rate(all_regions: tuple[RegionSpec, ...], busiest: RegionSpec) -> float:
    total_share = sum(r.traffic_share for r in all_regions)
    return TARGET_REGION_RPS * total_share / busiest.traffic_share


@pytest.fixture(scope="module")
def deployed(lab: Any, lab_traffic: ServicesHandle) -> Iterator[Deployed]:
    """App `weblab` in the two busiest lab regions: stable + canary with an HTTPRoute (100/0)."""
    regions = sorted(lab_traffic.regions, key=lambda r: -r.traffic_share)[:2]
    ns = f"{APP}-{uuid.uuid4().hex[:6]}"
    clusters = {r.name: Cluster.connect(lab.kubeconfig, r.context) for r in regions}
    home = Cluster.connect(lab.kubeconfig, lab.home_context)
    home.ensure_namespace("rollout-system")
    home.delete_dns()  # no DNSEndpoint: every region at weight 100
    for c in clusters.values():
        c.ensure_namespace(ns)
        c.apply_app(ns, canary=True)
    for name, c in clusters.items():
        wait_until(partial(_all_ready, c, ns, 4), 120, 0.25, f"4 Ready pods in {name}")
    try:
        yield Deployed(ns, regions, clusters, home)
    finally:
        home.delete_dns()
        for c in clusters.values():
            c.delete_namespace(ns)


@pytest.fixture
def weblab(deployed: Deployed, simulator: SimulatorClient, lab_traffic: ServicesHandle) -> Deployed:
    """The simulator sends `weblab` traffic (on top of the session's apps) for this test."""
    rate = _app_rate(lab_traffic.regions, deployed.regions[0])
    simulator.set_apps([*simulator.apps(), AppSpec(APP, deployed.namespace, rate)])
    return deployed


# --- tests against the lab --------------------------------------------------------------------


def test_httproute_weight_change_shows_in_prometheus_within_two_scrapes(
    weblab: Deployed, prometheus: PromQuery
) -> None:
    region, cluster = weblab.regions[0].name, weblab.clusters[weblab.regions[0].name]
    sel = f'app="{APP}",region="{region}"'
    cluster.set_route(weblab.namespace, 100, 0)
    wait_until(lambda: per_second(prometheus, f'{sel},track="stable"') > 0.5 * TARGET_REGION_RPS, 30, 0.1,
               "stable traffic in Prometheus")  # fmt: skip
    wait_until(lambda: per_second(prometheus, f'{sel},track="canary"') == 0, 30, 0.1, "no canary traffic")
    canary_before = counter(prometheus, f'{sel},track="canary"')

    interval = prometheus.scrape_interval_s
    t0 = time.monotonic()  # from the write, as the controller would see it
    cluster.set_route(weblab.namespace, 50, 50)
    wait_until(lambda: counter(prometheus, f'{sel},track="canary"') > canary_before, SLACK * 2 * interval + 5, 0.05,
               "canary requests in Prometheus")  # fmt: skip
    visible = time.monotonic() - t0

    def canary_share() -> float:
        return per_second(prometheus, f'{sel},track="canary"') / max(per_second(prometheus, sel), 1e-9)

    wait_until(lambda: abs(canary_share() - 0.5) < 0.05, 15, 0.05, "a 50/50 split over one scrape")
    settled = time.monotonic() - t0
    print(f"\nHTTPRoute 100/0 -> 50/50: canary visible after {visible:.2f}s (design: {2 * interval:g}s), "
          f"full split after {settled:.2f}s")  # fmt: skip
    assert visible <= SLACK * 2 * interval, f"weight change took {visible:.2f}s to show (scrape interval {interval}s)"


def test_drain_moves_a_region_s_traffic_to_the_others_within_three_scrapes(
    weblab: Deployed, prometheus: PromQuery, lab_traffic: ServicesHandle
) -> None:
    drained, other = weblab.regions[0].name, weblab.regions[1].name
    for c in weblab.clusters.values():
        c.set_route(weblab.namespace, 100, 0)
    weblab.home.set_dns({r.name: 100 for r in weblab.regions})
    before, _ = wait_until(lambda: per_second(prometheus, f'app="{APP}",region="{drained}"'), 30, 0.1,
                           "traffic in the region to drain")  # fmt: skip
    other_before = per_second(prometheus, f'app="{APP}",region="{other}"')
    assert other_before > 0

    interval = prometheus.scrape_interval_s
    t0 = time.monotonic()
    weblab.home.set_dns({drained: 0, other: 100})
    wait_until(lambda: per_second(prometheus, f'app="{APP}",region="{drained}"') <= 0.01 * before,
               SLACK * 3 * interval + 5, 0.05, "99% of the drained region's traffic gone")  # fmt: skip
    took = time.monotonic() - t0
    print(f"\ndrain of {drained} ({before:.0f} rps): >= 99% moved after {took:.2f}s (design: {3 * interval:g}s)")
    assert took <= SLACK * 3 * interval, f"drain took {took:.2f}s (scrape interval {interval}s)"
    # Its users went to the other regions (share_j / (S - share_drained) each, S over all regions).
    shares = {r.name: r.traffic_share for r in lab_traffic.regions}
    total = sum(shares.values())
    expected = other_before * total / (total - shares[drained])
    absorbed, _ = wait_until(
        lambda: abs(per_second(prometheus, f'app="{APP}",region="{other}"') / expected - 1) < 0.05 or None,
        30, 0.05, f"{other} absorbing the drained share ({expected:.1f} rps)",
    )  # fmt: skip
    weblab.home.delete_dns()


def test_error_ratio_fault_shows_in_the_error_metric(
    weblab: Deployed, simulator: SimulatorClient, prometheus: PromQuery
) -> None:
    region = weblab.regions[0].name
    weblab.clusters[region].set_route(weblab.namespace, 50, 50)
    simulator.set_fault(APP, CANARY_V, FaultProfile(error_ratio=0.3))
    sel = f'app="{APP}",region="{region}",version="{CANARY_V}"'

    def canary_error_ratio() -> float | None:
        total = per_second(prometheus, sel)
        return per_second(prometheus, f'{sel},code="500"') / total if total else None

    wait_until(lambda: abs((canary_error_ratio() or 0) - 0.3) < 0.05, 15, 0.1, "canary error ratio 0.3")
    assert per_second(prometheus, f'app="{APP}",region="{region}",version="{STABLE_V}",code="500"') == 0


# --- the simulator scraped by Prometheus, without clusters (static weights) ----------------------


STATIC_REGIONS = [RegionSpec("a", "a", 0.6), RegionSpec("b", "b", 0.4)]


def static_table(canary_weight: int, weights: dict[str, int] | None = None) -> dict[str, Any]:
    split = [
        {"version": STABLE_V, "track": "stable", "weight": 100 - canary_weight},
        {"version": CANARY_V, "track": "canary", "weight": canary_weight},
    ]
    return {"weights": {APP: weights or {}}, "regions": {r.name: {APP: split} for r in STATIC_REGIONS}}


@pytest.fixture(scope="module")
def static_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatorClient, PromQuery]]:
    state = tmp_path_factory.mktemp("static-traffic")
    config = SimulatorConfig(
        regions=STATIC_REGIONS,
        apps=[AppSpec(APP, rate_rps=200)],
        source="static",
        static=static_table(0),
        seed=1,
    )
    sim = simulator_process.start(config, state)
    handle = None
    try:
        handle = prom.start(state, prom.PrometheusConfig(scrape_interval_s=1.0), targets={"simulator": [sim.target]})
        prom.wait_for_target(handle, "simulator")
        yield sim.client(), PromQuery(handle.url, 1.0)
    finally:
        if handle:
            prom.stop(handle)
        simulator_process.stop(sim)


def test_static_weights_scraped_by_real_prometheus(static_lab: tuple[SimulatorClient, PromQuery]) -> None:
    client, prometheus = static_lab
    client.set_static(static_table(0))
    wait_until(lambda: per_second(prometheus, 'region="a"') > 100, 15, 0.1, "traffic in a")
    before = counter(prometheus, 'track="canary"')
    client.set_static(static_table(20))
    interval = prometheus.scrape_interval_s
    _, visible = wait_until(
        lambda: counter(prometheus, 'track="canary"') > before, SLACK * 2 * interval + 5, 0.05, "canary traffic"
    )
    assert visible <= SLACK * 2 * interval, f"weight change took {visible:.2f}s to show (scrape interval {interval}s)"

    a_before = per_second(prometheus, 'region="a"')
    client.set_static(static_table(20, {"a": 0}))
    _, took = wait_until(
        lambda: per_second(prometheus, 'region="a"') <= 0.01 * a_before, SLACK * 3 * interval + 5, 0.05, "drain of a"
    )
    assert took <= SLACK * 3 * interval, f"drain took {took:.2f}s (scrape interval {interval}s)"
    # b absorbs a's share: all 200 rps (the deterministic counts make this exact per scrape).
    wait_until(lambda: abs(per_second(prometheus, 'region="b"') - 200) < 10, 30, 0.05, "b at 200 rps")
    print(f"\nstatic: weight change visible after {visible:.2f}s (design: {2 * interval:g}s), "
          f"drain to 99% after {took:.2f}s (design: {3 * interval:g}s)")  # fmt: skip


def test_static_faults_show_in_errors_latency_and_memory(
    static_lab: tuple[SimulatorClient, PromQuery],
) -> None:
    client, prometheus = static_lab
    client.set_static(static_table(50))
    client.set_fault(
        APP, CANARY_V, FaultProfile(error_ratio=0.25, extra_latency_ms=200, memory_growth_bytes_per_min=6e6)
    )
    try:
        sel = f'version="{CANARY_V}"'

        def error_ratio() -> float:
            return per_second(prometheus, f'{sel},code="500"') / max(per_second(prometheus, sel), 1e-9)

        wait_until(lambda: abs(error_ratio() - 0.25) < 0.03, 15, 0.1, "canary error ratio 0.25")
        assert per_second(prometheus, f'version="{STABLE_V}",code="500"') == 0
        p99 = f"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{sel}}}[3s])))"
        wait_until(lambda: (prometheus.scalar(p99) or 0) > 0.2, 15, 0.1, "canary p99 above 200 ms")
        stable_p99 = prometheus.scalar(p99.replace(CANARY_V, STABLE_V)) or 0
        assert 0 < stable_p99 < 0.1
        mem = f"max(app_memory_bytes{{{sel}}})"
        first = prometheus.scalar(mem) or 0
        wait_until(lambda: (prometheus.scalar(mem) or 0) > first + 50_000, 10, 0.1, "memory growing")
    finally:
        client.clear_faults()

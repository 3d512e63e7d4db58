"""The three strategies against the lab's real API server (KWOK pods), Prometheus and simulator.

Every wait is a condition with a deadline (the runner's, or `wait_until`); nothing sleeps a fixed
time. Durations go to the `timings` table (printed at the end of the session).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from kubernetes import client

from config.schema import CanaryStep
from deploy.lab.simulator.model import AppSpec
from regions.analysis.model import Verdict
from strategies import driver
from strategies.cluster import KubernetesCluster
from strategies.model import Commands, Phase, RegionRollout, SetWeights, StrategyStatus
from tests.fixtures.traffic import wait_until
from tests.unit.strategies.helpers import broken, rollout, run_until_settled

from .conftest import REGION

pytestmark = pytest.mark.integration

DEADLINE = timedelta(seconds=15)
RUN_TIMEOUT = 180.0
V1, V2 = "1.0.0", "1.1.0"


# --- helpers ------------------------------------------------------------------------------------


def make(app: str, ns: str, **strategy: Any) -> RegionRollout:
    return rollout(app, REGION, namespace=ns, progress_deadline=DEADLINE, **strategy)


def first_of(r: RegionRollout) -> RegionRollout:
    return replace(r, release=r.previous, previous=None, canary_release=None)


def drive(
    cluster: KubernetesCluster,
    r: RegionRollout,
    status: StrategyStatus | None = None,
    *,
    verdict: Verdict | None = Verdict.SUCCESS,
    commands: Any = None,
    stop: Any = None,
    trace: list[int] | None = None,
) -> StrategyStatus:
    def record(result: Any) -> None:
        if trace is not None:
            trace.extend(a.weight for a in result.decision.actions if isinstance(a, SetWeights))

    while True:  # through the pauses the commands promote
        status = run_until_settled(
            cluster,
            r,
            status,
            timeout=RUN_TIMEOUT,
            max_wait=0.5,
            stop=stop,
            analysis=lambda req: verdict,
            commands=commands,
            on_pass=record,
        )
        if (
            status.phase is not Phase.PAUSED
            or commands is None
            or not commands(status).promote
            or (stop is not None and stop(status))
        ):
            return status


def live(cluster: KubernetesCluster, r: RegionRollout) -> None:
    status = drive(cluster, first_of(r))
    assert status.phase is Phase.SUCCEEDED, status


def pods(cluster: KubernetesCluster, ns: str, app: str) -> list[tuple[str, str, bool]]:
    """(version, track, ready) of the app's pods that are not terminating."""
    out = []
    for p in (
        client.CoreV1Api(cluster.api_client)
        .list_namespaced_pod(ns, label_selector=f"app.kubernetes.io/name={app}")
        .items
    ):
        if p.metadata.deletion_timestamp:
            continue
        ready = any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        labels = p.metadata.labels or {}
        out.append((labels.get("app.kubernetes.io/version", ""), labels.get("rollout.dev/track", ""), ready))
    return sorted(out)


def ready_versions(cluster: KubernetesCluster, ns: str, app: str) -> set[str]:
    return {v for v, _, ready in pods(cluster, ns, app) if ready}


def deployment(cluster: KubernetesCluster, ns: str, name: str) -> Any:
    return client.AppsV1Api(cluster.api_client).read_namespaced_deployment(name, ns)


def route_weights(cluster: KubernetesCluster, ns: str, app: str) -> dict[str, int]:
    obj = client.CustomObjectsApi(cluster.api_client).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", app
    )
    return {b["name"]: b.get("weight", 1) for b in obj["spec"]["rules"][0]["backendRefs"]}


def service_color(cluster: KubernetesCluster, ns: str, name: str) -> str | None:
    svc = client.CoreV1Api(cluster.api_client).read_namespaced_service(name, ns)
    return (svc.spec.selector or {}).get("rollout.dev/color")


def simulate(simulator: Any, app: str, ns: str) -> None:
    simulator.set_apps([AppSpec(app, namespace=ns, rate_rps=100.0)])


def shares(prometheus: Any, app: str) -> dict[tuple[str, str], float]:
    """Share of the app's served requests in the region per (version, track), over the last 3 s."""
    rows = prometheus.query(
        f'sum by (version, track) (rate(http_requests_total{{app="{app}",region="{REGION}",code!~"5.."}}[3s]))'
    )
    values = {(r["metric"].get("version", ""), r["metric"].get("track", "")): float(r["value"][1]) for r in rows}
    total = sum(values.values())
    return {k: v / total for k, v in values.items() if v > 0} if total > 0 else {}


def seen(
    prometheus: Any, app: str, expect: dict[tuple[str, str], float], tol: float = 0.08, timeout: float = 40.0
) -> float:
    """Wait until Prometheus shows the expected traffic shares; return the seconds it took."""

    def probe() -> bool:
        got = shares(prometheus, app)
        return bool(got) and set(got) <= set(expect) and all(abs(got.get(k, 0) - v) <= tol for k, v in expect.items())

    _, took = wait_until(probe, timeout, 0.5, f"traffic shares {expect} (last {shares(prometheus, app)})")
    return took


# --- rolling ------------------------------------------------------------------------------------


def test_rolling_success(region: Any, timings: Any, stopwatch: Any) -> None:
    new_cluster, ns = region
    cluster, r = new_cluster(), make("catalog", ns)
    live(cluster, r)
    started = stopwatch()
    status = drive(cluster, r)
    assert status.phase is Phase.SUCCEEDED, status
    assert {v for v, _, _ in pods(cluster, ns, "catalog")} == {V2} and ready_versions(cluster, ns, "catalog") == {V2}
    dep = deployment(cluster, ns, "catalog")
    assert dep.spec.strategy.rolling_update.max_surge == "25%" and dep.spec.progress_deadline_seconds == 15
    assert dep.metadata.labels["rollout.dev/release"] == "222222222222"
    timings.record("rolling: success (2 replicas)", status.phase.value, stopwatch() - started)
    # idempotent: the same step again against the cluster in that state writes nothing
    before = cluster.writes
    again = driver.drive(cluster, r, replace(status, phase=Phase.PROGRESSING, step=0), status.finished_at)
    assert again.writes == 0 and cluster.writes == before and again.status.phase is Phase.SUCCEEDED


def test_rolling_never_ready_is_caught_by_the_progress_deadline(region: Any, timings: Any, stopwatch: Any) -> None:
    new_cluster, ns = region
    cluster, r = new_cluster(), make("catalog", ns)
    live(cluster, r)
    started = stopwatch()
    status = drive(cluster, broken(r))
    assert status.phase is Phase.ROLLED_BACK and status.reason == "ProgressDeadlineExceeded", status
    wait_until(
        lambda: (
            ready_versions(cluster, ns, "catalog") == {V1} and {v for v, _, _ in pods(cluster, ns, "catalog")} == {V1}
        ),
        60,
        0.5,
        "only v1 pods",
    )
    timings.record(
        "rolling: never-ready v2 (deadline 15 s)", f"{status.phase.value} ({status.reason})", stopwatch() - started
    )


def test_rolling_rollback_mid_rollout(region: Any, timings: Any, stopwatch: Any) -> None:
    new_cluster, ns = region
    cluster, r = new_cluster(), make("catalog", ns)
    live(cluster, r)
    started = stopwatch()
    status = drive(cluster, r, stop=lambda s: s.phase is Phase.PROGRESSING)  # v2 applied, rolling
    assert status.step_name == "apply"
    status = drive(cluster, r, status, commands=lambda s: Commands(abort="responder"))
    assert status.phase is Phase.ROLLED_BACK, status
    wait_until(lambda: {v for v, _, _ in pods(cluster, ns, "catalog")} == {V1}, 60, 0.5, "only v1 pods")
    timings.record("rolling: rollback from step apply", status.phase.value, stopwatch() - started)


# --- canary -------------------------------------------------------------------------------------

STEPS = [
    CanaryStep(setWeight=20),
    CanaryStep(pause={}),
    CanaryStep(setWeight=60),
    CanaryStep(pause={"duration": "2s"}),
    CanaryStep(analysis={}),
]
CANARY_STEP_NAMES = [
    "setWeight 20",
    "pause#1",
    "setWeight 60",
    "pause#3",
    "analysis#4",
    "setWeight 100 (promotion)",
    "promoteStable",
    "shiftToStable",
    "scaleDownCanary",
]


def test_canary_success_with_weights_seen_in_prometheus(
    region: Any, prometheus: Any, simulator: Any, timings: Any, stopwatch: Any
) -> None:
    new_cluster, ns = region
    cluster, r = new_cluster(), make("checkout", ns, steps=STEPS)
    simulate(simulator, "checkout", ns)
    live(cluster, r)
    seen(prometheus, "checkout", {(V1, "stable"): 1.0})
    started = stopwatch()
    trace: list[int] = []
    status = drive(cluster, r, trace=trace)
    assert status.phase is Phase.PAUSED and status.step == 1 and status.weight == 20, status
    assert route_weights(cluster, ns, "checkout") == {"checkout-stable": 80, "checkout-canary": 20}
    took20 = seen(prometheus, "checkout", {(V1, "stable"): 0.8, (V2, "canary"): 0.2})
    status = drive(
        cluster, r, status, trace=trace, commands=lambda s: Commands(promote=s.step == 1), stop=lambda s: s.step == 3
    )
    took60 = seen(prometheus, "checkout", {(V1, "stable"): 0.4, (V2, "canary"): 0.6})
    status = drive(cluster, r, status, trace=trace)
    assert status.phase is Phase.SUCCEEDED, status
    assert trace == [20, 60, 100, 0]
    assert route_weights(cluster, ns, "checkout") == {"checkout-stable": 100, "checkout-canary": 0}
    assert deployment(cluster, ns, "checkout-canary").spec.replicas == 0
    wait_until(lambda: {v for v, _, _ in pods(cluster, ns, "checkout")} == {V2}, 60, 0.5, "only v2 pods")
    took_end = seen(prometheus, "checkout", {(V2, "stable"): 1.0})
    timings.record("canary (gatewayAPI): success, 5 plan steps + promotion", status.phase.value, stopwatch() - started)
    timings.record("canary: 20% in Prometheus (from step done)", "80/20 seen", took20)
    timings.record("canary: 60% in Prometheus (from step done)", "40/60 seen", took60)
    timings.record("canary: promotion visible in Prometheus", "100% v2 stable", took_end)


def test_canary_replica_router_success(
    region: Any, prometheus: Any, simulator: Any, timings: Any, stopwatch: Any
) -> None:
    new_cluster, ns = region
    r = make("checkout", ns, steps=[CanaryStep(setWeight=50), CanaryStep(pause={})], traffic_router="replicas")
    cluster = new_cluster()
    simulate(simulator, "checkout", ns)
    live(cluster, r)
    started = stopwatch()
    status = drive(cluster, r)
    assert status.phase is Phase.PAUSED and status.weight == 50
    took = seen(prometheus, "checkout", {(V1, "stable"): 0.5, (V2, "canary"): 0.5}, tol=0.1)
    status = drive(cluster, r, status, commands=lambda s: Commands(promote=s.phase is Phase.PAUSED))
    assert status.phase is Phase.SUCCEEDED, status
    wait_until(lambda: {v for v, _, _ in pods(cluster, ns, "checkout")} == {V2}, 60, 0.5, "only v2 pods")
    timings.record("canary (replicas): success, 1 pod each at 50%", status.phase.value, stopwatch() - started)
    timings.record("canary (replicas): 50% by pod ratio visible in Prometheus", "50/50 seen", took)


@pytest.mark.parametrize("at", range(len(CANARY_STEP_NAMES)), ids=CANARY_STEP_NAMES)
def test_canary_rollback_from_every_step(region: Any, timings: Any, stopwatch: Any, at: int) -> None:
    new_cluster, ns = region
    cluster, r = new_cluster(), make("checkout", ns, steps=STEPS)
    live(cluster, r)
    status = drive(
        cluster,
        r,
        stop=lambda s: s.step >= at,
        commands=lambda s: Commands(promote=s.phase is Phase.PAUSED and s.step < at),
    )
    assert status.step >= at and status.phase in (Phase.PROGRESSING, Phase.PAUSED), status
    started = stopwatch()
    trace: list[int] = []
    status = drive(cluster, r, status, trace=trace, commands=lambda s: Commands(abort="responder"))
    assert status.phase is Phase.ROLLED_BACK, status
    assert trace[:1] in ([], [0])  # a rollback's first traffic move is to weight 0
    assert route_weights(cluster, ns, "checkout")["checkout-canary"] == 0
    assert deployment(cluster, ns, "checkout-canary").spec.replicas == 0
    wait_until(
        lambda: (
            {v for v, _, _ in pods(cluster, ns, "checkout")} == {V1} and ready_versions(cluster, ns, "checkout") == {V1}
        ),
        60,
        0.5,
        "only v1 pods",
    )
    timings.record(
        f"canary: rollback from step {at} ({CANARY_STEP_NAMES[at]})", status.phase.value, stopwatch() - started
    )


def test_canary_never_ready_is_caught_and_gets_no_traffic(
    region: Any, prometheus: Any, simulator: Any, timings: Any, stopwatch: Any
) -> None:
    new_cluster, ns = region
    cluster, r = new_cluster(), make("checkout", ns, steps=STEPS)
    simulate(simulator, "checkout", ns)
    live(cluster, r)
    started = stopwatch()
    trace: list[int] = []
    status = drive(cluster, broken(r), trace=trace)
    assert status.phase is Phase.ROLLED_BACK and status.reason == "ProgressDeadlineExceeded", status
    assert set(trace) <= {0}
    seen(prometheus, "checkout", {(V1, "stable"): 1.0})
    timings.record(
        "canary: never-ready canary (deadline 15 s)", f"{status.phase.value} ({status.reason})", stopwatch() - started
    )


def test_canary_restart_mid_way_resumes_at_the_same_step(region: Any, timings: Any, stopwatch: Any) -> None:
    new_cluster, ns = region
    cluster, r = new_cluster(), make("checkout", ns, steps=STEPS)
    live(cluster, r)
    status = drive(cluster, r, commands=lambda s: Commands(promote=s.step == 1), stop=lambda s: s.step == 3)
    assert status.weight == 60
    stored = status.to_dict()
    del cluster, r, status  # a new controller process: only the stored status survives
    started = stopwatch()
    cluster, r = new_cluster(), make("checkout", ns, steps=STEPS)
    resumed = driver.drive(cluster, r, StrategyStatus.from_dict(stored), stored_now(stored))
    assert resumed.writes == 0 and cluster.writes == 0 and resumed.status.step >= 3
    trace: list[int] = []
    status = drive(cluster, r, resumed.status, trace=trace)
    assert status.phase is Phase.SUCCEEDED and trace == [100, 0], (status, trace)
    timings.record(
        "canary: restart at step 3 (60%), resume to success", f"{status.phase.value}, 0 rewrites", stopwatch() - started
    )


def stored_now(stored: dict[str, Any]) -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# --- blue/green ---------------------------------------------------------------------------------

BG_STEP_NAMES = ["deploy green", "prePromotionAnalysis", "switch to green", "scale down blue"]


def test_bluegreen_switch_and_switch_back_seen_in_prometheus(
    region: Any, prometheus: Any, simulator: Any, timings: Any, stopwatch: Any
) -> None:
    new_cluster, ns = region
    cluster, r = new_cluster(), make("search", ns, scale_down_delay=timedelta(minutes=5))
    simulate(simulator, "search", ns)
    live(cluster, r)
    seen(prometheus, "search", {(V1, "stable"): 1.0})
    started = stopwatch()
    status = drive(cluster, r, stop=lambda s: s.switched_at is not None)
    assert service_color(cluster, ns, "search") == "green" and service_color(cluster, ns, "search-preview") == "green"
    switch = seen(prometheus, "search", {(V2, "stable"): 1.0})
    timings.record("blue/green: deploy green, analysis, switch", "switched", stopwatch() - started)
    timings.record("blue/green: switch visible in Prometheus", "100% v2", switch)
    started = stopwatch()
    status = drive(cluster, r, status, commands=lambda s: Commands(abort="smoke window failed"))
    assert status.phase is Phase.ROLLED_BACK and service_color(cluster, ns, "search") == "blue", status
    back = seen(prometheus, "search", {(V1, "stable"): 1.0})
    assert deployment(cluster, ns, "search-green").spec.replicas == 0
    assert deployment(cluster, ns, "search-blue").spec.replicas == 2
    timings.record("blue/green: switch back inside the scale-down delay", status.phase.value, stopwatch() - started)
    timings.record("blue/green: switch-back visible in Prometheus", "100% v1", back)


def test_bluegreen_success_scales_old_colour_down(region: Any, timings: Any, stopwatch: Any) -> None:
    new_cluster, ns = region
    cluster, r = new_cluster(), make("search", ns, scale_down_delay=timedelta(seconds=3))
    live(cluster, r)
    started = stopwatch()
    status = drive(cluster, r)
    assert status.phase is Phase.SUCCEEDED, status
    assert deployment(cluster, ns, "search-blue").spec.replicas == 0
    wait_until(lambda: {v for v, _, _ in pods(cluster, ns, "search")} == {V2}, 60, 0.5, "only v2 pods")
    timings.record("blue/green: success incl. 3 s scale-down delay", status.phase.value, stopwatch() - started)


def test_bluegreen_never_ready_never_switches(region: Any, timings: Any, stopwatch: Any) -> None:
    new_cluster, ns = region
    cluster, r = new_cluster(), make("search", ns)
    live(cluster, r)
    started = stopwatch()
    status = drive(cluster, broken(r))
    assert status.phase is Phase.ROLLED_BACK and status.reason == "ProgressDeadlineExceeded", status
    assert service_color(cluster, ns, "search") == "blue"
    assert deployment(cluster, ns, "search-green").spec.replicas == 0
    timings.record(
        "blue/green: never-ready green (deadline 15 s)",
        f"{status.phase.value} ({status.reason})",
        stopwatch() - started,
    )


@pytest.mark.parametrize("at", range(len(BG_STEP_NAMES)), ids=BG_STEP_NAMES)
def test_bluegreen_rollback_from_every_step(region: Any, timings: Any, stopwatch: Any, at: int) -> None:
    new_cluster, ns = region
    cluster, r = new_cluster(), make("search", ns, scale_down_delay=timedelta(minutes=5))
    live(cluster, r)
    status = drive(cluster, r, stop=lambda s: s.step >= at, verdict=None if at == 1 else Verdict.SUCCESS)
    assert status.step == at, status
    started = stopwatch()
    status = drive(cluster, r, status, commands=lambda s: Commands(abort="responder"))
    assert status.phase is Phase.ROLLED_BACK, status
    assert service_color(cluster, ns, "search") == "blue"
    assert deployment(cluster, ns, "search-green").spec.replicas == 0
    assert deployment(cluster, ns, "search-blue").spec.replicas == 2
    timings.record(
        f"blue/green: rollback from step {at} ({BG_STEP_NAMES[at]})", status.phase.value, stopwatch() - started
    )

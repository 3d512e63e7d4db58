"""Canary: every step kind and phase transition, against the in-memory cluster and a manual clock."""

from dataclasses import replace
from datetime import timedelta

import pytest

from config.schema import CanaryStep
from regions.analysis.model import Verdict
from strategies import decide, driver
from strategies.fake import FakeCluster
from strategies.model import Commands, Phase, SetWeights, StrategyStatus
from strategies.routers import GatewayAPIRouter, ReplicaRouter

from .helpers import T0, Clock, broken, events, rollout, run_until_settled, world, writes

STEPS = [
    CanaryStep(setWeight=10),
    CanaryStep(analysis={"checks": ["error-ratio"]}),
    CanaryStep(setWeight=50),
    CanaryStep(pause={"duration": "30s"}),
    CanaryStep(pause={}),
    CanaryStep(analysis={}),
]
NAMES = [
    "setWeight 10",
    "analysis#1",
    "setWeight 50",
    "pause#3",
    "pause#4",
    "analysis#5",
    "setWeight 100 (promotion)",
    "promoteStable",
    "shiftToStable",
    "scaleDownCanary",
]


def make(router: str = "gatewayAPI", **kw):  # type: ignore[no-untyped-def]
    return rollout("checkout", steps=STEPS, traffic_router=router, **kw)


def deployed_previous(r):  # type: ignore[no-untyped-def]
    """A cluster where the previous release runs on the stable track (as its own canary left it)."""
    cluster, clock = FakeCluster(), Clock()
    first = replace(r, release=r.previous, previous=None, canary_release=None)
    assert run_until_settled(cluster, first, clock=clock, sleep=clock.sleep).phase is Phase.SUCCEEDED
    cluster.writes.clear()
    cluster.events.clear()
    return cluster, clock


def route_weights(cluster: FakeCluster) -> dict[str, int] | None:
    for ref, obj in cluster.objects.items():
        if ref.kind == "HTTPRoute":
            return {b["name"]: b["weight"] for b in obj["spec"]["rules"][0]["backendRefs"]}
    return None


def replicas(cluster: FakeCluster, name: str) -> int | None:
    for ref, obj in cluster.objects.items():
        if ref.kind == "Deployment" and ref.name == name:
            return int(obj["spec"]["replicas"])
    return None


def release_of(cluster: FakeCluster, name: str) -> str | None:
    for ref, obj in cluster.objects.items():
        if ref.kind == "Deployment" and ref.name == name:
            return str(obj["spec"]["template"]["metadata"]["labels"]["rollout.dev/release"])
    return None


def drive(cluster, r, clock, status=None, *, stop=None, analysis=Verdict.SUCCESS, commands=None):  # type: ignore[no-untyped-def]
    trace: list[tuple[str, int, dict | None]] = []

    def record(result):  # type: ignore[no-untyped-def]
        for a in result.decision.actions:
            if isinstance(a, SetWeights):
                trace.append((result.decision.status.step_name, a.weight, route_weights(cluster)))

    while True:  # keep going through pauses the commands promote
        status = run_until_settled(
            cluster,
            r,
            status,
            clock=clock,
            sleep=clock.sleep,
            stop=stop,
            analysis=lambda req: analysis,
            commands=commands,
            on_pass=record,
        )
        if (
            status.phase is not Phase.PAUSED
            or commands is None
            or not commands(status).promote
            or (stop is not None and stop(status))
        ):
            return status, trace


@pytest.mark.parametrize("router", ["gatewayAPI", "replicas"])
def test_success_path_runs_every_step_and_ends_on_the_new_stable(router: str) -> None:
    r = make(router)
    cluster, clock = deployed_previous(r)
    status, trace = drive(cluster, r, clock)
    assert status.phase is Phase.PAUSED and status.step_name == "pause#4"  # the indefinite pause
    assert clock.now - T0 >= timedelta(seconds=30)  # the timed pause waited
    status, more = drive(cluster, r, clock, status, commands=lambda s: Commands(promote=s.phase is Phase.PAUSED))
    assert status.phase is Phase.SUCCEEDED, status
    # with 2 replicas, the replica router cannot tell 10% from 50%: one pod each
    assert [w for _, w, _ in trace + more] == ([10, 50, 100, 0] if router == "gatewayAPI" else [10, 100])
    assert release_of(cluster, "checkout") == "222222222222"
    assert replicas(cluster, "checkout-canary") == 0 and replicas(cluster, "checkout") == 2
    if router == "gatewayAPI":
        assert route_weights(cluster) == {"checkout-stable": 100, "checkout-canary": 0}
    else:
        assert route_weights(cluster) is None
    reasons = [e.reason for e in cluster.events]
    assert reasons[0] == "RolloutStarted" and reasons[-1] == "RolloutSucceeded"
    # every step completes once; the indefinite pause completes by the responder's promote
    # (and the release's prune step, strategies/prune.py, completes after the strategy's last one)
    assert reasons.count("StepCompleted") == len(NAMES) - 1 + 1 and reasons.count("Promoted") == 1
    assert "Paused" in reasons


def test_first_release_goes_straight_to_stable() -> None:
    r = rollout("checkout", first=True)
    cluster, clock = FakeCluster(), Clock()
    status = run_until_settled(cluster, r, clock=clock, sleep=clock.sleep)
    assert status.phase is Phase.SUCCEEDED and replicas(cluster, "checkout-canary") is None
    assert release_of(cluster, "checkout") == "111111111111"


R = make()
STABLE = [*R.previous.objects]


def _sizes(cluster: FakeCluster) -> tuple[int | None, int | None]:
    return replicas(cluster, "checkout"), replicas(cluster, "checkout-canary")


def test_set_weight_scales_first_then_moves_traffic_then_completes() -> None:
    cluster, clock = deployed_previous(R)
    status = StrategyStatus()
    # 1. the canary Deployment is created at ceil(2 * 10%) = 1 replica, traffic untouched
    first = driver.drive(cluster, R, status, clock())
    assert writes(first.decision)[-1] == "Deployment/checkout-canary" and route_weights(cluster) is None
    assert _sizes(cluster) == (2, 1)
    # 2. pods ready: the route goes to 90/10
    second = driver.drive(cluster, R, first.status, clock())
    assert [type(a).__name__ for a in second.decision.writes] == ["SetWeights"]
    assert route_weights(cluster) == {"checkout-stable": 90, "checkout-canary": 10}
    # 3. the route shows 10: the step is done, weight recorded, the analysis step waits
    third = driver.drive(cluster, R, second.status, clock())
    assert third.writes == 0 and third.status.weight == 10 and third.status.step_name == "analysis#1"


def test_set_weight_waits_for_canary_pods_and_fails_on_the_deadline() -> None:
    r = broken(R)
    cluster, clock = deployed_previous(r)
    status, trace = drive(cluster, r, clock)
    assert status.phase is Phase.ROLLED_BACK and status.reason == "ProgressDeadlineExceeded"
    assert clock.now - T0 >= r.strategy.progress_deadline
    assert all(w == 0 for _, w, _ in trace)  # no traffic ever reached the never-ready canary
    assert _sizes(cluster) == (2, 0) and release_of(cluster, "checkout") == "111111111111"


AT_ANALYSIS = StrategyStatus(
    phase=Phase.PROGRESSING, step=1, step_name="analysis#1", weight=10, started_at=T0, step_started_at=T0
)
PAUSED_ANALYSIS = replace(AT_ANALYSIS, phase=Phase.PAUSED, reason="AnalysisInconclusive")


def _at(weight: int):  # type: ignore[no-untyped-def]
    """Objects of the cluster holding `weight`% on the canary before promotion."""
    from strategies.canary import _Canary

    c = _Canary(R)
    return [*c.base(R.previous), *c.deployments(R.previous, weight), *c.route(weight)]


ANALYSIS_CASES = [
    ("no verdict yet: wait", AT_ANALYSIS, None, Commands(), Phase.PROGRESSING, 1, []),
    ("success: next step", AT_ANALYSIS, Verdict.SUCCESS, Commands(), Phase.PROGRESSING, 2, ["StepCompleted"]),
    ("failure: roll back", AT_ANALYSIS, Verdict.FAILURE, Commands(), Phase.ROLLING_BACK, 0, ["RollbackStarted"]),
    ("inconclusive: pause", AT_ANALYSIS, Verdict.INCONCLUSIVE, Commands(), Phase.PAUSED, 1, ["Paused"]),
    ("error: pause", AT_ANALYSIS, Verdict.ERROR, Commands(), Phase.PAUSED, 1, ["Paused"]),
    ("paused stays paused", PAUSED_ANALYSIS, None, Commands(), Phase.PAUSED, 1, []),
    ("paused + promote: next step", PAUSED_ANALYSIS, None, Commands(promote=True), Phase.PROGRESSING, 2, ["Promoted"]),
    (
        "paused + abort: roll back",
        PAUSED_ANALYSIS,
        None,
        Commands(abort="no"),
        Phase.ROLLING_BACK,
        0,
        ["RollbackStarted"],
    ),
]


@pytest.mark.parametrize(
    ("status", "verdict", "commands", "phase", "step", "evts"),
    [c[1:] for c in ANALYSIS_CASES],
    ids=[c[0] for c in ANALYSIS_CASES],
)
def test_analysis_step(status, verdict, commands, phase, step, evts) -> None:  # type: ignore[no-untyped-def]
    decision = decide(R, status, world(*_at(10), analysis=verdict, commands=commands), T0)
    assert (decision.status.phase, decision.status.step) == (phase, step)
    assert events(decision)[: len(evts)] == evts
    if step == status.step and phase is not Phase.ROLLING_BACK:
        assert decision.writes == ()  # holding a step that is in place writes nothing


AT_PAUSE = StrategyStatus(
    phase=Phase.PROGRESSING, step=3, step_name="pause#3", weight=50, started_at=T0, step_started_at=T0
)
AT_HOLD = replace(AT_PAUSE, step=4, step_name="pause#4")
PAUSE_CASES = [
    ("timed pause running", AT_PAUSE, T0 + timedelta(seconds=10), Commands(), Phase.PROGRESSING, 3, 20.0),
    ("timed pause over", AT_PAUSE, T0 + timedelta(seconds=30), Commands(), Phase.PAUSED, 4, None),
    # one promote moves one step: the next (indefinite) pause still waits for its own promote
    ("timed pause skipped by promote", AT_PAUSE, T0, Commands(promote=True), Phase.PAUSED, 4, None),
    ("pause until promoted", AT_HOLD, T0, Commands(), Phase.PAUSED, 4, None),
    ("paused + promote", replace(AT_HOLD, phase=Phase.PAUSED), T0, Commands(promote=True), Phase.PROGRESSING, 5, 5.0),
]


@pytest.mark.parametrize(
    ("status", "now", "commands", "phase", "step", "requeue"),
    [c[1:] for c in PAUSE_CASES],
    ids=[c[0] for c in PAUSE_CASES],
)
def test_pause_step(status, now, commands, phase, step, requeue) -> None:  # type: ignore[no-untyped-def]
    decision = decide(R, status, world(*_at(50), commands=commands), now)
    assert (decision.status.phase, decision.status.step) == (phase, step)
    assert decision.requeue_after == requeue
    assert decision.writes == ()


def test_hold_repairs_drift_during_a_pause() -> None:
    decision = decide(R, AT_PAUSE, world(*_at(10)), T0)  # someone put the route back to 10
    assert writes(decision) == ["HTTPRoute/checkout"]  # 2 replicas: the canary size is the same


@pytest.mark.parametrize("router", ["gatewayAPI", "replicas"])
@pytest.mark.parametrize("at", range(len(NAMES)))
def test_abort_from_every_step_restores_the_previous_release(router: str, at: int) -> None:
    r = make(router)
    cluster, clock = deployed_previous(r)
    status, _ = drive(
        cluster,
        r,
        clock,
        stop=lambda s: s.step >= at,
        commands=lambda s: Commands(promote=s.phase is Phase.PAUSED and s.step < at),
    )
    # at (or, when a step completes at once, just past) step `at`, not finished
    assert at <= status.step < len(NAMES) and status.phase in (Phase.PROGRESSING, Phase.PAUSED), status
    status, trace = drive(cluster, r, clock, status, commands=lambda s: Commands(abort="responder said so"))
    assert status.phase is Phase.ROLLED_BACK, status
    if router == "gatewayAPI" and route_weights(cluster) is not None:
        assert route_weights(cluster) == {"checkout-stable": 100, "checkout-canary": 0}
        assert trace == [] or trace[0][1] == 0  # the first thing a rollback does: weight 0
    assert _sizes(cluster) == (2, 0) and release_of(cluster, "checkout") == "111111111111"
    assert "RollbackStarted" in [e.reason for e in cluster.events]


def test_restart_mid_way_resumes_at_the_same_step_without_rewrites() -> None:
    cluster, clock = deployed_previous(R)
    status, _ = drive(cluster, R, clock, stop=lambda s: s.step == 3)  # in the 30 s pause, at 50%
    stored = status.to_dict()
    cluster.writes.clear()
    fresh = make()  # everything rebuilt: rollout, renderings; only the stored status survives
    resumed = driver.drive(cluster, fresh, StrategyStatus.from_dict(stored), clock())
    assert resumed.writes == 0 and resumed.status.step == 3
    status, trace = drive(
        cluster, fresh, clock, resumed.status, commands=lambda s: Commands(promote=s.phase is Phase.PAUSED)
    )
    assert status.phase is Phase.SUCCEEDED
    assert [w for _, w, _ in trace] == [100, 0]  # 10 and 50 were not set again


def test_routers_size_the_tracks() -> None:
    assert GatewayAPIRouter().replicas(3, 10) == (3, 1)
    assert GatewayAPIRouter().replicas(3, 0) == (3, 0)
    assert ReplicaRouter().replicas(4, 25) == (3, 1)
    assert ReplicaRouter().replicas(4, 50) == (2, 2)
    assert ReplicaRouter().replicas(4, 100) == (0, 4)
    assert ReplicaRouter().replicas(2, 10) == (1, 1)

"""Blue/green: colours, preview, analysis, promotion, switch, scale-down delay, switch-back."""

from dataclasses import replace
from datetime import timedelta

import pytest

from regions.analysis.model import Verdict
from strategies import decide
from strategies.bluegreen import _BlueGreen
from strategies.driver import drive
from strategies.fake import FakeCluster
from strategies.model import Commands, Phase, StrategyStatus

from .helpers import T0, Clock, broken, events, rollout, run_until_settled, world, writes

R = rollout("search")  # prePromotionAnalysis [error-ratio], autoPromotion, scaleDownDelay 1m


def selector_color(cluster: FakeCluster, name: str) -> str | None:
    for ref, obj in cluster.objects.items():
        if ref.kind == "Service" and ref.name == name:
            return obj["spec"]["selector"].get("rollout.dev/color")
    return None


def replicas(cluster: FakeCluster, name: str) -> int | None:
    for ref, obj in cluster.objects.items():
        if ref.kind == "Deployment" and ref.name == name:
            return int(obj["spec"]["replicas"])
    return None


def live_on_blue(r):  # type: ignore[no-untyped-def]
    cluster, clock = FakeCluster(), Clock()
    first = replace(r, release=r.previous, previous=None, strategy=R.strategy)
    status = run_until_settled(cluster, first, clock=clock, sleep=clock.sleep, analysis=lambda req: Verdict.SUCCESS)
    assert status.phase is Phase.SUCCEEDED and selector_color(cluster, "search") == "blue"
    cluster.writes.clear()
    cluster.events.clear()
    return cluster, clock


def run(cluster, r, clock, status=None, *, verdict=Verdict.SUCCESS, commands=None, stop=None):  # type: ignore[no-untyped-def]
    colours: list[str | None] = []
    status = run_until_settled(
        cluster,
        r,
        status,
        clock=clock,
        sleep=clock.sleep,
        stop=stop,
        analysis=lambda req: verdict,
        commands=commands,
        on_pass=lambda res: colours.append(selector_color(cluster, "search")),
    )
    return status, [c for i, c in enumerate(colours) if i == 0 or colours[i - 1] != c]


def test_first_release_deploys_blue_and_points_the_service_at_it() -> None:
    live_on_blue(R)


def test_success_path_switches_then_scales_the_old_colour_down_after_the_delay() -> None:
    cluster, clock = live_on_blue(R)
    switched_at = None

    def note(status):  # type: ignore[no-untyped-def]
        nonlocal switched_at
        switched_at = status.switched_at
        return False

    status, colours = run(cluster, R, clock, stop=note)
    assert status.phase is Phase.SUCCEEDED, status
    assert colours == ["blue", "green"]
    assert selector_color(cluster, "search-preview") == "green"
    assert replicas(cluster, "search-green") == 2 and replicas(cluster, "search-blue") == 0
    assert status.finished_at - status.switched_at >= timedelta(minutes=1)  # the scale-down delay
    names = [e.message for e in cluster.events if e.reason == "StepCompleted"]
    assert [n.split("(")[1].rstrip(")").split(")")[0] for n in names] == [
        "deploy green",
        "prePromotionAnalysis",
        "switch to green",
        "scale down blue",
        "prune",
    ]


def test_manual_promotion_waits_for_the_responder() -> None:
    r = rollout("search", auto_promotion=False)
    cluster, clock = live_on_blue(r)
    status, _ = run(cluster, r, clock)
    assert status.phase is Phase.PAUSED and status.step_name == "awaitPromotion"
    assert selector_color(cluster, "search") == "blue"
    status, colours = run(cluster, r, clock, status, commands=lambda s: Commands(promote=s.phase is Phase.PAUSED))
    assert status.phase is Phase.SUCCEEDED and colours[-1] == "green"


@pytest.mark.parametrize(
    ("verdict", "phase"),
    [(Verdict.FAILURE, Phase.ROLLED_BACK), (Verdict.INCONCLUSIVE, Phase.PAUSED), (Verdict.ERROR, Phase.PAUSED)],
)
def test_pre_promotion_analysis_gates_the_switch(verdict: Verdict, phase: Phase) -> None:
    cluster, clock = live_on_blue(R)
    status, colours = run(cluster, R, clock, verdict=verdict)
    assert status.phase is phase
    assert colours == ["blue"]  # never switched
    assert replicas(cluster, "search-blue") == 2
    if phase is Phase.ROLLED_BACK:
        assert replicas(cluster, "search-green") == 0 and status.reason == "AnalysisFailed"


def test_never_ready_new_colour_is_caught_by_the_progress_deadline() -> None:
    r = broken(R)
    cluster, clock = live_on_blue(r)
    status, colours = run(cluster, r, clock)
    assert status.phase is Phase.ROLLED_BACK and status.reason == "ProgressDeadlineExceeded"
    assert colours == ["blue"] and replicas(cluster, "search-green") == 0
    assert clock.now - T0 >= R.strategy.progress_deadline


def test_rollback_inside_the_delay_is_an_instant_switch_back() -> None:
    cluster, clock = live_on_blue(R)
    status, _ = run(cluster, R, clock, stop=lambda s: s.step_name == "scale down blue")
    assert selector_color(cluster, "search") == "green"
    cluster.writes.clear()
    first = drive(cluster, R, status, clock(), commands=Commands(abort="smoke failed"))
    # blue still runs the previous release: nothing to restore, the rollback is the switch itself,
    # made in the very pass that sees the abort
    assert first.status.phase is Phase.ROLLING_BACK
    assert [str(ref) for _, ref in cluster.writes] == ["Service/search -n search"]
    assert selector_color(cluster, "search") == "blue"
    second = drive(cluster, R, first.status, clock())
    assert second.status.step_name == "scale down green"
    status, _ = run(cluster, R, clock, second.status)
    assert status.phase is Phase.ROLLED_BACK and replicas(cluster, "search-green") == 0
    assert replicas(cluster, "search-blue") == 2


def test_rollback_after_success_restores_the_old_colour_before_switching_back() -> None:
    cluster, clock = live_on_blue(R)
    status, _ = run(cluster, R, clock)
    assert status.phase is Phase.SUCCEEDED and replicas(cluster, "search-blue") == 0
    status, colours = run(
        cluster,
        R,
        clock,
        status,
        commands=lambda s: Commands(abort="smoke failed"),
        stop=lambda s: s.phase is Phase.ROLLED_BACK,
    )
    assert status.phase is Phase.ROLLED_BACK and colours == ["green", "blue"]
    assert replicas(cluster, "search-blue") == 2 and replicas(cluster, "search-green") == 0


GREEN_LIVE = StrategyStatus(
    phase=Phase.PROGRESSING,
    step=3,
    step_name="scale down blue",
    active_color="blue",
    new_color="green",
    started_at=T0,
    step_started_at=T0,
    switched_at=T0,
)


def _objects(active: str):  # type: ignore[no-untyped-def]
    bg = _BlueGreen(R, GREEN_LIVE)
    return [*bg.new_colour_objects(), bg.dep(R.previous, "blue", 2), bg.active_service(R.release, active)]


SCALE_CASES = [
    ("delay running: wait", T0 + timedelta(seconds=30), "green", Commands(), Phase.PROGRESSING, [], 30.0),
    (
        "delay over: scale blue down",
        T0 + timedelta(minutes=1),
        "green",
        Commands(),
        Phase.PROGRESSING,
        ["Deployment/search-blue=0"],
        2.0,
    ),
    (
        "promote skips the delay",
        T0,
        "green",
        Commands(promote=True),
        Phase.PROGRESSING,
        ["Deployment/search-blue=0"],
        2.0,
    ),
    ("never scale the active colour", T0 + timedelta(minutes=5), "blue", Commands(), Phase.ROLLING_BACK, [], 0.0),
]


@pytest.mark.parametrize(
    ("now", "active", "commands", "phase", "written", "requeue"),
    [c[1:] for c in SCALE_CASES],
    ids=[c[0] for c in SCALE_CASES],
)
def test_scale_down_step(now, active, commands, phase, written, requeue) -> None:  # type: ignore[no-untyped-def]
    decision = decide(R, GREEN_LIVE, world(*_objects(active), commands=commands), now)
    assert decision.status.phase is phase
    assert writes(decision) == written
    assert decision.requeue_after == requeue


def test_colours_alternate_from_what_the_service_selects() -> None:
    snap = world(*_objects("green"))
    decision = decide(R, StrategyStatus(), snap, T0)
    assert (decision.status.active_color, decision.status.new_color) == ("green", "blue")
    assert events(decision)[0] == "RolloutStarted"
    assert "Deployment/search-blue" in writes(decision)

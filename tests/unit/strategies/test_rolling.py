"""Rolling: every phase transition of the decision function, table-driven, no IO."""

from dataclasses import replace
from datetime import timedelta

import pytest

from strategies import decide
from strategies.model import Commands, Phase, StrategyStatus
from strategies.rolling import desired

from .helpers import T0, events, rollout, world, writes

R = rollout("catalog")
NEW = desired(R, R.release)
OLD = desired(R, R.previous)
DEADLINE = R.strategy.progress_deadline
WAITING = StrategyStatus(phase=Phase.PROGRESSING, step=0, step_name="apply", started_at=T0, step_started_at=T0)
RESTORING = StrategyStatus(phase=Phase.ROLLING_BACK, step=0, step_name="restore", started_at=T0, step_started_at=T0)


def marker(snap) -> str:  # type: ignore[no-untyped-def]
    """The progress marker of every workload (engine.await_workloads)."""
    return " ".join(w.progress_marker for w in snap.workloads)


NO_PROGRESS = replace(WAITING, progress_marker=marker(world(*NEW, ready=False)), progress_since=T0)


CASES = [
    # id, status, snapshot, now, phase, writes, events
    (
        "start applies the release",
        StrategyStatus(),
        world(*OLD),
        T0,
        Phase.PROGRESSING,
        ["Service/catalog", "Deployment/catalog"],
        ["RolloutStarted"],
    ),
    (
        "start on an empty cluster",
        StrategyStatus(),
        world(),
        T0,
        Phase.PROGRESSING,
        ["Service/catalog", "Deployment/catalog"],
        ["RolloutStarted"],
    ),
    ("applied, pods not ready: wait", WAITING, world(*NEW, ready=False), T0, Phase.PROGRESSING, [], []),
    (
        "rolled out: succeeded",
        WAITING,
        world(*NEW),
        T0,
        Phase.SUCCEEDED,
        [],
        ["StepCompleted"] * 2 + ["RolloutSucceeded"],
    ),
    (
        "no progress within the deadline: roll back",
        NO_PROGRESS,
        world(*NEW, ready=False),
        T0 + DEADLINE,
        Phase.ROLLING_BACK,
        [],
        ["RollbackStarted"],
    ),
    (
        "no progress, deadline not reached",
        NO_PROGRESS,
        world(*NEW, ready=False),
        T0 + DEADLINE - timedelta(seconds=1),
        Phase.PROGRESSING,
        [],
        [],
    ),
    (
        "Deployment says ProgressDeadlineExceeded",
        WAITING,
        world(*NEW, ready=False, stuck=("catalog",)),
        T0,
        Phase.ROLLING_BACK,
        [],
        ["RollbackStarted"],
    ),
    (
        "drifted while waiting: re-apply",
        WAITING,
        world(*OLD),
        T0,
        Phase.PROGRESSING,
        ["Service/catalog", "Deployment/catalog"],
        [],
    ),
    (
        "rollback re-applies the previous release",
        RESTORING,
        world(*NEW, ready=False),
        T0,
        Phase.ROLLING_BACK,
        ["Service/catalog", "Deployment/catalog"],
        [],
    ),
    (
        "previous release back: rolled back",
        RESTORING,
        world(*OLD),
        T0,
        Phase.ROLLED_BACK,
        [],
        ["StepCompleted", "StepCompleted", "RolledBack"],  # restore, then the rollback's prune step
    ),
    (
        "rollback stuck: failed",
        replace(RESTORING, progress_marker=marker(world(*OLD, ready=False)), progress_since=T0),
        world(*OLD, ready=False),
        T0 + DEADLINE,
        Phase.FAILED,
        [],
        ["Failed"],
    ),
    (
        "abort while progressing",
        WAITING,
        world(*NEW, ready=False, commands=Commands(abort="bad metrics")),
        T0,
        Phase.ROLLING_BACK,
        ["Service/catalog", "Deployment/catalog"],
        ["RollbackStarted"],
    ),
    (
        "abort after success (smoke window failed)",
        StrategyStatus(phase=Phase.SUCCEEDED),
        world(*NEW, commands=Commands(abort="smoke")),
        T0,
        Phase.ROLLING_BACK,
        ["Service/catalog", "Deployment/catalog"],
        ["RollbackStarted"],
    ),
    (
        "abort when rolled back: nothing",
        StrategyStatus(phase=Phase.ROLLED_BACK),
        world(*OLD, commands=Commands(abort="again")),
        T0,
        Phase.ROLLED_BACK,
        [],
        [],
    ),
    ("succeeded stays succeeded", StrategyStatus(phase=Phase.SUCCEEDED), world(*NEW), T0, Phase.SUCCEEDED, [], []),
]


@pytest.mark.parametrize(
    ("status", "snap", "now", "phase", "written", "evts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rolling(status, snap, now, phase, written, evts) -> None:  # type: ignore[no-untyped-def]
    decision = decide(R, status, snap, now)
    assert decision.status.phase is phase
    assert writes(decision) == written
    assert events(decision) == evts


def test_first_release_without_previous_fails_instead_of_rolling_back() -> None:
    first = rollout("catalog", first=True)
    stuck = replace(NO_PROGRESS)
    decision = decide(first, stuck, world(*desired(first, first.release), ready=False), T0 + DEADLINE)
    assert decision.status.phase is Phase.FAILED
    assert decision.status.reason == "ProgressDeadlineExceeded"
    assert "no progress" in decision.status.message


@pytest.mark.parametrize("status", [WAITING, replace(WAITING, phase=Phase.SUCCEEDED)])
def test_rolling_back_a_first_release_restores_nothing(status: StrategyStatus) -> None:
    first = rollout("catalog", first=True)
    decision = decide(first, status, world(*desired(first, first.release), commands=Commands(abort="smoke")), T0)
    assert decision.status.phase is Phase.ROLLED_BACK and decision.writes == ()
    assert "no previous release" in decision.status.message and decision.status.reason == "Aborted"


def test_applied_deployment_carries_plan_bounds_and_labels() -> None:
    dep = NEW[-1]
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
    }
    assert dep["spec"]["progressDeadlineSeconds"] == 120
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["rollout.dev/release"] == "222222222222" and labels["rollout.dev/track"] == "stable"


def test_rerun_against_cluster_in_place_writes_nothing() -> None:
    decision = decide(R, WAITING, world(*NEW), T0)
    assert decision.writes == ()

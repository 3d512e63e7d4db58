"""Release groups in the promotion state machine (pure): in each region a dependent app's release
does not start while a dependency's release in flight has not passed there; the wait is said once
per dependency and region (status, audit, Event) and is not a person's wait; rollbacks never wait."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from config.times import format_time
from regions.analysis.model import Verdict
from rollout.orchestrator import (
    BeginRollback,
    Dependency,
    Dependent,
    Notify,
    RegionView,
    Request,
    SetRegionWeight,
    StartStrategy,
)
from rollout.ui.model import waiting_on_person
from strategies.model import Phase as S
from tests.unit.rollout.test_orchestrator import DONE, PASS, RUNNING, SPEC, T0, Replay

EVERYWHERE = frozenset({"eu-canary", "eu-west", "ap-south", "us-east"})


def backend(*passed: str, regions: frozenset[str] = EVERYWHERE) -> Dependency:
    return Dependency("backend", "2.1.0", "backend-abc", regions, frozenset(passed))


class Grouped(Replay):
    def __init__(self) -> None:
        super().__init__()
        self.dependencies: tuple[Dependency, ...] = ()
        self.dependents: tuple[Dependent, ...] = ()

    def context(self) -> dict[str, Any]:
        return {"dependencies": self.dependencies, "dependents": self.dependents}


def waits(actions) -> list[Notify]:
    return [a for a in actions if isinstance(a, Notify) and a.event == "waitingForDependency"]


def started(actions) -> list[str]:
    return [a.region for a in actions if isinstance(a, StartStrategy)]


def test_a_dependent_waits_region_by_region_and_says_so_once_per_wait() -> None:
    r = Grouped()
    r.dependencies = (backend(),)
    actions = r.step()
    assert r.phase() == "Pending" and started(actions) == []
    (notice,) = waits(actions)
    assert notice.reason == "waiting for backend 2.1.0 to pass in eu-canary" and notice.region == "eu-canary"
    assert not notice.warning
    assert r.status.waiting_for == r.status.message == "waiting for backend 2.1.0 to pass in eu-canary"
    assert [a.action for a in r.status.audit] == ["waiting"]
    assert waits(r.step(10)) == [] and len(r.status.audit) == 1  # still waiting: nothing new said

    r.dependencies = (backend("eu-canary"),)  # backend passed eu-canary: the dependent starts there
    assert started(r.step(1)) == ["eu-canary"]
    assert r.status.waiting_for == "" and r.status.message == ""
    r.step(5, eu_canary=DONE)
    actions = r.step(61, eu_canary=PASS)  # wave canary passed; the next wave's regions wait for backend
    assert started(actions) == []
    assert [n.region for n in waits(actions)] == ["ap-south", "eu-west"]
    assert r.phase("eu-west") == r.phase("ap-south") == "Pending"
    assert r.status.regions["eu-west"].message == "waiting for backend 2.1.0 to pass in eu-west"

    r.dependencies = (backend("eu-canary", "eu-west"),)
    actions = r.step(1)
    assert started(actions) == ["eu-west"] and waits(actions) == []  # ap-south's wait was said already
    assert r.status.regions["eu-west"].message == ""
    assert r.status.waiting_for == "waiting for backend 2.1.0 to pass in ap-south"


def test_waiting_for_a_dependency_is_not_waiting_on_a_person() -> None:
    r = Grouped()
    r.dependencies = (backend(),)
    r.step()
    release = {"status": r.status.to_dict()}
    assert release["status"]["waitingFor"]
    assert waiting_on_person(release) is None


def test_a_dependency_not_going_to_a_region_or_passed_everywhere_holds_nothing() -> None:
    r = Grouped()
    r.dependencies = (backend(regions=frozenset({"us-east"})), backend(*EVERYWHERE))
    assert started(r.step()) == ["eu-canary"]
    assert r.status.waiting_for == ""


def test_rollbacks_never_wait_for_a_dependency() -> None:
    r = Grouped()
    r.step()
    r.step(5, eu_canary=DONE)
    r.step(61, eu_canary=PASS)  # wave low started
    r.dependencies = (backend(),)  # a new backend release appears, passed nowhere yet
    actions = r.step(1, eu_west=RegionView(strategy_phase=S.FAILED, strategy_reason="boom"))
    assert r.phase() == "RollingBack"
    assert waits(actions) == [] and r.status.waiting_for == ""
    r.step(61, eu_west=RegionView(drain_moved=1.0))
    assert r.phase("eu-west") == "RollingBack"  # drained and rolling back, not held


def test_a_responders_rollback_request_is_not_held() -> None:
    r = Grouped()
    r.step()
    r.dependencies = (backend(),)
    r.step(1, requests=[Request("rollback", "bad", "alice")])
    assert r.phase() == "RollingBack" and r.status.waiting_for == ""


def test_the_reconciler_reads_dependencies_and_dependents_from_the_index() -> None:
    from dataclasses import replace
    from types import SimpleNamespace

    from rollout.reconciler import ReleaseReconciler
    from rollout.release import RegionStatus, ReleaseStatus
    from rollout.store import StoredRelease

    def at(seconds: float) -> str:
        return format_time(T0 + timedelta(seconds=seconds))

    def release(app: str, name: str, phase: str, started=None, completed=None, **regions) -> StoredRelease:
        spec = replace(SPEC, app=app, version=name)
        status = ReleaseStatus(
            phase=phase,
            started_at=started,
            completed_at=completed,
            regions={n.replace("_", "-"): RegionStatus(phase=p, started_at=s) for n, (p, s) in regions.items()},
        )
        return StoredRelease(f"{app}-{name}", "1", spec, status, "2026-11-29T12:00:00Z")

    index = {
        "backend": (
            release("backend", "1.0.0", "Succeeded"),
            release("backend", "1.1.0", "RolledBack", at(0), at(50)),  # before this release started
            release("backend", "1.2.0", "RolledBack", at(60), at(120)),  # while it was in flight
            release(
                "backend", "2.0.0", "Progressing", at(130), eu_canary=("Succeeded", at(131)), eu_west=("Smoke", at(140))
            ),
            release("backend", "3.0.0", "Pending"),
        ),
        "frontend": (release("frontend", "1.0.0", "Progressing", at(200), eu_canary=("Progressing", at(201))),),
        "search": (release("search", "9.0.0", "Progressing", at(200), eu_canary=("Progressing", at(201))),),
    }
    reconciler = SimpleNamespace(
        releases_by_app=index, _depends_on=lambda r: ["backend"] if r.spec.app == "frontend" else []
    )
    app = SimpleNamespace(plan=SimpleNamespace(depends_on=["backend"]))
    found = ReleaseReconciler._dependencies(reconciler, app, ReleaseStatus(started_at=at(55)))  # type: ignore[arg-type]
    assert [(d.version, d.phase, sorted(d.passed)) for d in found] == [
        ("1.2.0", "RolledBack", []),
        ("2.0.0", "Progressing", ["eu-canary"]),
        ("3.0.0", "Pending", []),
    ]
    assert found[1].regions == EVERYWHERE
    backend = index["backend"][3]
    group = SimpleNamespace(apps={"frontend": app, "backend": SimpleNamespace(plan=SimpleNamespace(depends_on=[]))})
    dependents = ReleaseReconciler._dependents(reconciler, backend, backend.status, group)  # type: ignore[arg-type]
    assert dependents == (Dependent("frontend", "1.0.0", "frontend-1.0.0", frozenset({"eu-canary"})),)
    alone = SimpleNamespace(apps={"backend": SimpleNamespace(plan=SimpleNamespace(depends_on=[]))})
    assert ReleaseReconciler._dependents(reconciler, backend, backend.status, alone) == ()  # type: ignore[arg-type]


def rolling_back(started: float, completed: float | None = None) -> Dependency:
    """backend's release, started `started` seconds after T0, rolling back (or rolled back at
    `completed`)."""
    return Dependency(
        "backend",
        "2.1.0",
        "backend-abc",
        EVERYWHERE,
        frozenset(),
        "RolledBack" if completed is not None else "RollingBack",
        format_time(T0 + timedelta(seconds=started)),
        format_time(T0 + timedelta(seconds=completed)) if completed is not None else None,
    )


def test_a_dependent_that_started_regions_during_its_dependencys_release_rolls_back_with_it() -> None:
    r = Grouped()
    r.step()
    r.step(5, eu_canary=DONE)
    r.step(61, eu_canary=PASS)  # eu-west and ap-south started at T0+66
    r.dependencies = (rolling_back(started=-30),)
    actions = r.step(1, eu_west=RUNNING, ap_south=RUNNING)
    assert r.phase() == "RollingBack" and not any(isinstance(a, StartStrategy) for a in actions)
    (failed,) = [a for a in actions if isinstance(a, Notify) and a.event == "failed"]
    assert "dependency backend 2.1.0 rolled back" in failed.reason and "ap-south, eu-canary, eu-west" in failed.reason
    assert [a for a in actions if isinstance(a, BeginRollback)] == [BeginRollback("eu-west", r.status.message)]
    assert not any(isinstance(a, SetRegionWeight) for a in actions)  # nothing failed here: no drain


def test_a_dependency_rolled_back_before_the_dependent_started_regions_is_not_followed() -> None:
    r = Grouped()
    r.step(100)  # eu-canary starts at T0+100
    r.dependencies = (rolling_back(started=0, completed=50),)
    r.step(1, eu_canary=RUNNING)
    assert r.phase() == "Progressing"


def test_a_dependency_rolls_back_after_its_dependents_in_each_region_and_drains_at_once() -> None:
    r = Grouped()
    r.step()
    r.step(5, eu_canary=DONE)
    r.step(61, eu_canary=PASS)
    r.dependents = (Dependent("frontend", "1.5.0", "frontend-abc", frozenset({"eu-west", "eu-canary"})),)
    bad = RegionView(strategy_phase=S.SUCCEEDED, smoke=Verdict.FAILURE, smoke_reason="errors")
    r.step(1, eu_west=DONE, ap_south=DONE)
    actions = r.step(2, eu_west=bad, ap_south=PASS)
    assert SetRegionWeight("eu-west", 0) in actions  # the drain is never delayed
    actions = r.step(1, eu_west=RegionView(drain_moved=1.0))
    assert not any(isinstance(a, BeginRollback) for a in actions) and r.phase("eu-west") == "Draining"
    assert r.status.drains[0].completed_at is not None
    assert r.status.regions["eu-west"].message == "rollback waits for frontend 1.5.0 to roll back in eu-west first"
    assert r.step(1, eu_west=RegionView(drain_moved=1.0)) == []  # said once
    r.dependents = (Dependent("frontend", "1.5.0", "frontend-abc", frozenset({"eu-canary"})),)
    actions = r.step(1, eu_west=RegionView(drain_moved=1.0))
    assert BeginRollback("eu-west", r.status.message) in actions
    r.step(1, eu_west=RegionView(strategy_phase=S.ROLLED_BACK))  # restored; ap-south next, not held
    actions = r.step(1, ap_south=RegionView(strategy_phase=S.ROLLED_BACK))
    assert r.phase("ap-south") == "RolledBack" and r.phase("eu-canary") == "Succeeded"  # eu-canary waits
    r.dependents = ()
    actions = r.step(1, eu_canary=RegionView(strategy_phase=S.SUCCEEDED))
    assert BeginRollback("eu-canary", r.status.message) in actions

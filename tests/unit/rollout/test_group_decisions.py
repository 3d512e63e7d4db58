"""Release groups in the promotion state machine (pure): in each region a dependent app's release
does not start while a dependency's release in flight has not passed there; the wait is said once
per dependency and region (status, audit, Event) and is not a person's wait; rollbacks never wait."""

from __future__ import annotations

from datetime import timedelta

from rollout.orchestrator import Dependency, Notify, RegionView, ReleaseView, Request, StartStrategy, decide
from rollout.ui.model import waiting_on_person
from strategies.model import Phase as S
from tests.unit.rollout.test_orchestrator import DONE, PASS, SPEC, Replay

EVERYWHERE = frozenset({"eu-canary", "eu-west", "ap-south", "us-east"})


def backend(*passed: str, regions: frozenset[str] = EVERYWHERE) -> Dependency:
    return Dependency("backend", "2.1.0", "backend-abc", regions, frozenset(passed))


class Grouped(Replay):
    def __init__(self) -> None:
        super().__init__()
        self.dependencies: tuple[Dependency, ...] = ()

    def step(self, seconds: float = 0, requests=(), blocked_by=None, **regions: RegionView):
        self.now += timedelta(seconds=seconds)
        view = ReleaseView(
            SPEC,
            self.status,
            self.policy,
            {k.replace("_", "-"): v for k, v in regions.items()},
            tuple(requests),
            blocked_by,
            self.previous,
            dependencies=self.dependencies,
        )
        self.status, actions = decide(view, self.now)
        return actions


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


def test_the_reconciler_reads_dependencies_from_the_index_in_flight_only() -> None:
    from dataclasses import replace
    from types import SimpleNamespace

    from rollout.reconciler import ReleaseReconciler
    from rollout.release import RegionStatus, ReleaseStatus
    from rollout.store import StoredRelease

    def release(name: str, phase: str, **regions: str) -> StoredRelease:
        spec = replace(SPEC, app="backend", version=name)
        status = ReleaseStatus(phase=phase, regions={n: RegionStatus(phase=p) for n, p in regions.items()})
        return StoredRelease(f"backend-{name}", "1", spec, status, "2026-11-29T12:00:00Z")

    index = {
        "backend": (
            release("1.0.0", "Succeeded"),
            release("2.0.0", "Progressing", eu_canary="Succeeded", eu_west="Smoke"),
            release("3.0.0", "Pending"),
        ),
        "search": (release("9.0.0", "Progressing"),),
    }
    reconciler = SimpleNamespace(releases_by_app=index)
    app = SimpleNamespace(plan=SimpleNamespace(depends_on=["backend"]))
    found = ReleaseReconciler._dependencies(reconciler, app)  # type: ignore[arg-type]
    assert [(d.version, sorted(d.passed)) for d in found] == [("2.0.0", ["eu_canary"]), ("3.0.0", [])]
    assert found[0].regions == EVERYWHERE

"""Issue 12 (5) / DESIGN 4: permanent errors fail, they do not wedge; transient ones back off.

A Release whose commit cannot be read (gone after a force-push, or a commit the repository never
had) ends Failed with the message in its status, one Warning notice and one log line across many
controller passes, and does not block the app's next release. A transient failure is retried with
a growing delay, one log line per attempt, never a traceback. The controller's pass
(`Controller._reconcile_releases`, the loop of `reconcile_all`) and the reconciler run for real;
the Release store, the watch cache, the clusters and the traffic are in memory."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from config.loader import load_repository
from config.repository import Repository
from rollout.controller import Controller
from rollout.drill.model import DRAIN, ROLLBACK, DrillState, Facts, ReleaseRef, Targets
from rollout.drill.runner import observation_failed
from rollout.failures import Retries, permanent_reason
from rollout.gitsync.model import RemoteUnavailable, RevisionNotFound
from rollout.orchestrator import Request
from rollout.reconciler import ReleaseReconciler
from rollout.release import PlannedWaveSpec, ReleasePhase, ReleaseSpec, ReleaseStatus
from rollout.store import StoredRelease, as_object
from strategies.errors import Backoff
from strategies.fake import FakeCluster
from strategies.model import Phase as S
from strategies.model import StrategyStatus

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "examples" / "shop"
GOOD, GONE, FLAKY = "a" * 40, "b" * 40, "c" * 40
T0 = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def repo() -> Repository:
    return load_repository(EXAMPLE)


class Workspace:
    """GOOD loads; GONE is not in the repository (force-pushed away); FLAKY fails transiently."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.calls: dict[str, int] = {}

    def repository(self, commit: str) -> Repository:
        self.calls[commit] = self.calls.get(commit, 0) + 1
        if commit == GONE:
            raise RevisionNotFound(commit, "https://git.example/shop.git")
        if commit == FLAKY:
            raise RuntimeError("the render helper stopped before answering")
        return self.repo


class Store:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def write_status(self, stored: StoredRelease, status: ReleaseStatus) -> StoredRelease:
        return dataclasses.replace(
            stored,
            resource_version=str(int(stored.resource_version) + 1),
            status=ReleaseStatus.from_dict(status.to_dict()),
        )


class Cache:
    """The controller's watch cache of Releases (items/put)."""

    def __init__(self, releases: list[StoredRelease]) -> None:
        self.objects = {r.name: _object(r) for r in releases}

    def items(self) -> list[dict[str, Any]]:
        return list(self.objects.values())

    def put(self, obj: dict[str, Any]) -> None:
        self.objects[obj["metadata"]["name"]] = obj

    def get(self, name: str) -> StoredRelease:
        return StoredRelease.from_object(self.objects[name])


class Clusters:
    def get(self, context: str) -> FakeCluster:
        return FakeCluster()


class Traffic:
    def weights(self, app: str) -> dict[str, int]:
        return {}

    def set_weights(self, app: str, weights: dict[str, int]) -> None:
        pass


class Sink:
    def __init__(self) -> None:
        self.notices: list[Any] = []

    def emit(self, notice: Any, now: datetime) -> None:
        self.notices.append(notice)


def _object(r: StoredRelease) -> dict[str, Any]:
    return as_object(
        {
            "metadata": {"name": r.name, "resourceVersion": r.resource_version, "creationTimestamp": r.created},
            "spec": r.spec.to_dict(),
            "status": r.status.to_dict(),
        }
    )


def release(commit: str, created: str, version: str, phase: ReleasePhase = ReleasePhase.PENDING) -> StoredRelease:
    spec = ReleaseSpec("search", commit, version, "p", "d", (PlannedWaveSpec("one", ("eu-west",), 0, 1),))
    return StoredRelease(spec.name, "1", spec, ReleaseStatus(phase=phase.value), created)


def controller(repo: Repository, releases: list[StoredRelease]) -> tuple[Controller, Cache, Sink, Workspace]:
    cache, sink, workspace = Cache(releases), Sink(), Workspace(repo)
    ctl = Controller.__new__(Controller)  # the pass only: no home cluster, Git mirror or leader election
    ctl.releases = cache  # type: ignore[assignment]
    ctl._retries = Retries()
    ctl._reconciler = ReleaseReconciler(
        workspace,  # type: ignore[arg-type]
        Store(cache),  # type: ignore[arg-type]
        Clusters(),  # type: ignore[arg-type]
        Traffic(),
        None,
        [sink],
        lambda: True,
    )
    return ctl, cache, sink, workspace


def run_pass(ctl: Controller, cache: Cache, now: datetime) -> None:
    """One controller pass over the Releases in the cache (no responder actions)."""
    by_app: dict[str, list[StoredRelease]] = defaultdict(list)
    for obj in cache.items():
        stored = StoredRelease.from_object(obj)
        by_app[stored.spec.app].append(stored)
    ctl._reconcile_releases(by_app, {}, now)


def test_a_release_whose_commit_is_gone_fails_once_with_one_log_line_and_does_not_block_the_next(repo) -> None:
    gone, nxt = release(GONE, "2026-11-29T01:00:00Z", "1.3.0"), release(GOOD, "2026-11-29T01:01:00Z", "1.3.1")
    ctl, cache, sink, _ = controller(repo, [gone, nxt])
    now = T0
    with capture_logs() as logs:
        for _ in range(10):  # ten passes, a second apart
            run_pass(ctl, cache, now)
            now += timedelta(seconds=1)
    failed = cache.get(gone.name)
    assert failed.status.phase == ReleasePhase.FAILED.value
    assert f"commit {GONE[:12]} cannot be read from the repository" in failed.status.message
    assert "force-push" in failed.status.message and "Fix: push a commit" in failed.status.message
    assert failed.status.completed_at and failed.status.audit[-1].action == "failed"
    mine = [e for e in logs if e.get("release") == gone.name]
    assert [e["event"] for e in mine] == ["release cannot be built"], mine
    assert all("exc_info" not in e for e in logs)
    assert [(n.event, n.release, n.warning) for n in sink.notices if n.event == "failed"] == [
        ("failed", gone.name, True)
    ]
    # the app's next release was not blocked by it
    assert cache.get(nxt.name).status.phase == ReleasePhase.PROGRESSING.value


def test_a_started_release_that_loses_its_commit_names_the_regions_it_touched(repo) -> None:
    started = release(GONE, "2026-11-29T01:00:00Z", "1.3.0", ReleasePhase.PROGRESSING)
    started.status.regions = ReleaseStatus.from_dict({"regions": {"eu-west": {"phase": "Progressing"}}}).regions
    ctl, cache, sink, _ = controller(repo, [started])
    run_pass(ctl, cache, T0)
    run_pass(ctl, cache, T0 + timedelta(seconds=1))
    failed = cache.get(started.name)
    assert failed.status.phase == ReleasePhase.FAILED.value
    assert "regions eu-west keep what it applied until the app's next release" in failed.status.message
    assert len(sink.notices) == 1


def test_a_transient_failure_is_retried_with_backoff_one_line_per_attempt(repo) -> None:
    flaky = release(FLAKY, "2026-11-29T01:00:00Z", "1.3.0")
    ctl, cache, sink, workspace = controller(repo, [flaky])
    ctl._retries = Retries(Backoff(initial=2.0, factor=2.0, maximum=300.0, jitter=0.0))
    now = T0
    with capture_logs() as logs:
        for _ in range(30):  # 30 passes a second apart: tries at 0, 2, 6, 14 and 30 s would be 5; 4 fit
            run_pass(ctl, cache, now)
            now += timedelta(seconds=1)
    attempts = workspace.calls[FLAKY]
    assert attempts == 4, attempts
    lines = [e for e in logs if e.get("release") == flaky.name]
    assert [e["event"] for e in lines] == ["reconcile failed; will retry"] * attempts
    assert [e["retry_in"] for e in lines] == [2.0, 4.0, 8.0, 16.0]
    assert "RuntimeError: the render helper stopped" in lines[0]["error"]
    assert all("exc_info" not in e for e in logs)
    assert cache.get(flaky.name).status.phase == ReleasePhase.PENDING.value  # nothing decided on it
    assert sink.notices == []


def test_a_responders_action_is_tried_at_once_whatever_the_backoff(repo) -> None:
    flaky = release(FLAKY, "2026-11-29T01:00:00Z", "1.3.0")
    ctl, cache, _, workspace = controller(repo, [flaky])
    run_pass(ctl, cache, T0)  # fails: the next try waits about 2 s
    run_pass(ctl, cache, T0 + timedelta(seconds=0.5))
    assert workspace.calls[FLAKY] == 1
    by_app = {"search": [cache.get(flaky.name)]}
    abort = (Request("abort", "stop it", "alice"), {"metadata": {"name": "abort-1"}})
    ctl._reconcile_releases(by_app, {flaky.name: [abort]}, T0 + timedelta(seconds=1))
    assert workspace.calls[FLAKY] == 2  # the action is not held behind the backoff (it stays pending: it failed)


def test_which_errors_are_permanent() -> None:
    assert permanent_reason(RevisionNotFound(GONE, "r"), "search", GONE) is not None
    assert permanent_reason(KeyError("search"), "search", GOOD) is not None
    assert permanent_reason(RemoteUnavailable("r", "down", last_good=None), "search", GOOD) is None
    assert permanent_reason(RuntimeError("render helper"), "search", GOOD) is None


def _drill_state(step: int) -> DrillState:
    facts = Facts(
        "search",
        "eu-west",
        ReleaseRef("search-bbbbbbbbbbbb", GONE, "1.3.0"),
        ReleaseRef("search-aaaaaaaaaaaa", GOOD, "1.2.0"),
        Targets(95.0, 60.0, 120.0),
        {},
    )
    return DrillState(state="Running", step=step, facts=facts, strategy={})


def test_a_drill_step_whose_release_is_gone_fails_at_once_and_a_transient_one_waits() -> None:
    failed = observation_failed(_drill_state(ROLLBACK), RevisionNotFound(GONE, "r"), T0)
    assert failed.strategy is not None
    status = StrategyStatus.from_dict(dict(failed.strategy))
    assert status.phase is S.FAILED and "cannot be read from the repository" in status.message
    assert observation_failed(_drill_state(ROLLBACK), RuntimeError("flaky"), T0).strategy is None
    assert observation_failed(_drill_state(DRAIN), RevisionNotFound(GONE, "r"), T0).strategy is None

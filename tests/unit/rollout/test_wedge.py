"""Issue 12 (5): a release that cannot be built fails its region once, with its message, follows
its rollback policy, and does not block the app's next release. The reconciler runs for real on
the example repository; only the outside world (Release store, clusters, traffic) is in memory."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from config.loader import load_repository
from config.repository import Repository
from rollout.reconciler import ReleaseReconciler, wedged
from rollout.release import PlannedWaveSpec, RegionPhase, ReleasePhase, ReleaseSpec, ReleaseStatus
from rollout.store import StoredRelease
from strategies.fake import FakeCluster
from strategies.model import Phase as S
from strategies.model import StrategyStatus

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "examples" / "shop"
GOOD, BAD = "a" * 40, "b" * 40
T0 = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Repository]:
    """GOOD: the example; BAD: search (blue/green) renders two Deployments, none named after the
    app, and its plan does not name the traffic one (the guestbook's first problem). `rollout
    validate` refuses it (test_validate_refuses_what_the_controller_would_fail); this is the
    controller's own line of defence, for a repository changed under it or an older validator."""
    bad = tmp_path_factory.mktemp("bad") / "shop"
    shutil.copytree(EXAMPLE, bad)
    loaded = load_repository(bad)  # valid when loaded; the controller renders releases later, from disk
    manifest = bad / "apps" / "search" / "manifests" / "deployment.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("  name: {{ app }}\nspec:", "  name: web\nspec:", 1))
    (manifest.parent / "worker.yaml").write_text(text.replace("  name: {{ app }}\nspec:", "  name: worker\nspec:", 1))
    return {GOOD: load_repository(EXAMPLE), BAD: loaded}


class Workspace:
    def __init__(self, repos: dict[str, Repository]) -> None:
        self.repos = repos

    def repository(self, commit: str) -> Repository:
        return self.repos[commit]


class Store:
    def __init__(self) -> None:
        self.writes = 0

    def write_status(self, stored: StoredRelease, status: ReleaseStatus) -> StoredRelease:
        self.writes += 1
        return dataclasses.replace(
            stored,
            resource_version=str(int(stored.resource_version) + 1),
            status=ReleaseStatus.from_dict(status.to_dict()),
        )


class Clusters:
    def __init__(self) -> None:
        self.cluster = FakeCluster()

    def get(self, context: str) -> FakeCluster:
        return self.cluster


class Traffic:
    def __init__(self) -> None:
        self.set: dict[str, int] = {}

    def weights(self, app: str) -> dict[str, int]:
        return dict(self.set)

    def set_weights(self, app: str, weights: dict[str, int]) -> None:
        self.set.update(weights)


class Sink:
    def __init__(self) -> None:
        self.notices: list[Any] = []

    def emit(self, notice: Any, now: datetime) -> None:
        self.notices.append(notice)


def release(commit: str, created: str, version: str) -> StoredRelease:
    spec = ReleaseSpec("search", commit, version, "p", "d", (PlannedWaveSpec("one", ("eu-west",), 0, 1),))
    return StoredRelease(spec.name, "1", spec, ReleaseStatus(), created)


def reconciler(repos: dict[str, Repository]) -> tuple[ReleaseReconciler, Sink, Clusters]:
    sink, clusters = Sink(), Clusters()
    return (
        ReleaseReconciler(
            Workspace(repos),
            Store(),
            clusters,
            Traffic(),
            None,
            [sink],  # type: ignore[arg-type]
            lambda: True,
        ),
        sink,
        clusters,
    )


def test_a_release_that_cannot_be_built_fails_once_rolls_back_and_does_not_block_the_next(repos) -> None:
    rec, sink, clusters = reconciler(repos)
    bad, good = release(BAD, "2026-11-29T01:00:00Z", "1.3.0"), release(GOOD, "2026-11-29T01:01:00Z", "1.3.1")
    now = T0
    with capture_logs() as logs:
        for _ in range(30):  # passes, a second apart (the drain waits its 45 s window)
            bad = rec.reconcile(bad, [bad, good], [], now)
            if ReleasePhase(bad.status.phase) == ReleasePhase.ROLLED_BACK:
                break
            now += timedelta(seconds=5)
    assert bad.status.phase == ReleasePhase.ROLLED_BACK.value, bad.status.to_dict()
    region = bad.status.regions["eu-west"]
    assert region.phase == RegionPhase.ROLLED_BACK.value
    assert "blueGreen needs the Deployment that takes the traffic" in region.message
    assert "strategy.trafficWorkload" in region.message and "InvalidManifests" in region.message
    failed = [e for e in logs if e["event"] == "region step failed"]
    assert len(failed) == 1 and failed[0]["reason"] == "InvalidManifests" and "exc_info" not in failed[0]
    assert [n.event for n in sink.notices].count("failed") == 1
    assert clusters.cluster.writes == []  # nothing of the bad release was applied
    # the app's next release starts at once
    good = rec.reconcile(good, [bad, good], [], now)
    assert good.status.phase == ReleasePhase.PROGRESSING.value, good.status.message


def test_a_release_whose_rollback_cannot_go_on_does_not_block(repos) -> None:
    stuck = release(BAD, "2026-11-29T01:00:00Z", "1.3.0")
    status = ReleaseStatus.from_dict(
        {
            "phase": "RollingBack",
            "regions": {
                "eu-west": {
                    "phase": "RollingBack",
                    "strategy": StrategyStatus(phase=S.FAILED, reason="Invalid").to_dict(),
                }
            },
        }
    )
    stuck = dataclasses.replace(stuck, status=status)
    nxt = release(GOOD, "2026-11-29T01:01:00Z", "1.3.1")
    assert wedged(stuck) == "eu-west"
    assert ReleaseReconciler._blocker(nxt, [stuck, nxt]) is None
    moving = dataclasses.replace(stuck, status=ReleaseStatus.from_dict({"phase": "Progressing"}))
    assert ReleaseReconciler._blocker(nxt, [moving, nxt]) == moving.name


def test_validate_refuses_what_the_controller_would_fail(repos) -> None:
    from config.errors import InvalidRepository

    with pytest.raises(InvalidRepository) as info:
        load_repository(repos[BAD].root)
    assert "apps/search/rollout.yaml: strategy.trafficWorkload: blueGreen needs the Deployment" in str(info.value)


class Killed(Exception):
    """The controller killed (SIGKILL) while it writes a status."""


class StoreKilledAtTheRestore(Store):
    def write_status(self, stored: StoredRelease, status: ReleaseStatus) -> StoredRelease:
        if any(d.restored_at for d in status.drains):
            raise Killed
        return super().write_status(stored, status)


def test_a_restore_is_in_effect_before_it_is_recorded(repos) -> None:
    """The kill -9 e2e found a region left drained: the restore was recorded (which can end the
    release, and a finished release is never reconciled again) and the process was killed before
    the weight went back to 100. The traffic must be back before the record."""
    traffic = Traffic()
    rec = ReleaseReconciler(
        Workspace(repos),
        StoreKilledAtTheRestore(),
        Clusters(),
        traffic,
        None,
        [Sink()],
        lambda: True,  # type: ignore[arg-type]
    )
    bad = release(BAD, "2026-11-29T01:00:00Z", "1.3.0")
    now = T0
    with pytest.raises(Killed):
        for _ in range(30):
            bad = rec.reconcile(bad, [bad], [], now)
            now += timedelta(seconds=5)
    assert any(d.region == "eu-west" for d in bad.status.drains), "the region was drained first"
    assert traffic.set == {"eu-west": 100}

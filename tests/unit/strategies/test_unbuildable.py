"""A release that cannot be built (does not render, or lacks what its strategy needs) fails its
region step at once by the driver's one error policy: one log line, no traceback, no write."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from structlog.testing import capture_logs

from config.render import RenderFailed
from strategies import check
from strategies.driver import BUILD_STEP, RENDER_FAILED, ReleaseAt, Renderer, drive
from strategies.errors import PermanentError, Unreachable
from strategies.fake import FakeCluster
from strategies.manifests import ManifestError
from strategies.model import Phase, RegionRollout, StrategyStatus

from .helpers import T0, rollout


def renamed(r: RegionRollout) -> RegionRollout:
    objs = copy.deepcopy(list(r.release.objects))
    for o in objs:
        if o["kind"] == "Deployment":
            o["metadata"]["name"] = "web"
    return replace(r, release=replace(r.release, objects=tuple(objs)))


def test_a_release_without_its_traffic_workload_is_refused_when_built() -> None:
    with pytest.raises(ManifestError) as info:
        check(renamed(rollout("checkout")))  # canary: its traffic Deployment is looked up by name
    assert isinstance(info.value, PermanentError) and info.value.reason == "InvalidManifests"
    assert "renders no Deployment named 'checkout'" in str(info.value)
    check(renamed(rollout("catalog")))  # rolling: every workload rolls, none is looked up by name


def test_a_render_failure_is_permanent_and_names_the_problem() -> None:
    def broken(commit: str):  # type: ignore[no-untyped-def]
        raise AssertionError("not reached")

    renderer = Renderer(broken)
    renderer._rollout = lambda *a: (_ for _ in ()).throw(RenderFailed([]))  # type: ignore[method-assign]
    with pytest.raises(PermanentError) as info:
        renderer.rollout("catalog", "eu-west", ReleaseAt("c" * 40, "1.0.0"), None)
    assert info.value.reason == RENDER_FAILED and "does not render in eu-west" in str(info.value)


def test_an_unbuildable_release_fails_the_step_once_without_writing() -> None:
    cluster = FakeCluster()

    def build() -> RegionRollout:
        bad = renamed(rollout("checkout"))
        check(bad)
        return bad

    with capture_logs() as logs:
        step = drive(cluster, build, StrategyStatus(), T0)
    assert step.status.phase is Phase.FAILED and step.status.reason == "InvalidManifests"
    assert step.status.step_name == BUILD_STEP and "named 'checkout'" in step.status.message
    assert not step.transient and step.error and cluster.writes == []
    assert [e["event"] for e in logs] == ["region step failed"] and "exc_info" not in logs[0]
    # the rollback the release's policy starts has nothing to restore: it ends RolledBack at once
    rolling_back = step.status.to(Phase.ROLLING_BACK, T0, reason="strategy failed")
    back = drive(cluster, build, rolling_back, T0)
    assert back.status.phase is Phase.ROLLED_BACK and "nothing to restore" in back.status.message
    assert cluster.writes == []


def test_a_release_built_before_that_no_longer_builds_does_not_claim_a_rollback() -> None:
    def build() -> RegionRollout:
        raise PermanentError("helm missing", reason=RENDER_FAILED)

    status = StrategyStatus(phase=Phase.ROLLING_BACK, step_name="restore")
    step = drive(FakeCluster(), build, status, T0)
    assert step.status.phase is Phase.FAILED and "rollback not possible" in step.status.message


def test_a_transient_error_while_building_is_retried() -> None:
    def build() -> RegionRollout:
        raise Unreachable("git fetch failed")

    step = drive(FakeCluster(), build, StrategyStatus(), T0)
    assert step.transient and step.status == StrategyStatus() and step.retry_after > 0

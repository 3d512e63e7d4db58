"""The controller killed at any instant, and two replicas: the same final state, one writer."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.e2e.conftest import APP, NAMESPACE, Shop, wait_for
from tests.e2e.test_promotion import assert_promoted_in_wave_order, audit

pytestmark = pytest.mark.e2e
KILL_RUNS = int(os.environ.get("ROLLOUT_E2E_KILL_RUNS", "10"))
# What is under test is the controller surviving kills, not a strategy: a quick one keeps 10 runs short.
PLAN_OVERRIDES = {"strategy": {"rolling": {"maxSurge": "50%", "maxUnavailable": 0, "progressDeadline": "60s"}},
                  "smokeWindow": "4s"}


@pytest.mark.timeout(2400)  # ten whole releases across every region
def test_kill_9_at_random_moments_ends_in_the_same_final_state(shop: Shop) -> None:
    shop.start_controller()
    shop.wait_release("1.4.0", {"Succeeded"}, timeout_s=400)
    rng = random.Random(20261124)
    for run in range(KILL_RUNS):
        version = f"2.0.{run}"
        shop.git.bump_app_version(APP, version)
        kill_after = rng.uniform(1.0, 25.0)
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline and not _done(shop, version):
            time.sleep(0.2)
        shop.controllers[-1].kill(signal.SIGKILL)
        shop.controllers.clear()
        shop.start_controller(identity=f"controller-run{run}")  # a new process; the lease moves to it
        release = shop.wait_release(version, {"Succeeded"}, timeout_s=400)
        assert_promoted_in_wave_order(release)
        assert len(audit(release, "start")) == 1, f"run {run}: started twice"
        assert len(audit(release, "wave-passed")) == len(release["spec"]["waves"]), f"run {run}: gate skipped"
        for region in shop.lab.region_contexts:
            assert set(shop.deployed(region).values()) == {version}, (run, region, kill_after)


def _done(shop: Shop, version: str) -> bool:
    release = shop.release(version)
    return bool(release and (release.get("status") or {}).get("phase") == "Succeeded")


def test_two_replicas_only_the_leader_writes_and_a_follower_takes_over(shop: Shop) -> None:
    from kubernetes import client

    leader = shop.controllers[0] if shop.controllers else shop.start_controller()
    follower = shop.start_controller(identity="controller-standby")
    coordination = client.CoordinationV1Api(shop.home)

    def holder() -> str:
        return coordination.read_namespaced_lease("rollout-controller", NAMESPACE).spec.holder_identity

    assert holder() == leader.identity
    shop.git.bump_app_version(APP, "3.0.0")
    shop.wait_release("3.0.0", {"Succeeded"}, timeout_s=400)
    assert "rollout_leader 1.0" in leader.metrics()
    assert "rollout_leader 0.0" in follower.metrics()
    follower_log = follower.log_path.read_text()
    assert "release created" not in follower_log and "release event" not in follower_log
    assert 'verb="PUT"' not in follower.metrics() and 'verb="POST"' not in follower.metrics()

    leader.kill(signal.SIGKILL)
    started = time.monotonic()
    wait_for(lambda: holder() == follower.identity, 30, "the follower to take the lease")
    took = time.monotonic() - started
    assert took <= 6 + 4, f"takeover took {took:.1f}s; lease is 6s"
    shop.git.bump_app_version(APP, "3.0.1")
    shop.wait_release("3.0.1", {"Succeeded"}, timeout_s=400)

"""The controller killed at any instant, and two replicas: the same final state, one writer.

Kill -9: the controller is killed at moments drawn uniformly over the whole measured duration of
three kinds of operation, in turn: a good release (every wave), a bad release (caught in the canary
region: drain, rollback, restore) and a drill in eu-west (drain, rollback, roll forward, restore).
Each kill records the phase it interrupted, read from the Release (or the drill's ReleaseAction) at
the kill moment; a new process takes the lease and carries on. Every operation must end exactly as
it does without kills. ROLLOUT_E2E_KILL_RUNS sets the number of kills (CI: 30; a bench run: 50).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client, config

from deploy.lab.simulator.model import FaultProfile
from tests.e2e.conftest import APP, NAMESPACE, RESPONDER, Shop, wait_for
from tests.e2e.test_promotion import assert_promoted_in_wave_order, audit

pytestmark = pytest.mark.e2e
KILL_RUNS = int(os.environ.get("ROLLOUT_E2E_KILL_RUNS", "30"))
MIN_PHASES = 6
KILLS_PER_OPERATION = 5  # kills share an operation: more kills per minute of lab time (30 kills: 6 operations)
DRILL_REGION = "eu-west"
# What is under test is the controller surviving kills, not a strategy: a quick one keeps runs short.
PLAN_OVERRIDES = {
    "strategy": {"rolling": {"maxSurge": "50%", "maxUnavailable": 0, "progressDeadline": "60s"}},
    "smokeWindow": "4s",
}
KINDS = ("good", "drill", "bad")  # a drill rehearses on a release that succeeded


@dataclass
class Kill:
    operation: str  # e.g. "good 2.0.3"
    after_s: float  # drawn moment, seconds of the operation's own time (time without a leader excluded)
    at_s: float  # when the kill happened, on the same clock
    phase: str


def release_phase(release: dict[str, Any] | None) -> str:
    """The phase a kill interrupts: the Release's phase, and the phases of its busy regions."""
    if release is None:
        return "NotCreated"
    status = release.get("status") or {}
    phase = status.get("phase") or "Pending"
    busy = sorted({r.get("phase", "") for r in (status.get("regions") or {}).values()} - {"Pending", "Succeeded"})
    if phase == "RollingBack" and status.get("drains") and all(d.get("restoredAt") for d in status["drains"]):
        busy.append("restored")
    return f"{phase}:{'+'.join(busy) or '-'}" if phase in ("Progressing", "RollingBack") else phase


def drill_phase(action: dict[str, Any]) -> str:
    status = action.get("status") or {}
    state = status.get("state") or "NotSeen"
    if state != "Running":
        return f"Drill:{state}"
    steps = ("drain", "rollback", "roll forward", "restore")
    return f"Drill:{steps[min((status.get('drill') or {}).get('step', 0), 3)]}"


class Operations:
    """Starts each kind of operation, reads its phase, and waits for and checks its final state."""

    def __init__(self, shop: Shop):
        self.shop = shop
        self.good = "1.4.0"
        self.count = 0
        responder = config.new_client_from_config(
            config_file=str(shop.identities.people[RESPONDER]), context=shop.lab.home_context
        )
        self.responder = client.CustomObjectsApi(responder)

    def start(self, kind: str) -> tuple[str, Any]:
        self.count += 1
        if kind == "good":
            version = f"2.0.{self.count}"
            self.shop.git.bump_app_version(APP, version)
            return f"good {version}", version
        if kind == "bad":
            version = f"2.0.{self.count}"
            self.shop.simulator.set_fault(APP, version, FaultProfile(error_ratio=0.3))
            self.shop.git.bump_app_version(APP, version)
            return f"bad {version}", version
        body = {
            "apiVersion": "rollout.dev/v1alpha1",
            "kind": "ReleaseAction",
            "metadata": {"generateName": f"drill-{APP}-"},
            "spec": {
                "action": "drill",
                "app": APP,
                "region": DRILL_REGION,
                "reason": "e2e: kill -9 drill",
                "requestedBy": RESPONDER,
            },
        }
        created = self.responder.create_namespaced_custom_object(
            "rollout.dev", "v1alpha1", NAMESPACE, "releaseactions", body
        )
        return f"drill on {self.good}", created["metadata"]["name"]

    def phase(self, kind: str, handle: Any) -> str:
        if kind == "drill":
            return drill_phase(self._action(handle))
        return release_phase(self.shop.release(handle))

    def done(self, kind: str, handle: Any) -> bool:
        if kind == "drill":
            return (self._action(handle).get("status") or {}).get("state") in ("Done", "Failed", "Rejected")
        release = self.shop.release(handle)
        return (release or {}).get("status", {}).get("phase") in ("Succeeded", "RolledBack")

    def finish(self, kind: str, handle: Any, label: str) -> None:
        """Wait for the end, then check it is exactly the end the operation has without kills."""
        shop = self.shop
        wait_for(lambda: self.done(kind, handle), 400, f"{label} to finish", lambda: self.phase(kind, handle))
        if kind == "good":
            release = shop.release(handle)
            assert release is not None
            assert release["status"]["phase"] == "Succeeded", (label, release["status"].get("message"))
            assert_promoted_in_wave_order(release)  # every region started once, no gate skipped
            assert len(audit(release, "start")) == 1, f"{label}: started twice"
            assert len(audit(release, "wave-passed")) == len(release["spec"]["waves"]), f"{label}: gate skipped"
            self.good = handle
        elif kind == "bad":
            release = shop.release(handle)
            assert release is not None
            status = release["status"]
            assert status["phase"] == "RolledBack" and status["quarantined"] is True, (label, status.get("message"))
            assert status["failedRegion"] == "eu-canary", label
            assert len([a for a in audit(release, "region-start") if a["region"] == "eu-canary"]) == 1, label
            later = [r for w in release["spec"]["waves"][1:] for r in w["regions"]]
            assert all(status["regions"][r]["phase"] == "Pending" for r in later), f"{label}: later waves touched"
            assert status["drains"] and all(d["restoredAt"] for d in status["drains"]), f"{label}: left drained"
        else:
            action = self._action(handle)
            status = action["status"]
            assert status["state"] in ("Done", "Failed"), (label, status)
            assert [i["step"] for i in status["checklist"]] == ["drain", "rollback", "roll forward", "restore"]
            assert not (status.get("drill") or {}).get("leftDrained"), f"{label}: region left drained"
        wait_for(
            lambda: all(w == 100 for w in shop.weights().values()),
            60,
            f"{label}: every region's weight 100",
            lambda: str(shop.weights()),
        )
        for region in shop.lab.region_contexts:
            assert set(shop.deployed(region).values()) == {self.good}, (label, region, shop.deployed(region))

    def _action(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.shop.custom.get_namespaced_custom_object(
            "rollout.dev", "v1alpha1", NAMESPACE, "releaseactions", name
        )
        return found


@pytest.mark.timeout(3600)
def test_kill_9_across_every_phase_ends_in_the_same_final_state(shop: Shop) -> None:
    if KILL_RUNS < MIN_PHASES:
        pytest.fail(
            f"ROLLOUT_E2E_KILL_RUNS={KILL_RUNS}: at least {MIN_PHASES} kills are needed to cover "
            f"{MIN_PHASES} phases; nothing would be proven"
        )
    shop.start_controller()
    shop.wait_release("1.4.0", {"Succeeded"}, timeout_s=400)
    ops = Operations(shop)
    # measure each kind once without kills: the kill moments are drawn over these durations
    durations = {}
    for kind in KINDS:
        started = time.monotonic()
        label, handle = ops.start(kind)
        ops.finish(kind, handle, label)
        durations[kind] = time.monotonic() - started
    print("measured durations without kills: " + ", ".join(f"{k} {v:.1f}s" for k, v in durations.items()))

    rng = random.Random(int(os.environ.get("ROLLOUT_E2E_KILL_SEED", "20261129")))
    kills: list[Kill] = []
    takeovers: list[float] = []
    restarts = 0
    coordination = client.CoordinationV1Api(shop.home)

    def holder() -> str:
        spec = coordination.read_namespaced_lease("rollout-controller", NAMESPACE).spec
        return str(spec.holder_identity if spec else "")

    while len(kills) < KILL_RUNS:
        kind = KINDS[len(kills) // KILLS_PER_OPERATION % len(KINDS)]
        count = min(KILLS_PER_OPERATION, KILL_RUNS - len(kills))
        # stratified: one uniform draw in each of `count` equal slices of the measured duration
        slot = durations[kind] / count
        moments = [rng.uniform(i * slot, (i + 1) * slot) for i in range(count)]
        started = time.monotonic()
        down = 0.0  # time without a leader so far: moments are on the operation's own clock
        label, handle = ops.start(kind)
        for moment in moments:
            while time.monotonic() - started - down < moment:
                time.sleep(0.05)
            phase = ops.phase(kind, handle)
            killed = time.monotonic()
            shop.controllers[-1].kill(signal.SIGKILL)
            kills.append(Kill(label, moment, killed - started - down, phase))
            shop.controllers.clear()
            restarts += 1
            # Two restarts in three keep the identity, as a container restarted in its pod does
            # (it renews its own lease at once); every third is a new pod, which must wait for
            # the dead one's lease to expire. Both must end the same.
            same_pod = restarts % 3 != 0
            previous = holder()
            identity = previous if same_pod else f"controller-restart{restarts}"
            proc = shop.start_controller(identity=identity)
            wait_for(lambda p=proc: holder() == p.identity and _leading(p), 60, "the new process to lead")
            down += time.monotonic() - killed
            takeovers.append(time.monotonic() - killed)
        ops.finish(kind, handle, label)

    table = "\n".join(f"  {k.operation:<16} drawn {k.after_s:5.1f}s killed {k.at_s:5.1f}s  {k.phase}" for k in kills)
    spread = Counter(k.phase for k in kills)
    print(
        f"\n{len(kills)} kills:\n{table}\nphases: {dict(spread)}\n"
        f"kill to new leader: median {sorted(takeovers)[len(takeovers) // 2]:.1f}s, max {max(takeovers):.1f}s"
    )
    assert len(kills) == KILL_RUNS
    assert len(spread) >= MIN_PHASES, f"kills landed in only {len(spread)} phases: {dict(spread)}"
    assert any(p.startswith("RollingBack") for p in spread), f"no kill during a drain or rollback: {dict(spread)}"
    assert any(p.startswith("Drill:") and p != "Drill:NotSeen" for p in spread), f"no kill during a drill: {spread}"


def _leading(proc: Any) -> bool:
    return "rollout_leader 1.0" in proc.metrics()


def test_two_replicas_only_the_leader_writes_and_a_follower_takes_over(shop: Shop) -> None:
    leader = shop.controllers[0] if shop.controllers else shop.start_controller()
    follower = shop.start_controller(identity="controller-standby")
    coordination = client.CoordinationV1Api(shop.home)

    def holder() -> str:
        spec = coordination.read_namespaced_lease("rollout-controller", NAMESPACE).spec
        return str(spec.holder_identity if spec else "")

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
    wait_for(lambda: holder() == follower.identity, 60, "the follower to take the lease")
    took = time.monotonic() - started
    print(f"takeover after kill -9: {took:.1f}s (lease 6s)")
    assert took <= 5 * 6, f"takeover took {took:.1f}s; lease is 6s"
    shop.git.bump_app_version(APP, "3.0.1")
    shop.wait_release("3.0.1", {"Succeeded"}, timeout_s=400)

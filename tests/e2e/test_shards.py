"""Shards on Kubernetes Leases (issue 15 item 3): three replicas with `--shards 6` share four apps;
the replica holding checkout's shard is killed with SIGKILL mid-wave. Its shards move to the others
within the lease duration (and detection), every release ends as it does undisturbed, each region
runs the new version, and no Release step was written by two replicas (every status write carries
`status.actedBy`, read here from a watch on the Releases: each audit entry belongs to the write that
added it)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, watch

from deploy.lab.controllerproc import ControllerProcess
from deploy.lab.simulator.model import AppSpec
from rollout.shards import LEASE_PREFIX, shard_of
from tests.e2e.conftest import APP, BASE, NAMESPACE, RATE_RPS, WEBHOOK_SECRET, Shop, _cleanup, wait_for
from tests.e2e.test_promotion import assert_promoted_in_wave_order, audit

pytestmark = pytest.mark.e2e
SHARDS = 6
EXTRA = ("cart", "billing", "orders")  # shards 3, 1, 4 of 6; checkout is in shard 5
REPLICAS = ("shard-a", "shard-b", "shard-c")
LEASE_S, RETRY_S = 6, 1  # deploy/lab/controllerproc.py runs every controller with these
VERSION = "1.4.0"  # the first release of every app: checkout's version, copied
# What is under test is who writes, not a strategy: a quick one keeps the run short.
PLAN_OVERRIDES = {
    "strategy": {"rolling": {"maxSurge": "50%", "maxUnavailable": 0, "progressDeadline": "60s"}},
    "smokeWindow": "4s",
}


class ReleaseWrites:
    """Every Release status write as the API server streams it: (app, release, resourceVersion,
    actedBy, audit)."""

    def __init__(self, shop: Shop):
        self.custom = client.CustomObjectsApi(shop.home)
        self.events: list[tuple[str, str, int, dict[str, Any], list[dict[str, Any]], float]] = []
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, name="release-writes", daemon=True)

    def __enter__(self) -> ReleaseWrites:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._watch.stop()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        stream = self._watch.stream(
            self.custom.list_namespaced_custom_object, "rollout.dev", "v1alpha1", NAMESPACE, "releases"
        )
        with contextlib.suppress(urllib3.exceptions.ProtocolError):  # the stream cut by stop()
            self._read(stream)

    def _read(self, stream: Any) -> None:
        for event in stream:
            obj = event["object"]
            status = obj.get("status") or {}
            self.events.append(
                (
                    obj["spec"]["app"],
                    obj["metadata"]["name"],
                    int(obj["metadata"]["resourceVersion"]),
                    status.get("actedBy") or {},
                    status.get("audit") or [],
                    time.monotonic(),  # when this test saw it
                )
            )

    def writers(self, release: str) -> list[tuple[str, int, list[dict[str, Any]], float]]:
        """Each status write of a release in order: (replica, shard, the audit entries it added, when
        it was seen)."""
        out, seen, last = [], 0, -1
        for _, name, version, acted, entries, at in sorted(self.events, key=lambda e: e[2]):
            if name != release or version == last or not acted:
                continue
            last = version
            out.append((acted["replica"], acted["shard"], entries[seen:], at))
            seen = max(seen, len(entries))
        return out


def extra_apps(shop: Shop) -> dict[str, str | None]:
    """Copies of checkout's folder under new names (the app name changed everywhere); every app's
    per-region values only for the regions this lab runs (an unknown region is refused)."""
    files = shop.app_files(shop.git.head())
    changes: dict[str, str | None] = {}
    for name in (APP, *EXTRA):
        for path, body in files.items():
            text = body.decode().replace(APP, name)
            if path.endswith("/values.yaml"):
                values = yaml.safe_load(text)
                overrides = values.get("regionOverrides") or {}
                values["regionOverrides"] = {r: v for r, v in overrides.items() if r in shop.lab.region_contexts}
                text = yaml.safe_dump(values, sort_keys=False)
            changes[path.replace(f"apps/{APP}/", f"apps/{name}/")] = text
    return changes


def grant_namespaces(shop: Shop) -> None:
    """What the operator does for each new app (deploy/base/region/app-namespace.yaml)."""
    template = (BASE / "region" / "app-namespace.yaml").read_text()
    for context in shop.lab.region_contexts.values():
        for name in EXTRA:
            shop.lab.kubectl(
                context,
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                "-",
                input=template.replace("APP_NAMESPACE", name),
            )


def start(shop: Shop, identity: str) -> ControllerProcess:
    proc = ControllerProcess(
        shop.identities.controller,
        shop.lab.home_context,
        shop.git.url,
        shop.state_dir,
        shop.prometheus_url,
        identity=identity,
        poll_seconds=2.0,
        extra_args=["--analysis-window-seconds", "5", "--shards", str(SHARDS)],
        env={"ROLLOUT_WEBHOOK_SECRET": WEBHOOK_SECRET},
    ).start()
    shop.controllers.append(proc)
    return proc


def holders(shop: Shop) -> dict[int, tuple[str, float]]:
    """Each shard Lease: (holder, seconds since its last renewal)."""
    coordination = client.CoordinationV1Api(shop.home)
    out = {}
    for shard in range(SHARDS):
        try:
            spec = coordination.read_namespaced_lease(f"{LEASE_PREFIX}{shard}", NAMESPACE).spec
        except client.exceptions.ApiException as exc:
            if exc.status != 404:
                raise
            continue
        if spec and spec.holder_identity and spec.renew_time:
            out[shard] = (spec.holder_identity, (datetime.now(UTC) - spec.renew_time).total_seconds())
    return out


def latest(shop: Shop, app: str) -> dict[str, Any] | None:
    found = [r for r in shop.releases() if r["spec"]["app"] == app]
    return found[-1] if found else None


def mid_wave(release: dict[str, Any] | None) -> bool:
    status = (release or {}).get("status") or {}
    regions = [r.get("phase") for r in (status.get("regions") or {}).values()]
    return status.get("phase") == "Progressing" and any(p in ("Progressing", "Smoke") for p in regions)


@pytest.mark.timeout(600)
def test_three_replicas_six_shards_a_killed_replicas_shards_move_and_no_step_is_written_twice(shop: Shop) -> None:
    apps = (APP, *EXTRA)
    assert len({shard_of(a, SHARDS) for a in apps}) == len(apps), "the apps must spread over shards"
    started = time.monotonic()
    grant_namespaces(shop)
    shop.git.commit_files(extra_apps(shop), "e2e: three more apps, so that shards spread")
    shop.simulator.set_apps([AppSpec(APP, APP, RATE_RPS)] + [AppSpec(a, a, RATE_RPS / 3) for a in EXTRA])
    try:
        with ReleaseWrites(shop) as writes:
            procs = {name: start(shop, name) for name in REPLICAS}
            for proc in procs.values():
                proc.wait_healthy()
            wait_for(lambda: mid_wave(latest(shop, APP)), 180, f"{APP}'s first release to be mid-wave")
            victim = holders(shop)[shard_of(APP, SHARDS)][0]
            lost = sorted(s for s, (h, _) in holders(shop).items() if h == victim)
            procs[victim].kill(signal.SIGKILL)
            killed = time.monotonic()
            survivors = set(REPLICAS) - {victim}

            def moved() -> bool:
                now = holders(shop)
                return len(now) == SHARDS and all(h in survivors and age < LEASE_S for h, age in now.values())

            wait_for(
                moved, 60, f"{victim}'s shards {lost} to be held by {sorted(survivors)}", lambda: str(holders(shop))
            )
            took = time.monotonic() - killed
            share = {r: sorted(s for s, (h, _) in holders(shop).items() if h == r) for r in survivors}
            print(f"\nkilled {victim} (shards {lost}); shards held by the others after {took:.1f}s: {share}")
            # a Lease expires LEASE_S after its last renewal; noticing takes up to two rounds more
            assert took <= LEASE_S + 2 * RETRY_S + 2, f"failover took {took:.1f}s; lease {LEASE_S}s"
            assert all(len(s) <= 3 for s in share.values()), f"more than ceil(6 / 2) shards: {share}"

            def all_done() -> bool:
                return all((latest(shop, a) or {}).get("status", {}).get("phase") == "Succeeded" for a in apps)

            wait_for(all_done, 240, "every app's release to succeed", lambda: str({a: _phase(shop, a) for a in apps}))

        for app in apps:
            release = latest(shop, app)
            assert release is not None and release["status"]["phase"] == "Succeeded", app
            assert_promoted_in_wave_order(release)  # every region started once, no gate skipped
            assert len(audit(release, "start")) == 1, f"{app}: started twice"
            assert len(audit(release, "wave-passed")) == len(release["spec"]["waves"]), f"{app}: gate skipped"
            name = release["metadata"]["name"]
            history = writes.writers(name)
            assert history, f"{app}: no status write seen"
            assert {h[1] for h in history} == {shard_of(app, SHARDS)}, f"{app}: written for another shard"
            turns = [h[0] for i, h in enumerate(history) if i == 0 or history[i - 1][0] != h[0]]
            late = [h for h in history if h[0] == victim and h[3] > killed + 1]
            assert not late, f"{app}: {victim} wrote after it was killed: {late}"
            # each audit entry came with exactly one write, so from one replica; none was recorded twice
            steps = [(e["action"], e.get("region"), e["reason"]) for h in history for e in h[2]]
            assert len(steps) == len(set(steps)), f"{app}: a step recorded twice: {steps}"
            print(f"{app} (shard {shard_of(app, SHARDS)}): writers {turns}, {len(history)} writes")
            if app == APP:
                assert victim in turns and turns[-1] != victim, f"{APP}: no failover mid-release: {turns}"
        for region, context in shop.lab.region_contexts.items():
            api = client.AppsV1Api(shop.lab.api_client(context))
            for app in apps:
                items = api.list_namespaced_deployment(app, label_selector=f"app.kubernetes.io/name={app}").items
                running = {(d.metadata.labels or {}).get("app.kubernetes.io/version") for d in items if d.spec.replicas}
                assert running == {VERSION}, (region, app, running)
        print(f"test took {time.monotonic() - started:.0f}s")
    finally:
        shop.stop_controllers()
        shop.simulator.set_apps([AppSpec(APP, APP, RATE_RPS)])
        _cleanup(shop.lab, EXTRA)


def _phase(shop: Shop, app: str) -> str:
    release = latest(shop, app)
    return str(((release or {}).get("status") or {}).get("phase"))

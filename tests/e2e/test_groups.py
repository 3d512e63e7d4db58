"""Release groups end to end (issue 17 "done when": a dependent app waits for its dependency region
by region). One commit bumps checkout to a new version and adds `frontend` (a copy of checkout) that
`dependsOn: [checkout]`. In every region frontend's version appears only after checkout's release
passed there: read from the region clusters (sampled Deployments, their creation times) and cross-
checked with both Releases' status; frontend's status said what it waited for, once per wait."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest
import yaml
from kubernetes import client

from deploy.lab.gitserver import set_app_version
from deploy.lab.simulator.model import AppSpec
from tests.e2e.conftest import APP, BASE, RATE_RPS, Shop, _cleanup, wait_for

pytestmark = pytest.mark.e2e
DEPENDENT = "frontend"
VERSION = "1.5.0"
# What is under test is the order across apps, not a strategy: a quick one and short windows.
PLAN_OVERRIDES = {
    "strategy": {"rolling": {"maxSurge": "50%", "maxUnavailable": 0, "progressDeadline": "60s"}},
    "smokeWindow": "4s",
}


def _t(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def group_commit(shop: Shop) -> dict[str, str | None]:
    """checkout at VERSION, and frontend: checkout's folder under its own name, at VERSION, with
    dependsOn: [checkout]."""
    changes: dict[str, str | None] = {}
    for path, body in shop.app_files(shop.git.head()).items():
        text = body.decode()
        if path.endswith("/values.yaml"):
            text = set_app_version(text, VERSION)
        changes[path] = text
        copy = text.replace(APP, DEPENDENT)
        if path.endswith("/rollout.yaml"):
            plan = yaml.safe_load(copy)
            plan["dependsOn"] = [APP]
            copy = yaml.safe_dump(plan, sort_keys=False)
        changes[path.replace(f"apps/{APP}/", f"apps/{DEPENDENT}/")] = copy
    return changes


class Sampler:
    """What each region runs, read from the region clusters every half second: each read is kept as
    (when it began, when it ended, region, app, the version labels of the app's Deployments with
    replicas). A read shows what was there at some moment between its two times."""

    def __init__(self, shop: Shop):
        self.apis = {r: client.AppsV1Api(shop.lab.api_client(c)) for r, c in shop.lab.region_contexts.items()}
        self.reads: list[tuple[float, float, str, str, set[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="group-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            for region, api in self.apis.items():
                for app in (APP, DEPENDENT):
                    began = time.time()
                    try:
                        items = api.list_namespaced_deployment(app, label_selector=f"app.kubernetes.io/name={app}")
                    except Exception:  # noqa: BLE001 - a missed read only widens the bounds
                        continue
                    versions = {
                        (d.metadata.labels or {}).get("app.kubernetes.io/version", "")
                        for d in items.items
                        if d.spec.replicas
                    }
                    self.reads.append((began, time.time(), region, app, versions))
            self._stop.wait(0.5)

    def first_seen(self, region: str, app: str) -> float | None:
        """When the first read that saw `app`'s VERSION in `region` ended (it was there by then)."""
        return next((end for _, end, r, a, v in self.reads if (r, a) == (region, app) and VERSION in v), None)

    def alone_before(self, region: str, app: str, moment: float) -> bool:
        """Whether a read that ended before `moment` saw `app` run VERSION alone in `region`."""
        return any(end <= moment and v == {VERSION} for _, end, r, a, v in self.reads if (r, a) == (region, app))


def release_of(shop: Shop, app: str) -> dict[str, Any] | None:
    found = [r for r in shop.releases() if r["spec"]["app"] == app and r["spec"]["version"] == VERSION]
    return found[-1] if found else None


def audit(release: dict[str, Any], action: str) -> dict[str, float]:
    """region -> time of the release's audit entry `action` there (the first one)."""
    out: dict[str, float] = {}
    for entry in release["status"].get("audit", []):
        if entry["action"] == action and entry.get("region"):
            out.setdefault(entry["region"], _t(entry["time"]))
    return out


@pytest.mark.timeout(300)
def test_a_dependent_app_waits_for_its_dependency_region_by_region(shop: Shop) -> None:
    started = time.monotonic()
    template = (BASE / "region" / "app-namespace.yaml").read_text()
    for context in shop.lab.region_contexts.values():
        shop.lab.kubectl(
            context,
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            input=template.replace("APP_NAMESPACE", DEPENDENT),
        )
    shop.git.commit_files(group_commit(shop), f"checkout {VERSION}, and frontend {VERSION} that dependsOn checkout")
    shop.simulator.set_apps([AppSpec(APP, APP, RATE_RPS), AppSpec(DEPENDENT, DEPENDENT, RATE_RPS / 3)])
    try:
        with Sampler(shop) as sampler:
            shop.start_controller()

            def done() -> bool:
                phases = [((release_of(shop, a) or {}).get("status") or {}).get("phase") for a in (APP, DEPENDENT)]
                return phases == ["Succeeded", "Succeeded"]

            wait_for(
                done, 200, "both releases to succeed", lambda: str([release_of(shop, a) for a in (APP, DEPENDENT)])
            )
        dependency, dependent = release_of(shop, APP), release_of(shop, DEPENDENT)
        assert dependency is not None and dependent is not None
        passed, starts = audit(dependency, "region-passed"), audit(dependent, "region-start")
        regions = sorted(shop.lab.region_contexts)
        assert set(passed) == set(starts) == set(regions)
        for region in regions:
            # the Releases: frontend started the region after checkout passed it
            assert starts[region] >= passed[region], (region, starts[region] - passed[region])
            # the world: checkout ran the version alone there before it passed; no read that ended
            # before that saw frontend's version, and frontend's Deployments were created after it
            assert sampler.alone_before(region, APP, passed[region]), region
            seen = sampler.first_seen(region, DEPENDENT)
            assert seen is not None and seen >= passed[region], (region, seen and seen - passed[region])
            for d in sampler.apis[region].list_namespaced_deployment(DEPENDENT).items:
                assert d.metadata.creation_timestamp.timestamp() >= int(passed[region]), (region, d.metadata.name)
            offset = passed[region] - _t(dependency["status"]["startedAt"])
            print(
                f"{region}: checkout {VERSION} passed at +{offset:.1f}s; frontend started "
                f"{starts[region] - passed[region]:.1f}s later, seen {seen - passed[region]:.1f}s later"
            )
        # the wait was said: once per wait (a region), not once per pass; and it is nobody's to act on
        waits = [e for e in dependent["status"]["audit"] if e["action"] == "waiting"]
        first_wave = dependent["spec"]["waves"][0]["regions"]
        assert {e["region"] for e in waits} >= set(first_wave), waits  # both started together: it waited
        assert len(waits) == len({(e["region"], e["reason"]) for e in waits}), waits
        assert all(e["reason"] == f"waiting for {APP} {VERSION} to pass in {e['region']}" for e in waits), waits
        assert "waitingFor" not in dependent["status"]  # cleared once it no longer waits
        assert not [e for e in dependency["status"]["audit"] if e["action"] == "waiting"]
        print(f"waits: {[e['region'] for e in waits]}; test took {time.monotonic() - started:.0f}s")
    finally:
        shop.stop_controllers()
        shop.simulator.set_apps([AppSpec(APP, APP, RATE_RPS)])
        _cleanup(shop.lab, (APP, DEPENDENT))

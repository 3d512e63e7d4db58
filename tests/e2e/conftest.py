"""The whole product in the lab: Git server, controller process, Prometheus, simulator, regions.

One environment per module: a fresh Git server seeded with the example repository reduced to the
`checkout` app at lab scale, the controller's CRDs in the home cluster, and a controller process.
Tests in a module run in order on it; each leaves checkout healthy on a known release.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client

from deploy.lab.cluster import Lab
from deploy.lab.controllerproc import ControllerProcess, install_crds
from deploy.lab.demo import single_app_changes
from deploy.lab.gitserver import GitServer
from deploy.lab.simulator.client import SimulatorClient
from deploy.lab.simulator.model import AppSpec

NAMESPACE = "rollout-system"
APP = "checkout"
WEBHOOK_SECRET = "e2e-webhook-secret"
RATE_RPS = 3000.0


@dataclass
class Shop:
    """Handles on everything a scenario touches."""

    lab: Lab
    git: GitServer
    clone_dir: Path
    simulator: SimulatorClient
    prometheus_url: str
    state_dir: Path
    controllers: list[ControllerProcess] = field(default_factory=list)

    @property
    def home(self) -> client.ApiClient:
        return self.lab.api_client(self.lab.home_context)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.home)

    def start_controller(self, identity: str = "controller-0") -> ControllerProcess:
        proc = ControllerProcess(self.lab.kubeconfig, self.lab.home_context, self.git.url, self.state_dir,
                                 self.prometheus_url, identity=identity,
                                 extra_args=["--analysis-window-seconds", "5"],
                                 env={"ROLLOUT_WEBHOOK_SECRET": WEBHOOK_SECRET}).start()
        proc.wait_healthy()
        self.controllers.append(proc)
        return proc

    def stop_controllers(self) -> None:
        for proc in self.controllers:
            proc.stop()
        self.controllers.clear()

    def releases(self) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object("rollout.dev", "v1alpha1", NAMESPACE, "releases")["items"]
        return sorted(items, key=lambda r: (r["metadata"]["creationTimestamp"], r["metadata"]["name"]))

    def release(self, version: str) -> dict[str, Any] | None:
        found = [r for r in self.releases() if r["spec"]["app"] == APP and r["spec"]["version"] == version]
        return found[-1] if found else None

    def wait_release(self, version: str, phases: set[str], timeout_s: float = 300) -> dict[str, Any]:
        return wait_for(lambda: _phase_in(self.release(version), phases), timeout_s,
                        f"{APP} {version} to reach {sorted(phases)}",
                        lambda: _describe(self.release(version)))

    def source(self) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object("rollout.dev", "v1alpha1", NAMESPACE, "rolloutsources",
                                                        "default")

    def push_webhook(self, body: bytes = b'{"ref": "refs/heads/main"}') -> int:
        proc = next(p for p in self.controllers if p.alive())
        signature = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return requests.post(f"http://127.0.0.1:{proc.http_port}/webhook/git", data=body,
                             headers={"X-Hub-Signature-256": signature}, timeout=5).status_code

    def deployed(self, region: str) -> dict[str, str]:
        """Version label of each checkout Deployment in a region (by name)."""
        apps = client.AppsV1Api(self.lab.api_client(self.lab.region_contexts[region]))
        items = apps.list_namespaced_deployment(APP, label_selector=f"app.kubernetes.io/name={APP}").items
        return {d.metadata.name: d.metadata.labels.get("app.kubernetes.io/version", "")
                for d in items if (d.spec.replicas or 0) > 0}


def _phase_in(release: dict[str, Any] | None, phases: set[str]) -> dict[str, Any] | None:
    return release if release and (release.get("status") or {}).get("phase") in phases else None


def _describe(release: dict[str, Any] | None) -> str:
    if release is None:
        return "no such release"
    status = release.get("status") or {}
    regions = {n: r.get("phase") for n, r in (status.get("regions") or {}).items()}
    return f"phase={status.get('phase')} wave={status.get('currentWave')} regions={regions} msg={status.get('message')}"


def wait_for(probe: Callable[[], Any], timeout_s: float, what: str, describe: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; {describe()}")


@pytest.fixture(scope="module")
def shop(request: pytest.FixtureRequest, lab: Lab, lab_traffic: Any,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """A module may set PLAN_OVERRIDES (top-level plan fields, or smokeWindow for every wave)."""
    state = tmp_path_factory.mktemp("e2e")
    install_crds(lab.kubeconfig, lab.home_context)
    git = GitServer(state / "git").start()
    clone = git.clone(state / "clone")
    overrides = getattr(request.module, "PLAN_OVERRIDES", None)
    git.commit_files(single_app_changes(APP, lambda p: (clone.path / p).read_text(), set(lab.region_contexts),
                                            overrides), "e2e: checkout only, at lab scale")
    sim = lab_traffic.client()
    sim.set_apps([AppSpec(APP, APP, RATE_RPS)])
    shop = Shop(lab, git, state / "clone", sim, lab_traffic.prometheus_url, state)
    try:
        yield shop
    finally:
        shop.stop_controllers()
        git.stop()
        _cleanup(lab)


def _cleanup(lab: Lab) -> None:
    """Leave the lab as the next module expects it: no releases, no checkout, full weights."""
    custom = client.CustomObjectsApi(lab.api_client(lab.home_context))
    for plural in ("releases", "releaseactions", "rolloutsources"):
        for item in custom.list_namespaced_custom_object("rollout.dev", "v1alpha1", NAMESPACE, plural)["items"]:
            custom.delete_namespaced_custom_object("rollout.dev", "v1alpha1", NAMESPACE, plural,
                                                   item["metadata"]["name"])
    with contextlib.suppress(client.exceptions.ApiException):
        custom.delete_namespaced_custom_object("externaldns.k8s.io", "v1alpha1", NAMESPACE, "dnsendpoints", APP)
    cores = [client.CoreV1Api(lab.api_client(context)) for context in lab.region_contexts.values()]
    for core in cores:
        with contextlib.suppress(client.exceptions.ApiException):
            core.delete_namespace(APP)

    def gone() -> bool:
        return not any(ns.metadata.name == APP for core in cores for ns in core.list_namespace().items)

    wait_for(gone, 120, f"namespace {APP} to be deleted in every region")

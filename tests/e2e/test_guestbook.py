"""Issue 12's guestbook through the whole controller, in every region of the lab: an app of two
Deployments (gb-web, not named after the app; gb-mysql, Recreate), Services and a db-backup Job
declared as a pre-upgrade and pre-rollback hook.

- Released twice: both Succeeded; in every region each release's pre-upgrade Job completed before
  the release changed gb-web, and a ConfigMap dropped from Git by the second release is gone
  (pruned) once it passed there.
- A third release whose database tier never becomes Ready (the lab's KWOK fault label on gb-mysql's
  pods) is rolled back; in every region it touched, its pre-rollback backup Job completed before
  the rollback restored gb-mysql, and gb-mysql is back on the second release.

- A release that changes gb-web's selector (immutable: every region's API server refuses it,
  though the repository validates) fails its first region at once; `rollout status` shows the
  message, `rollout abort` names the release it acted on, and the fixed release after it Succeeds.

Everything is read from the region clusters (Jobs, Deployments, ConfigMaps), not from the
controller's records, except which regions the third release touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from deploy.lab.cluster import Lab
from deploy.lab.controllerproc import ControllerProcess, install_crds
from deploy.lab.demo import single_app_changes
from deploy.lab.gitserver import GitServer, set_app_version
from deploy.lab.simulator.model import AppSpec
from strategies.fake import FAULT_LABEL
from tests.e2e.conftest import BASE, NAMESPACE, RATE_RPS, _cleanup, install_identities, wait_for

pytestmark = pytest.mark.e2e

APP = "guestbook"
MANAGER = "regional-rollout"
EXTRA = "apps/guestbook/manifests/extra.yaml"  # an object only the first release has
EXTRA_YAML = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gb-extra\ndata:\n  note: dropped by 1.1.0\n"
RELEASE_TIMEOUT_S = 600
# The workloads and hooks are under test, not the waiting: the example's rolling update with a
# progress deadline that still leaves KWOK's pods (Ready in about 2 s) ten times their time, and
# 2-3 s smoke windows.
PLAN_OVERRIDES = {
    "strategy": {"rolling": {"maxSurge": "25%", "maxUnavailable": 0, "progressDeadline": "20s"}},
    "smokeWindow": {"auto": {"floor": "2s", "ceiling": "3s"}},
}


@dataclass
class Guestbook:
    lab: Lab
    git: GitServer
    clone: Path

    def releases(self) -> list[dict[str, Any]]:
        custom = client.CustomObjectsApi(self.lab.api_client(self.lab.home_context))
        items = custom.list_namespaced_custom_object("rollout.dev", "v1alpha1", NAMESPACE, "releases")["items"]
        return [r for r in items if r["spec"]["app"] == APP]

    def release(self, version: str) -> dict[str, Any] | None:
        found = [r for r in self.releases() if r["spec"]["version"] == version]
        return found[-1] if found else None

    def wait(self, version: str, phases: set[str]) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            rel = self.release(version)
            return rel if rel and (rel.get("status") or {}).get("phase") in phases else None

        found: dict[str, Any] = wait_for(
            reached,
            RELEASE_TIMEOUT_S,
            f"{APP} {version} to reach {sorted(phases)}",
            lambda: yaml.safe_dump([r.get("status") for r in self.releases()])[-3000:],
        )
        return found

    def api(self, region: str) -> client.ApiClient:
        return self.lab.api_client(self.lab.region_contexts[region])

    def job(self, region: str, name: str) -> Any:
        return client.BatchV1Api(self.api(region)).read_namespaced_job(name, APP)

    def deployment(self, region: str, name: str) -> Any:
        return client.AppsV1Api(self.api(region)).read_namespaced_deployment(name, APP)

    def configmaps(self, region: str) -> set[str]:
        return {c.metadata.name for c in client.CoreV1Api(self.api(region)).list_namespaced_config_map(APP).items}

    def push(self, version: str, changes: dict[str, str | None], message: str) -> None:
        values = (self.clone / f"apps/{APP}/values.yaml").read_text()
        self.git.commit_files({f"apps/{APP}/values.yaml": set_app_version(values, version), **changes}, message)


@pytest.fixture(scope="module")
def guestbook(lab: Lab, lab_traffic: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guestbook]:
    state = tmp_path_factory.mktemp("e2e-guestbook")
    install_crds(lab.kubeconfig, lab.home_context)
    _cleanup(lab, (APP,))
    identities = install_identities(lab, state)
    template = (BASE / "region" / "app-namespace.yaml").read_text()
    for context in lab.region_contexts.values():  # the operator grants the app's namespace
        lab.kubectl(
            context,
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            input=template.replace("APP_NAMESPACE", APP),
        )
    git = GitServer(state / "git").start()
    clone = git.clone(state / "clone")
    changes: dict[str, str | None] = dict(
        single_app_changes(APP, lambda p: (clone.path / p).read_text(), set(lab.region_contexts), PLAN_OVERRIDES)
    )
    changes[EXTRA] = EXTRA_YAML
    git.commit_files(changes, "e2e: the guestbook only, at lab scale, with an extra ConfigMap")
    lab_traffic.client().set_apps([AppSpec(APP, APP, RATE_RPS)])
    proc = ControllerProcess(
        identities.controller,
        lab.home_context,
        git.url,
        state,
        lab_traffic.prometheus_url,
        identity="controller-0",
        poll_seconds=2.0,
        extra_args=["--analysis-window-seconds", "5"],
    ).start()
    try:
        yield Guestbook(lab, git, state / "clone")
    finally:
        proc.stop()
        git.stop()
        _cleanup(lab, (APP,))


def applied_at(deployment: Any) -> datetime:
    """When the controller last changed the Deployment (its field manager's managedFields time)."""
    times = [m.time for m in deployment.metadata.managed_fields or [] if m.manager == MANAGER]
    assert times, f"{deployment.metadata.name} was never applied by {MANAGER}"
    return max(times)


def complete(job: Any) -> bool:
    return any(c.type == "Complete" and c.status == "True" for c in (job.status.conditions or []))


def hook(release: dict[str, Any], phase: str) -> str:
    return f"db-backup-{release['spec']['commit'][:12]}-{phase}"


def test_released_twice_with_the_backup_first_and_the_dropped_object_pruned(guestbook: Guestbook) -> None:
    values = yaml.safe_load((guestbook.clone / f"apps/{APP}/values.yaml").read_text())
    first = guestbook.wait(str(values["version"]), {"Succeeded"})
    for region in guestbook.lab.region_contexts:
        job = guestbook.job(region, hook(first, "pre-upgrade"))
        web = guestbook.deployment(region, "gb-web")
        assert complete(job), (region, job.status)
        assert job.status.completion_time <= web.metadata.creation_timestamp, region  # the backup came first
        assert guestbook.deployment(region, "gb-mysql").spec.strategy.type == "Recreate", region
        assert "gb-extra" in guestbook.configmaps(region), region

    guestbook.push("1.1.0", {EXTRA: None}, "guestbook 1.1.0: drop gb-extra")
    second = guestbook.wait("1.1.0", {"Succeeded"})
    for region in guestbook.lab.region_contexts:
        job = guestbook.job(region, hook(second, "pre-upgrade"))
        web = guestbook.deployment(region, "gb-web")
        assert complete(job), (region, job.status)
        assert web.metadata.labels["app.kubernetes.io/version"] == "1.1.0", region
        assert job.status.completion_time <= applied_at(web), region  # before the release changed gb-web
        assert "gb-extra" not in guestbook.configmaps(region), region  # pruned once the release passed


def test_a_database_that_never_gets_ready_is_rolled_back_after_its_backup(guestbook: Guestbook) -> None:
    template = (guestbook.clone / f"apps/{APP}/manifests/mysql.yaml").read_text()  # Jinja, not YAML yet
    pod_labels = "        app.kubernetes.io/component: db\n    spec:"
    assert template.count(pod_labels) == 1, template
    broken = template.replace(
        pod_labels, f"        app.kubernetes.io/component: db\n        {FAULT_LABEL}: never-ready\n    spec:"
    )
    guestbook.push("1.2.0", {f"apps/{APP}/manifests/mysql.yaml": broken}, "guestbook 1.2.0: db never Ready")
    third = guestbook.wait("1.2.0", {"RolledBack", "Failed", "Succeeded"})
    status = third["status"]
    assert status["phase"] == "RolledBack", status
    assert "gb-mysql" in status.get("message", ""), status  # failed for its database, not for another reason
    print(f"guestbook 1.2.0: {status.get('failedRegion')}: {status.get('message')}")
    touched = [r for r, s in (status.get("regions") or {}).items() if s.get("phase") not in (None, "Pending")]
    assert touched, status
    for region in touched:
        backup = guestbook.job(region, hook(third, "pre-rollback"))
        db = guestbook.deployment(region, "gb-mysql")
        assert complete(backup), (region, backup.status)
        assert backup.status.completion_time <= applied_at(db), region  # the backup ran before the restore
        assert db.metadata.labels["app.kubernetes.io/version"] == "1.1.0", region
        assert FAULT_LABEL not in db.spec.template.metadata.labels, region


def cli(guestbook: Guestbook, *args: str) -> subprocess.CompletedProcess[str]:
    """The rollout CLI as a user runs it (a subprocess), on the lab's kubeconfig."""
    lab = guestbook.lab
    kube = ["--kubeconfig", str(lab.kubeconfig), "--context", lab.home_context, "--namespace", NAMESPACE]
    return subprocess.run(
        [sys.executable, "-m", "rollout.cli", *args, *kube],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
        check=False,
    )


def test_a_release_the_region_refuses_fails_at_once_is_shown_aborted_and_the_next_one_proceeds(
    guestbook: Guestbook,
) -> None:
    """A selector change on gb-web: a valid repository (`rollout validate` cannot know the live
    selector), refused by every region's API server (a Deployment's selector is immutable). The
    region fails at once with the classified message, `rollout status` shows it, `rollout abort`
    names that release, and the fixed release after it Succeeds everywhere."""
    web_template = (guestbook.clone / f"apps/{APP}/manifests/web.yaml").read_text()
    mysql_template = (guestbook.clone / f"apps/{APP}/manifests/mysql.yaml").read_text()  # 1.2.0 broke it
    component = "      app.kubernetes.io/component: web\n"
    assert web_template.count(component) == 2, web_template  # the selector's and the pod template's
    moved = web_template.replace(component, component.replace("component: web", "component: web-v2"))
    pushed = time.monotonic()
    guestbook.push(
        "1.3.0",
        {f"apps/{APP}/manifests/web.yaml": moved, f"apps/{APP}/manifests/mysql.yaml": mysql_template},
        "guestbook 1.3.0: gb-web's selector changed",
    )
    validated = subprocess.run(
        [sys.executable, "-m", "rollout.cli", "validate", guestbook.git.url, "--rev", guestbook.git.head()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr  # the repository is valid
    broken = guestbook.wait("1.3.0", {"RolledBack", "Failed", "Succeeded"})
    took = time.monotonic() - pushed
    status = broken["status"]
    assert status["phase"] in ("RolledBack", "Failed"), status
    assert "field is immutable" in status.get("message", ""), status  # the region's refusal, classified
    assert took < 120, f"the refused release took {took:.0f}s to fail: not at once"
    print(f"guestbook 1.3.0 {status['phase']} after {took:.0f}s: {status['message'][:300]}")

    shown = cli(guestbook, "status", APP)
    assert shown.returncode == 0, shown.stderr
    assert "1.3.0" in shown.stdout and "field is immutable" in shown.stdout and "gb-web" in shown.stdout, shown.stdout

    # abort targets that release: acted on while it is live, or (it failed at once and rolled itself
    # back already) refused saying that release is RolledBack; either way the output names it
    aborted = cli(guestbook, "abort", APP, "--reason", "e2e: gb-web's selector cannot change in place")
    name, said = broken["metadata"]["name"], aborted.stdout + aborted.stderr
    acted = aborted.returncode == 0 and f"acted on release {name} (version 1.3.0" in said
    refused = aborted.returncode == 1 and f"release {name} (version 1.3.0) is {status['phase']}" in said
    assert acted or refused, said
    print(f"rollout abort: {said.strip()}")

    guestbook.push("1.4.0", {f"apps/{APP}/manifests/web.yaml": web_template}, "guestbook 1.4.0: selector back")
    fixed = guestbook.wait("1.4.0", {"Succeeded", "RolledBack", "Failed"})
    assert fixed["status"]["phase"] == "Succeeded", fixed["status"]
    for region in guestbook.lab.region_contexts:
        web = guestbook.deployment(region, "gb-web")
        assert web.metadata.labels["app.kubernetes.io/version"] == "1.4.0", region
        assert web.spec.selector.match_labels["app.kubernetes.io/component"] == "web", region

"""The example's Helm app (reviews) and Kustomize app (inventory) promoted across every region of
the lab by the controller, with the per-region differences visible in the region clusters.

Then a bad release of the Helm app (its pods never Ready: the lab's KWOK fault label, set through
the chart's `podLabels` value) is rolled back; in every region it touched, the chart's own
pre-rollback hook (templates/cache-flush.yaml, `helm.sh/hook: pre-rollback`) ran as a Job that
completed before the rollback restored the Deployment, and the Deployment is back on the previous
version. Read from the region clusters, except which regions the release touched.

The repository is the example reduced to these two apps at lab scale; the controller renders them
with the pinned helm and kustomize (deploy/tools/build.sh builds them).
"""

from __future__ import annotations

import subprocess
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
from deploy.lab.demo import lab_scale_plans, single_app_changes
from deploy.lab.gitserver import GitServer, set_app_version
from deploy.lab.simulator.model import AppSpec
from strategies.fake import FAULT_LABEL
from tests.e2e.conftest import BASE, NAMESPACE, RATE_RPS, WEBHOOK_SECRET, _cleanup, install_identities, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
VERSIONS = {"reviews": "2.1.0", "inventory": "1.8.0"}
# the example's per-region differences (apps/reviews/values/*.yaml, apps/inventory/overlays/*)
REVIEWS_REPLICAS = {"us-east": 4, "ap-east": 3}  # other regions: the chart's default, 2
STOCK = {
    "eu-canary": "eu-warehouse",
    "eu-west": "eu-warehouse",
    "ap-south": "ap-warehouse",
    "ap-east": "ap-warehouse",
    "us-east": "us-warehouse",
}


@dataclass
class Sources:
    lab: Lab
    controller: ControllerProcess
    git: GitServer
    clone: Path

    def releases(self, app: str) -> list[dict[str, Any]]:
        custom = client.CustomObjectsApi(self.lab.api_client(self.lab.home_context))
        items = custom.list_namespaced_custom_object("rollout.dev", "v1alpha1", NAMESPACE, "releases")["items"]
        return [r for r in items if r["spec"]["app"] == app]

    def job(self, app: str, region: str, name: str) -> Any:
        return client.BatchV1Api(self.lab.api_client(self.lab.region_contexts[region])).read_namespaced_job(name, app)

    def deployment(self, app: str, region: str) -> Any:
        apps = client.AppsV1Api(self.lab.api_client(self.lab.region_contexts[region]))
        try:
            return apps.read_namespaced_deployment(app, app)
        except client.exceptions.ApiException as exc:
            if exc.status == 404:
                return None
            raise


@pytest.fixture(scope="module")
def sources(lab: Lab, lab_traffic: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    build = subprocess.run(
        ["bash", str(REPO / "deploy" / "tools" / "build.sh")], capture_output=True, text=True, timeout=3600, check=False
    )
    assert build.returncode == 0, build.stdout + build.stderr
    state = tmp_path_factory.mktemp("e2e-sources")
    install_crds(lab.kubeconfig, lab.home_context)
    identities = install_identities(lab, state)
    template = (BASE / "region" / "app-namespace.yaml").read_text()
    for context in lab.region_contexts.values():
        for app in VERSIONS:  # the operator grants the two apps' namespaces to the region deployer
            lab.kubectl(
                context,
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                "-",
                input=template.replace("APP_NAMESPACE", app),
            )
    git = GitServer(state / "git").start()
    clone = git.clone(state / "clone")

    def read(path: str) -> str:
        return (clone.path / path).read_text()

    # the example reduced to reviews, then inventory kept (its plan at lab scale too; waves: auto)
    changes = {
        p: v
        for p, v in single_app_changes("reviews", read, set(lab.region_contexts)).items()
        if not p.startswith("apps/inventory/")
    }
    changes["apps/inventory/rollout.yaml"] = lab_scale_plans(read)["apps/inventory/rollout.yaml"]
    git.commit_files(changes, "e2e: the Helm and Kustomize apps only, at lab scale")
    lab_traffic.client().set_apps([AppSpec(app, app, RATE_RPS) for app in VERSIONS])
    proc = ControllerProcess(
        identities.controller,
        lab.home_context,
        git.url,
        state,
        lab_traffic.prometheus_url,
        identity="controller-0",
        poll_seconds=2.0,
        extra_args=["--analysis-window-seconds", "5"],
        env={"ROLLOUT_WEBHOOK_SECRET": WEBHOOK_SECRET},
    ).start()
    try:
        yield Sources(lab, proc, git, clone.path)
    finally:
        proc.stop()
        git.stop()
        _cleanup(lab, tuple(VERSIONS))


def _release(sources: Sources, app: str, version: str) -> dict[str, Any] | None:
    found = [r for r in sources.releases(app) if r["spec"]["version"] == version]
    return found[-1] if found else None


def _phase(sources: Sources, app: str, version: str | None = None) -> str:
    found = _release(sources, app, version or VERSIONS[app])
    return ((found.get("status") or {}).get("phase") or "") if found else ""


def _ready(sources: Sources, region: str) -> bool:
    reviews = sources.deployment("reviews", region)
    return bool(reviews.status.ready_replicas == reviews.spec.replicas)


def _applied_at(deployment: Any) -> datetime:
    """When the controller last changed the Deployment (its field manager's managedFields time)."""
    times = [m.time for m in deployment.metadata.managed_fields or [] if m.manager == "regional-rollout"]
    assert times, f"{deployment.metadata.name} was never applied by the controller"
    return max(times)


def test_the_helm_and_kustomize_apps_are_promoted_across_every_region(sources: Sources) -> None:
    for app in VERSIONS:
        wait_for(
            lambda app=app: _phase(sources, app) == "Succeeded",
            900,
            f"{app} {VERSIONS[app]} to succeed",
            lambda app=app: yaml.safe_dump([r.get("status") for r in sources.releases(app)])[-3000:],
        )
    for region in sources.lab.region_contexts:
        reviews = sources.deployment("reviews", region)
        inventory = sources.deployment("inventory", region)
        assert reviews is not None and inventory is not None, region
        assert reviews.spec.replicas == REVIEWS_REPLICAS.get(region, 2), region
        assert reviews.metadata.labels["rollout.dev/region"] == region
        assert reviews.metadata.labels["app.kubernetes.io/version"] == VERSIONS["reviews"]
        assert reviews.spec.template.spec.containers[0].image.endswith("shop/reviews:2.1.0")
        env = {e.name: e.value for e in inventory.spec.template.spec.containers[0].env}
        assert env["STOCK_SOURCE"] == STOCK[region], region
        assert inventory.metadata.labels["rollout.dev/region"] == region
        assert inventory.spec.template.spec.containers[0].image.endswith("shop/inventory:1.8.0")


def test_a_bad_helm_release_is_rolled_back_after_the_charts_pre_rollback_hook(sources: Sources) -> None:
    previous, bad = VERSIONS["reviews"], "2.2.0"
    wait_for(lambda: _phase(sources, "reviews") == "Succeeded", 900, f"reviews {previous} to succeed")
    values = sources.clone / "apps/reviews/values.yaml"
    chart_values = (sources.clone / "apps/reviews/chart/values.yaml").read_text()
    assert chart_values.count("podLabels: {}\n") == 1, chart_values
    sources.git.commit_files(
        {
            "apps/reviews/values.yaml": set_app_version(values.read_text(), bad),
            "apps/reviews/chart/values.yaml": chart_values.replace(
                "podLabels: {}\n", f"podLabels:\n  {FAULT_LABEL}: never-ready\n"
            ),
        },
        f"reviews {bad}: its pods never get Ready",
    )
    wait_for(
        lambda: _phase(sources, "reviews", bad) in ("RolledBack", "Failed", "Succeeded"),
        600,
        f"reviews {bad} to end",
        lambda: yaml.safe_dump([r.get("status") for r in sources.releases("reviews")])[-3000:],
    )
    release = _release(sources, "reviews", bad)
    assert release is not None
    status = release["status"]
    assert status["phase"] == "RolledBack", status
    print(f"reviews {bad}: {status.get('failedRegion')}: {status.get('message')}")
    touched = [r for r, s in (status.get("regions") or {}).items() if s.get("phase") not in (None, "Pending")]
    assert touched, status
    hook = f"reviews-cache-flush-{release['spec']['commit'][:12]}-pre-rollback"
    for region in touched:
        job = sources.job("reviews", region, hook)
        reviews = sources.deployment("reviews", region)
        complete = [c for c in job.status.conditions or [] if c.type == "Complete" and c.status == "True"]
        assert complete, (region, job.status)
        assert job.status.completion_time <= _applied_at(reviews), region  # the hook ran before the restore
        assert reviews.metadata.labels["app.kubernetes.io/version"] == previous, region
        assert reviews.spec.template.spec.containers[0].image.endswith(f"shop/reviews:{previous}"), region
        assert FAULT_LABEL not in reviews.spec.template.metadata.labels, region
        wait_for(lambda region=region: _ready(sources, region), 60, f"reviews {previous} Ready again in {region}")
    for region in set(sources.lab.region_contexts) - set(touched):  # never reached: still the previous version
        reviews = sources.deployment("reviews", region)
        assert reviews.metadata.labels["app.kubernetes.io/version"] == previous, region

"""The cluster adapter against a real API server: apply semantics, conflicts, Events, errors."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from strategies import manifests
from strategies.cluster import KubernetesCluster
from strategies.driver import drive
from strategies.errors import ApplyConflict, Backoff, PermanentError, Unreachable
from strategies.model import FIELD_MANAGER, Apply, Event, Phase
from tests.unit.strategies.helpers import T0, rollout

from .conftest import REGION

pytestmark = pytest.mark.integration


def test_apply_is_server_side_with_our_field_manager_and_never_forces(region: Any) -> None:
    new_cluster, ns = region
    cluster = new_cluster()
    r = rollout("catalog", REGION, namespace=ns)
    dep = manifests.deployment(r.release, "catalog", replicas=2)
    assert cluster.execute(r, [Apply((dep,), "test")]) == 1
    apps = client.AppsV1Api(cluster.api_client)
    live = apps.read_namespaced_deployment("catalog", ns)
    assert {m.manager for m in live.metadata.managed_fields if m.operation == "Apply"} == {FIELD_MANAGER}
    # another writer takes spec.replicas; our next apply with a different value is refused, not forced
    apps.patch_namespaced_deployment("catalog", ns, {"spec": {"replicas": 5}}, field_manager="someone-else")
    changed = manifests.deployment(r.release, "catalog", replicas=3)
    with pytest.raises(ApplyConflict) as caught:
        cluster.execute(r, [Apply((changed,), "test")])
    assert "someone-else" in str(caught.value) and caught.value.reason == "ApplyConflict"
    assert apps.read_namespaced_deployment("catalog", ns).spec.replicas == 5  # untouched


def test_a_conflict_fails_the_step_with_its_reason_and_rolls_back(region: Any) -> None:
    new_cluster, ns = region
    cluster = new_cluster()
    r = rollout("catalog", REGION, namespace=ns)
    apps = client.AppsV1Api(cluster.api_client)
    first = drive(cluster, r, __import__("strategies").StrategyStatus(), T0)  # applies v2 over nothing
    assert first.writes == 2
    apps.patch_namespaced_deployment("catalog", ns, {"spec": {"minReadySeconds": 7}}, field_manager="hpa-like")
    from dataclasses import replace

    r2 = replace(r, strategy=r.strategy.model_copy(update={"max_surge": 1}))  # a new apply of the Deployment
    conflicted = drive(cluster, r2, first.status, T0)
    # minReadySeconds is not ours: no conflict; the apply goes through without taking it over
    assert conflicted.error == "" and apps.read_namespaced_deployment("catalog", ns).spec.min_ready_seconds == 7
    apps.patch_namespaced_deployment("catalog", ns, {"spec": {"replicas": 4}}, field_manager="hpa-like")
    r3 = replace(r, strategy=r.strategy.model_copy(update={"max_surge": 2}))
    result = drive(cluster, r3, conflicted.status, T0)
    assert result.status.phase is Phase.ROLLING_BACK and result.status.reason == "ApplyConflict", result
    assert "hpa-like" in result.status.message


def test_events_land_on_the_workload(region: Any) -> None:
    new_cluster, ns = region
    cluster = new_cluster()
    r = rollout("catalog", REGION, namespace=ns)
    cluster.execute(r, [Event("catalog", "StepCompleted", "step 0 (apply) completed")])
    events = (
        client.CoreV1Api(cluster.api_client)
        .list_namespaced_event(ns, field_selector="involvedObject.name=catalog")
        .items
    )
    assert [(e.reason, e.involved_object.kind, e.type) for e in events] == [("StepCompleted", "Deployment", "Normal")]
    assert events[0].source.component == "regional-rollout"


def test_observe_reads_a_missing_app_as_empty_and_invalid_objects_fail_permanently(region: Any) -> None:
    new_cluster, ns = region
    cluster = new_cluster()
    r = rollout("checkout", REGION, namespace=ns)
    snap = cluster.observe(r)
    assert snap.deployments == () and snap.routes == () and snap.services == ()
    bad = manifests.deployment(r.release, "checkout", replicas=-1)
    with pytest.raises(PermanentError) as caught:
        cluster.execute(r, [Apply((bad,), "test")])
    assert caught.value.reason == "Invalid" and caught.value.status == 422


def test_an_unreachable_api_server_is_retried_then_reported(tmp_path: Any) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        "clusters: [{name: gone, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: u}}]\nusers: [{name: u, user: {token: x}}]\n"
    )
    slept: list[float] = []
    cluster = KubernetesCluster(
        str(kubeconfig), "gone", backoff=Backoff(attempts=3, jitter=0), timeout=2, sleep=slept.append
    )
    with pytest.raises(Unreachable):
        cluster.observe(rollout("catalog", REGION))
    assert slept == [0.5, 1.0]  # retried with backoff before giving up

"""A region's cluster changing under a release, against a real kube-apiserver: the deployer's RBAC
revoked mid-release, and the app's namespace deleted mid-release. Each fails the step at once with
the apiserver's reason (permanent: no retry loop), then the rollback meets the same wall and the
region ends Failed with the message kept; nothing is forced and nothing is written elsewhere."""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from strategies import StrategyStatus
from strategies.driver import drive
from strategies.model import Phase
from tests.fixtures.traffic import wait_until
from tests.unit.strategies.helpers import T0, rollout

from .conftest import REGION

pytestmark = pytest.mark.integration


def test_rbac_revoked_mid_release_fails_the_step_at_once_naming_the_refusal(region: Any) -> None:
    new_cluster, ns = region
    admin = new_cluster()
    rbac = client.RbacAuthorizationV1Api(admin.api_client)
    user = f"deployer-{uuid.uuid4().hex[:6]}"
    rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "deployer"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],  # this namespace only, test only
        },
    )
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "deployer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    cluster = new_cluster()
    cluster.api_client.set_default_header("Impersonate-User", user)
    apps = client.AppsV1Api(cluster.api_client)
    wait_until(lambda: _can_list(apps, ns), 30, 0.2, "the deployer's Role to take effect")

    r = rollout("catalog", REGION, namespace=ns)
    first = drive(cluster, r, StrategyStatus(), T0)
    assert first.error == "" and first.writes >= 1, first

    rbac.delete_namespaced_role_binding("deployer", ns)
    wait_until(lambda: not _can_list(apps, ns), 30, 0.2, "the revocation to take effect")
    started = time.monotonic()
    r2 = replace(r, strategy=r.strategy.model_copy(update={"max_surge": 1}))  # the next step writes again
    refused = drive(cluster, r2, first.status, T0)
    took = time.monotonic() - started
    assert refused.status.phase is Phase.ROLLING_BACK and refused.status.reason == "Forbidden", refused
    assert user in refused.status.message and not refused.transient
    assert took < 30, f"a permanent refusal took {took:.1f}s (retried?)"
    ended = drive(cluster, r2, refused.status, T0)  # the rollback is refused too
    assert ended.status.phase is Phase.FAILED, ended
    # what the deployer had written stays as it was: nothing forced, nothing half-removed
    live = client.AppsV1Api(admin.api_client).read_namespaced_deployment("catalog", ns)
    assert live.metadata.labels and live.spec.replicas is not None


def test_the_namespace_deleted_mid_release_fails_the_step_naming_the_namespace(region: Any) -> None:
    new_cluster, _ = region
    cluster = new_cluster()
    core = client.CoreV1Api(cluster.api_client)
    ns = f"t-gone-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    try:
        r = rollout("catalog", REGION, namespace=ns)
        first = drive(cluster, r, StrategyStatus(), T0)
        assert first.error == "" and first.writes >= 1, first

        core.delete_namespace(ns)
        wait_until(lambda: _gone(core, ns), 90, 0.2, f"namespace {ns} to be deleted")
        r2 = replace(r, strategy=r.strategy.model_copy(update={"max_surge": 1}))
        failed = drive(cluster, r2, first.status, T0)
        assert failed.status.phase is Phase.ROLLING_BACK, failed
        assert failed.status.reason == "NotFound" and ns in failed.status.message, failed.status
        assert not failed.transient
        ended = drive(cluster, r2, failed.status, T0)  # nothing left to roll back into: Failed, message kept
        assert ended.status.phase is Phase.FAILED and ns in ended.status.message, ended.status
        assert _gone(core, ns), "the namespace was re-created"
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespace(ns)


def _can_list(apps: client.AppsV1Api, ns: str) -> bool:
    try:
        apps.list_namespaced_deployment(ns)
        return True
    except ApiException as exc:
        if exc.status != 403:
            raise
        return False


def _gone(core: client.CoreV1Api, ns: str) -> bool:
    try:
        core.read_namespace(ns)
        return False
    except ApiException as exc:
        if exc.status != 404:
            raise
        return True

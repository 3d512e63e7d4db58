"""The ReleaseAction CRD's own rules, decided by the lab's real kube-apiserver: a malformed action is
refused at creation with a message a responder can act on, and every well-formed one is admitted.

The controller checks the same again (tests/unit/rollout/test_actions.py); this proves the first
line: a bad action never even reaches the controller when the CRD is installed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from deploy.lab.cluster import Lab
from deploy.lab.controllerproc import install_crds

pytestmark = pytest.mark.integration
GROUP, VERSION, PLURAL = "rollout.dev", "v1alpha1", "releaseactions"


@pytest.fixture(scope="module")
def namespace(lab: Lab) -> Iterator[tuple[client.CustomObjectsApi, str]]:
    install_crds(lab.kubeconfig, lab.home_context)
    api = lab.api_client(lab.home_context)
    name = f"action-crd-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    try:
        yield client.CustomObjectsApi(api), name
    finally:
        client.CoreV1Api(api).delete_namespace(name)


def action(**spec: Any) -> dict[str, Any]:
    spec.setdefault("reason", "crd test")
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ReleaseAction",
            "metadata": {"generateName": f"{spec.get('action', 'x')}-"}, "spec": spec}


def create(ns: tuple[client.CustomObjectsApi, str], body: dict[str, Any]) -> tuple[int, str]:
    custom, name = ns
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, name, PLURAL, body, dry_run="All")
    except ApiException as exc:
        return int(exc.status), str(json.loads(exc.body or "{}").get("message", exc.body))
    return 201, ""


REFUSED = [
    ("drain without region", action(action="drain"), "spec.region: Required value: spec.region is required for drain"),
    ("restore without region", action(action="restore", app="checkout"), "spec.region is required for restore"),
    ("drill without region", action(action="drill", app="checkout"), "spec.region is required for drill"),
    ("drill without app", action(action="drill", region="eu-west"), "spec.app is required for drill"),
    ("pause without app", action(action="pause"),
     "spec.app: Required value: spec.app is required for pause: name the app (rollout pause APP)"),
    ("rollback without app", action(action="rollback"), "spec.app is required for rollback"),
    ("toRelease on a pause", action(action="pause", app="checkout", toRelease="checkout-1"),
     "spec.toRelease is not allowed for pause: it applies to rollback only"),
    ("release on a drain", action(action="drain", region="eu-west", release="checkout-1"),
     "spec.release is not allowed for drain"),
    ("full on a rollback", action(action="rollback", app="checkout", full=True),
     "spec.full is not allowed for rollback"),
    ("unknown action", action(action="delete", app="checkout"), 'spec.action: Unsupported value: "delete"'),
    ("region not a name", action(action="drain", region="EU West!"), "spec.region: Invalid value"),
    ("empty reason", action(action="pause", app="checkout", reason=""), "spec.reason"),
]


@pytest.mark.parametrize(("case", "body", "message"), REFUSED, ids=[c for c, _, _ in REFUSED])
def test_the_apiserver_refuses_a_malformed_action_with_a_readable_message(
        namespace: tuple[client.CustomObjectsApi, str], case: str, body: dict[str, Any], message: str) -> None:
    status, text = create(namespace, body)
    assert status == 422, f"{case}: admitted ({status})"
    assert message in text, f"{case}: {text}"


ADMITTED = [
    action(action="drain", region="eu-west"),
    action(action="restore", region="eu-west", app="checkout"),
    action(action="rollback", app="checkout", toRelease="checkout-1-0-0", release="checkout-1-1-0"),
    action(action="promote", app="checkout", full=True, region="eu-canary"),
    action(action="pause", app="checkout"),
    action(action="drill", app="checkout", region="eu-canary"),
]


@pytest.mark.parametrize("body", ADMITTED, ids=[b["spec"]["action"] for b in ADMITTED])
def test_well_formed_actions_are_admitted(namespace: tuple[client.CustomObjectsApi, str],
                                          body: dict[str, Any]) -> None:
    assert create(namespace, body) == (201, "")

"""The ReleaseAction CRD's own rules, decided by the lab's real kube-apiserver: a malformed action is
refused at creation with a message a responder can act on, and every well-formed one is admitted.
Then the controller as a real process: actions the CRD admits but that name a region, an app or a
release the repository does not know end Rejected with their reason and an Event, the next action
is carried out, and the controller is still alive and leading.

The controller checks the same again (tests/unit/rollout/test_actions.py); this proves the first
line: a bad action never even reaches the controller when the CRD is installed.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from deploy.lab.cluster import Lab, wait_until
from deploy.lab.controllerproc import ControllerProcess, install_crds
from deploy.lab.gitserver import GitServer

pytestmark = pytest.mark.integration
GROUP, VERSION, PLURAL = "rollout.dev", "v1alpha1", "releaseactions"
NS = "rollout-system"


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
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ReleaseAction",
        "metadata": {"generateName": f"{spec.get('action', 'x')}-"},
        "spec": spec,
    }


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
    (
        "pause without app",
        action(action="pause"),
        "spec.app: Required value: spec.app is required for pause: name the app (rollout pause APP)",
    ),
    ("rollback without app", action(action="rollback"), "spec.app is required for rollback"),
    (
        "toRelease on a pause",
        action(action="pause", app="checkout", toRelease="checkout-1"),
        "spec.toRelease is not allowed for pause: it applies to rollback only",
    ),
    (
        "release on a drain",
        action(action="drain", region="eu-west", release="checkout-1"),
        "spec.release is not allowed for drain",
    ),
    (
        "full on a rollback",
        action(action="rollback", app="checkout", full=True),
        "spec.full is not allowed for rollback",
    ),
    ("unknown action", action(action="delete", app="checkout"), 'spec.action: Unsupported value: "delete"'),
    ("region not a name", action(action="drain", region="EU West!"), "spec.region: Invalid value"),
    ("empty reason", action(action="pause", app="checkout", reason=""), "spec.reason"),
    (
        "until on an unfreeze",
        action(action="unfreeze", app="checkout", until="2026-12-01T00:00:00Z"),
        "spec.until is not allowed for unfreeze: it applies to freeze only",
    ),
    ("until not a time", action(action="freeze", until="tomorrow"), "spec.until"),
    ("override-freeze without app", action(action="override-freeze"), "spec.app is required for override-freeze"),
]


@pytest.mark.parametrize(("case", "body", "message"), REFUSED, ids=[c for c, _, _ in REFUSED])
def test_the_apiserver_refuses_a_malformed_action_with_a_readable_message(
    namespace: tuple[client.CustomObjectsApi, str], case: str, body: dict[str, Any], message: str
) -> None:
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
    action(action="freeze", until="2026-12-01T00:00:00Z"),
    action(action="unfreeze", app="checkout", region="eu-west"),
    action(action="override-freeze", app="checkout", release="checkout-1-1-0"),
]


@pytest.mark.parametrize("body", ADMITTED, ids=[b["spec"]["action"] for b in ADMITTED])
def test_well_formed_actions_are_admitted(namespace: tuple[client.CustomObjectsApi, str], body: dict[str, Any]) -> None:
    assert create(namespace, body) == (201, "")


# --- the controller: a bad action the CRD admits (made-up names) is Rejected, the leader stays ----


def test_an_action_naming_what_does_not_exist_is_rejected_and_the_controller_keeps_leading(
    lab: Lab, git_server_factory: Callable[..., GitServer], tmp_path: Path
) -> None:
    install_crds(lab.kubeconfig, lab.home_context)
    api = lab.api_client(lab.home_context)
    custom = client.CustomObjectsApi(api)
    with contextlib.suppress(ApiException):
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
    git = git_server_factory()
    empty = tmp_path / "no-regions.kubeconfig"  # region clusters unreachable: nothing is applied anywhere
    empty.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    proc = ControllerProcess(
        lab.kubeconfig,
        lab.home_context,
        git.url,
        tmp_path / "controller",
        identity=f"actions-{uuid.uuid4().hex[:6]}",
        extra_args=["--regions-kubeconfig", str(empty)],
    )
    created: list[str] = []

    def create_action(**spec: Any) -> str:
        name = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, action(**spec))["metadata"]["name"]
        created.append(name)
        return name

    def state_of(name: str) -> dict[str, Any]:
        return custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name).get("status") or {}

    def leader() -> str | None:
        try:
            return client.CoordinationV1Api(api).read_namespaced_lease("rollout-controller", NS).spec.holder_identity
        except ApiException:
            return None

    proc.start()
    try:
        proc.wait_healthy(60)
        wait_until(lambda: None if leader() == proc.identity else f"leader {leader()}", 60, "the controller to lead")

        def synced() -> str | None:
            try:
                source = custom.get_namespaced_custom_object(GROUP, VERSION, NS, "rolloutsources", "default")
            except ApiException as exc:
                return f"no source yet ({exc.status})"
            return None if (source.get("status") or {}).get("lastGoodCommit") == git.head() else "not synced"

        wait_until(synced, 90, "the repository synced")
        bad = {
            create_action(action="restore", region="mars-1"): "spec.region 'mars-1' is not a region of the repository",
            create_action(action="pause", app="payments"): "spec.app 'payments' is not an app of the repository",
            create_action(action="drain", app="payments", region="eu-canary"): "spec.app 'payments'",
            create_action(
                action="pause", app="checkout", release="checkout-9-9-9"
            ): "spec.release 'checkout-9-9-9' does not exist",
        }
        good = create_action(action="drain", app="checkout", region="eu-canary")

        def handled() -> str | None:
            if not proc.alive():
                pytest.fail(f"controller exited:\n{proc.log_path.read_text()[-3000:]}")
            waiting = [n for n in [*bad, good] if not state_of(n).get("state")]
            return f"not handled yet: {waiting}" if waiting else None

        wait_until(handled, 60, "every action handled")
        for name, reason in bad.items():
            status = state_of(name)
            assert status["state"] == "Rejected" and reason in status["message"], (name, status)
        assert state_of(good)["state"] == "Done", state_of(good)
        events = [
            e
            for e in client.CoreV1Api(api).list_namespaced_event(NS).items
            if e.involved_object.kind == "ReleaseAction" and e.involved_object.name in bad
        ]
        assert {e.involved_object.name for e in events if e.reason == "ActionRejected"} == set(bad)
        record = custom.get_namespaced_custom_object("externaldns.k8s.io", "v1alpha1", NS, "dnsendpoints", "checkout")
        regions = {e["setIdentifier"] for e in record["spec"]["endpoints"]}
        assert "mars-1" not in regions and "eu-canary" in regions
        with contextlib.suppress(ApiException):
            custom.get_namespaced_custom_object("externaldns.k8s.io", "v1alpha1", NS, "dnsendpoints", "payments")
            pytest.fail("a DNSEndpoint was created for an app that does not exist")
        assert proc.alive() and leader() == proc.identity, "the controller stopped leading"
    finally:
        proc.stop()
        for name in created:
            with contextlib.suppress(ApiException):
                custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)
        # the controller's Releases and RolloutSource too: later suites share the home cluster
        for plural in ("releases", "rolloutsources"):
            for item in custom.list_namespaced_custom_object(GROUP, VERSION, NS, plural)["items"]:
                with contextlib.suppress(ApiException):
                    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, plural, item["metadata"]["name"])

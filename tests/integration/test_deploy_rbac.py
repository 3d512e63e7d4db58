"""deploy/ installed into the lab: it builds offline, applies server-side, and its RBAC is exactly
what the code uses.

- The kustomization builds without network and its Deployment's arguments parse with the CLI.
- Server-side apply to the lab's home cluster (and the region deployer to every region) succeeds.
- SubjectAccessReview tables: the controller's ServiceAccount may do every (verb, resource) the
  code calls and nothing else we can think of (secrets, wildcards, deleting releases, other
  namespaces, workloads in home); the same for the region deployer in every region.
- People: a viewer cannot create a ReleaseAction; a responder can, and cannot edit a Release.
- The ValidatingAdmissionPolicy rejects a forged spec.requestedBy, even from a cluster admin.
- The controller, run as a process with the Deployment's own arguments and only ServiceAccount
  tokens (home: rollout-controller, regions: rollout-deployer), syncs Git, creates Releases and
  starts the first wave in a region without a single permission error.

Every wait polls a condition against a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from deploy.lab.cluster import KUBECTL, Lab, wait_until
from deploy.lab.controllerproc import ControllerProcess
from deploy.lab.gitserver import GitServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
REGION_DEPLOY = DEPLOY / "base" / "region"
REGION_GRANTS = REGION_DEPLOY / "example-grants"  # the example shop's namespaces and RoleBindings
NS = "rollout-system"
GROUP = "rollout.dev"
CONTROLLER_SA = f"system:serviceaccount:{NS}:rollout-controller"
DEPLOYER_SA = f"system:serviceaccount:{NS}:rollout-deployer"
POLICY = "rollout-releaseaction-requester"
GIT_TOKEN = "rbac-git-t0ken-from-a-file"


# --- helpers -----------------------------------------------------------------------------------


def kustomize(path: Path) -> list[dict[str, Any]]:
    res = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, f"kubectl kustomize {path} failed: {res.stderr}"
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def sa_groups(user: str) -> list[str]:
    namespace = user.split(":")[2]
    return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]


@dataclass(frozen=True)
class Check:
    verb: str
    resource: str  # "group/resource[/subresource]"; core group is ""
    namespace: str | None = NS
    name: str | None = None
    allowed: bool = True

    def attributes(self) -> dict[str, Any]:
        group, _, rest = self.resource.partition("/")
        resource, _, sub = rest.partition("/")
        attrs = {"verb": self.verb, "group": group, "resource": resource}
        if sub:
            attrs["subresource"] = sub
        if self.namespace:
            attrs["namespace"] = self.namespace
        if self.name:
            attrs["name"] = self.name
        return attrs

    def __str__(self) -> str:
        where = f" -n {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {self.resource}{'/' + self.name if self.name else ''}{where}"


def access_table(api: client.ApiClient, user: str, checks: list[Check]) -> list[tuple[Check, bool, str]]:
    """Ask the API server (SubjectAccessReview) about every check; return (check, allowed, reason)."""
    authz = client.AuthorizationV1Api(api)
    rows = []
    for check in checks:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": sa_groups(user), "resourceAttributes": check.attributes()},
        }
        status = authz.create_subject_access_review(body).status
        rows.append((check, bool(status.allowed), status.reason or status.evaluation_error or ""))
    return rows


def assert_table(rows: list[tuple[Check, bool, str]], who: str) -> None:
    table = "\n".join(
        f"  {'ALLOW' if got else 'deny '} {'ok ' if got == c.allowed else 'BAD'} {c}" for c, got, _ in rows
    )
    print(f"\n{who}:\n{table}")
    wrong = [
        f"{c} expected {'allowed' if c.allowed else 'denied'} ({reason})" for c, got, reason in rows if got != c.allowed
    ]
    assert not wrong, f"{who}: " + "; ".join(wrong)


def impersonating(lab: Lab, context: str, user: str) -> client.ApiClient:
    """An ApiClient that acts as `user` through the admin's impersonation (groups: authenticated)."""
    api = lab.api_client(context)
    api.set_default_header("Impersonate-User", user)
    return api


def release_action(requested_by: str | None, action: str = "pause", app: str = "rbac-test") -> dict[str, Any]:
    spec: dict[str, Any] = {"action": action, "app": app, "reason": "rbac test"}
    if requested_by is not None:
        spec["requestedBy"] = requested_by
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ReleaseAction",
        "metadata": {"generateName": f"{action}-{app}-"},
        "spec": spec,
    }


def a_release(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Release",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "rbac-test"}},
        "spec": {
            "app": "rbac-test",
            "commit": "0" * 40,
            "version": "1.0.0",
            "planDigest": "p",
            "contentDigest": "c",
            "waves": [{"name": "w", "regions": ["eu-canary"], "smokeSeconds": 0, "maxParallel": 1}],
        },
    }


def status_of(call: Callable[[], Any]) -> int:
    """HTTP status of an API call: 2xx as 200/201, errors as their code."""
    try:
        call()
        return 200
    except ApiException as exc:
        return int(exc.status)


def rules_of(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", rule)
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
        for rule in d.get("rules") or []
    ]


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    return kustomize(DEPLOY)


@pytest.fixture(scope="module")
def installed(lab: Lab, built: list[dict[str, Any]]) -> Iterator[Lab]:
    """deploy/ applied server-side to home, deploy/base/region to every region.

    Afterwards the admission policy and the (never scheduled: home has no nodes) Deployment are
    removed so that other tests sharing the session's lab see the lab as they expect; RBAC objects
    stay (they grant nothing to the lab's admin identity that it lacks).
    """
    home = lab.home_context
    out = lab.kubectl(home, "apply", "--server-side", "-k", str(DEPLOY))
    assert "rollout-controller" in out.stdout
    lab.kubectl(
        home,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *[f"crd/{d['metadata']['name']}" for d in built if d["kind"] == "CustomResourceDefinition"],
    )
    for context in lab.region_contexts.values():
        lab.kubectl(context, "apply", "--server-side", "-k", str(REGION_DEPLOY))
        lab.kubectl(context, "apply", "--server-side", "-k", str(REGION_GRANTS))
    wait_until(lambda: _policy_problem(lab), 60, "admission policy active")
    try:
        yield lab
    finally:
        lab.kubectl(home, "delete", "--ignore-not-found", "validatingadmissionpolicybinding", POLICY, check=False)
        lab.kubectl(home, "delete", "--ignore-not-found", "validatingadmissionpolicy", POLICY, check=False)
        lab.kubectl(home, "-n", NS, "delete", "--ignore-not-found", "deployment", "rollout-controller", check=False)


def _policy_problem(lab: Lab) -> str | None:
    """None once the policy denies a forged action (policies take effect asynchronously)."""
    custom = client.CustomObjectsApi(lab.api_client(lab.home_context))
    try:
        created = custom.create_namespaced_custom_object(
            GROUP, "v1alpha1", NS, "releaseactions", release_action("someone-else"), dry_run="All"
        )
    except ApiException as exc:
        return None if exc.status == 422 and POLICY in (exc.body or "") else f"{exc.status}: {exc.body}"
    return f"forged action admitted (dry run): {created['metadata'].get('name')}"


@pytest.fixture
def people(installed: Lab) -> Iterator[dict[str, str]]:
    """Two fresh users bound in rollout-system: a viewer and a responder."""
    suffix = uuid.uuid4().hex[:6]
    users = {"viewer": f"vera-{suffix}", "responder": f"rick-{suffix}"}
    rbac = client.RbacAuthorizationV1Api(installed.api_client(installed.home_context))
    for role, user in users.items():
        rbac.create_namespaced_role_binding(
            NS,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"{user}-{role}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"rollout-{role}"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
            },
        )
    yield users
    for role, user in users.items():
        with contextlib.suppress(ApiException):
            rbac.delete_namespaced_role_binding(f"{user}-{role}", NS)


# --- the manifests -----------------------------------------------------------------------------


def test_kustomize_builds_offline_with_everything_the_install_needs(built: list[dict[str, Any]]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in built}
    for expected in [
        ("Namespace", NS),
        ("ServiceAccount", "rollout-controller"),
        ("Role", "rollout-controller"),
        ("RoleBinding", "rollout-controller"),
        ("ClusterRole", "rollout-viewer"),
        ("ClusterRole", "rollout-responder"),
        ("ValidatingAdmissionPolicy", POLICY),
        ("ValidatingAdmissionPolicyBinding", POLICY),
        ("Deployment", "rollout-controller"),
        ("PodDisruptionBudget", "rollout-controller"),
        ("NetworkPolicy", "rollout-controller"),
        ("Service", "rollout-controller-metrics"),
        ("CustomResourceDefinition", "releases.rollout.dev"),
        ("CustomResourceDefinition", "releaseactions.rollout.dev"),
        ("CustomResourceDefinition", "rolloutsources.rollout.dev"),
    ]:
        assert expected in kinds, f"deploy/ does not build {expected}"
    # Nothing in home may read secrets, and no ClusterRoleBinding hands out cluster-wide rights.
    assert not [d for d in built if d["kind"] == "ClusterRoleBinding"]
    region = kustomize(REGION_DEPLOY)
    assert only(region, "ClusterRole", "rollout-region-deployer")
    # The region deployer is bound per granted namespace, never cluster-wide (docs/security.md).
    assert not [d for d in region if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    grants = kustomize(REGION_GRANTS)
    bindings = [d for d in grants if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == [
        "catalog",
        "checkout",
        "guestbook",
        "inventory",
        "reviews",
        "search",
    ]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "ClusterRole" and binding["roleRef"]["name"] == "rollout-region-deployer"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rollout-deployer", "namespace": NS}]
    for namespace in (d for d in grants if d["kind"] == "Namespace"):
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    policy = yaml.safe_load(only(built, "ConfigMap", "rollout-policy")["data"]["policy.yaml"])
    from config.grants import parse_policy

    assert parse_policy(policy).default.namespaces == ("{app}",)


def test_no_shipped_role_has_a_wildcard(built: list[dict[str, Any]]) -> None:
    rules = rules_of(built) + rules_of(kustomize(REGION_DEPLOY))
    assert len(rules) >= 10
    for where, rule in rules:
        for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            assert not any("*" in value for value in rule.get(key) or []), f"{where}: '*' in {key}: {rule}"
        assert "secrets" not in rule.get("resources", []), f"{where} grants secrets: {rule}"


def test_deployment_is_hardened_and_its_args_are_the_clis(built: list[dict[str, Any]]) -> None:
    from rollout.cli.controller import controller

    dep = only(built, "Deployment", "rollout-controller")
    spec = dep["spec"]["template"]["spec"]
    assert dep["spec"]["replicas"] == 2
    assert spec["serviceAccountName"] == "rollout-controller"
    (container,) = spec["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert set(container["resources"]) == {"requests", "limits"}
    assert all(k in container["resources"][part] for part in ("requests", "limits") for k in ("cpu", "memory"))
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"} == spec["securityContext"]["seccompProfile"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container["args"][0] == "controller"
    args = [a.replace("$(POD_NAME)", "pod-0") for a in container["args"][1:]]
    ctx = controller.make_context("controller", args)  # raises on an unknown or malformed option
    assert ctx.params["namespace"] == NS and ctx.params["http_port"] == 8080
    assert str(ctx.params["cache_dir"]).startswith("/tmp/")
    assert ctx.params["kubeconfig"] is None, "with --kubeconfig the home cluster would not be in-cluster"
    env = {e["name"]: e for e in container["env"]}
    assert "/etc/rollout/regions" in mounts
    assert ctx.params["regions_kubeconfig"].startswith("/etc/rollout/regions/") and "KUBECONFIG" not in env
    assert "secret" in volumes[mounts["/etc/rollout/regions"]]
    assert ctx.params["policy_file"] == "/etc/rollout/policy/policy.yaml"
    assert volumes[mounts["/etc/rollout/policy"]]["configMap"]["name"] == "rollout-policy"
    # Secrets as read-only files, never environment variables; ssh host keys checked strictly.
    assert not [e for e in container["env"] if "secretKeyRef" in (e.get("valueFrom") or {})]
    secrets = volumes[mounts["/etc/rollout/secrets"]]["secret"]
    assert secrets["secretName"] == "rollout-controller-env" and secrets["defaultMode"] == 0o440
    assert ctx.params["git_token_file"] == "/etc/rollout/secrets/git-token"
    assert ctx.params["webhook_secret_file"] == "/etc/rollout/secrets/webhook-secret"
    assert ctx.params["git_known_hosts"].startswith("/etc/rollout/ssh/")
    assert ctx.params["git_host_key_checking"] == "yes"
    assert volumes[mounts["/etc/rollout/ssh"]]["configMap"]["name"] == "rollout-git-known-hosts"
    assert all(m.get("readOnly") for m in container["volumeMounts"] if m["mountPath"].startswith("/etc/rollout/"))
    assert not ctx.params["allow_insecure_git"]
    pdb = only(built, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    netpol = only(built, "NetworkPolicy")
    assert netpol["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # /metrics and probes on 8080 from monitoring only; the webhook alone on 8081 from the ingress only
    ingress = {
        p["port"]: rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in netpol["spec"]["ingress"]
        for p in rule["ports"]
    }
    assert ingress == {8080: "monitoring", 8081: "ingress-nginx"}
    assert {"name": "webhook", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    assert ctx.params["webhook_port"] == 8081 and "0.0.0.0" not in (ctx.params["http_host"], ctx.params["webhook_host"])
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    webhook_service = only(built, "Service", "rollout-controller-webhook")
    assert [p["targetPort"] for p in webhook_service["spec"]["ports"]] == ["webhook"]
    assert [p["targetPort"] for p in only(built, "Service", "rollout-controller-metrics")["spec"]["ports"]] == ["http"]
    egress_ports = {p["port"] for rule in netpol["spec"]["egress"] for p in rule["ports"]}
    assert {53, 9090, 443} <= egress_ports


def test_grafana_dashboard_charts_the_controllers_metrics() -> None:
    from rollout.metrics import REGISTRY

    dashboard = json.loads((DEPLOY / "grafana" / "rollout-controller.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    names = {m.name for m in REGISTRY.collect()}
    assert names, "rollout.metrics registers no metrics"
    for name in names:
        assert re.search(rf"\b{re.escape(name)}(_total|_bucket)?\b", exprs), f"no panel shows {name}"
    used = set(re.findall(r"\b(rollout_[a-z_]+?)(?:_total|_bucket|_sum|_count)?\b", exprs))
    assert used <= names, f"panels query metrics the controller does not export: {used - names}"


# --- the installation in the lab --------------------------------------------------------------


def test_server_side_apply_is_idempotent(installed: Lab) -> None:
    """A second apply by the same manager changes nothing and conflicts with nothing."""
    home = installed.home_context
    diff = installed.kubectl(home, "diff", "--server-side", "-k", str(DEPLOY), check=False)
    # kubectl diff: 0 = no differences, 1 = differences, >1 = error
    assert diff.returncode == 0, f"re-applying deploy/ would change:\n{diff.stdout[-3000:]}{diff.stderr[-2000:]}"
    for context in installed.region_contexts.values():
        again = installed.kubectl(context, "apply", "--server-side", "-k", str(REGION_DEPLOY))
        assert "serverside-applied" in again.stdout


CONTROLLER_NEEDS = [
    # rollout/leader.py (kubernetes LeaseLock)
    Check("create", "coordination.k8s.io/leases"),
    Check("get", "coordination.k8s.io/leases", name="rollout-controller"),
    Check("update", "coordination.k8s.io/leases", name="rollout-controller"),
    # rollout/store.py, rollout/cache.py
    Check("create", "rollout.dev/releases"),
    Check("get", "rollout.dev/releases", name="checkout-0123456789ab"),
    Check("list", "rollout.dev/releases"),
    Check("watch", "rollout.dev/releases"),
    Check("update", "rollout.dev/releases/status", name="checkout-0123456789ab"),
    Check("list", "rollout.dev/releaseactions"),
    Check("watch", "rollout.dev/releaseactions"),
    Check("patch", "rollout.dev/releaseactions/status", name="pause-checkout-x"),
    # rollout/controller.py _ensure_source (server-side apply), rollout/sync.py status
    Check("create", "rollout.dev/rolloutsources"),
    Check("patch", "rollout.dev/rolloutsources", name="default"),
    Check("patch", "rollout.dev/rolloutsources/status", name="default"),
    # rollout/notify.py, rollout/sync.py
    Check("create", "/events"),
    # regions/traffic.py (server-side apply of DNSEndpoints)
    Check("get", "externaldns.k8s.io/dnsendpoints", name="checkout"),
    Check("create", "externaldns.k8s.io/dnsendpoints"),
    Check("patch", "externaldns.k8s.io/dnsendpoints", name="checkout"),
]


def deny(verb: str, resource: str, namespace: str | None = NS, name: str | None = None) -> Check:
    return Check(verb, resource, namespace, name, allowed=False)


CONTROLLER_MUST_NOT = [
    # no secrets, anywhere
    deny("get", "/secrets"),
    deny("list", "/secrets"),
    deny("watch", "/secrets"),
    deny("list", "/secrets", None),
    deny("get", "/secrets", "kube-system"),
    # no wildcard verbs
    deny("*", "rollout.dev/releases"),
    deny("*", "/pods"),
    deny("*", "*/*", None),
    # releases: never deleted or edited (the spec is Git's); only their status is written
    deny("delete", "rollout.dev/releases"),
    deny("deletecollection", "rollout.dev/releases"),
    deny("update", "rollout.dev/releases"),
    deny("patch", "rollout.dev/releases"),
    deny("patch", "rollout.dev/releases/status"),
    # actions are the responders' audit record: the controller only writes their status
    deny("create", "rollout.dev/releaseactions"),
    deny("update", "rollout.dev/releaseactions"),
    deny("patch", "rollout.dev/releaseactions"),
    deny("delete", "rollout.dev/releaseactions"),
    deny("delete", "rollout.dev/rolloutsources"),
    # other namespaces, cluster-wide, other objects' names
    deny("list", "rollout.dev/releases", "default"),
    deny("list", "rollout.dev/releases", None),
    deny("update", "coordination.k8s.io/leases", "kube-system"),
    deny("update", "coordination.k8s.io/leases", name="someone-elses-lease"),
    deny("create", "/events", "default"),
    deny("patch", "externaldns.k8s.io/dnsendpoints", "default"),
    deny("list", "externaldns.k8s.io/dnsendpoints", None),
    deny("delete", "externaldns.k8s.io/dnsendpoints"),
    # workloads, configuration and escalation in home
    deny("create", "/pods"),
    deny("create", "apps/deployments"),
    deny("patch", "apps/deployments"),
    deny("get", "/configmaps"),
    deny("list", "/serviceaccounts"),
    deny("create", "/serviceaccounts/token"),
    deny("create", "rbac.authorization.k8s.io/roles"),
    deny("bind", "rbac.authorization.k8s.io/clusterroles", None),
    deny("impersonate", "/users", None),
    deny("create", "/namespaces", None),
    deny("delete", "/namespaces", None),
    deny("patch", "admissionregistration.k8s.io/validatingadmissionpolicies", None),
    deny("update", "apiextensions.k8s.io/customresourcedefinitions", None),
]


def test_controller_service_account_can_do_exactly_what_the_code_needs(installed: Lab) -> None:
    api = installed.api_client(installed.home_context)
    assert_table(access_table(api, CONTROLLER_SA, CONTROLLER_NEEDS + CONTROLLER_MUST_NOT), CONTROLLER_SA)


REGION_NEEDS = [
    Check("get", "/namespaces", "checkout", "checkout"),
    Check("list", "apps/deployments", "checkout"),
    Check("create", "apps/deployments", "checkout"),
    Check("get", "apps/deployments", "checkout", "checkout"),
    Check("patch", "apps/deployments", "checkout", "checkout-canary"),
    Check("list", "/services", "catalog"),
    Check("create", "/services", "search"),
    Check("get", "/services", "checkout", "checkout"),
    Check("patch", "/services", "checkout", "checkout-stable"),
    Check("get", "gateway.networking.k8s.io/httproutes", "checkout", "checkout"),
    Check("create", "gateway.networking.k8s.io/httproutes", "checkout"),
    Check("patch", "gateway.networking.k8s.io/httproutes", "checkout", "checkout"),
    Check("create", "/events", "checkout"),
    # hooks and pruning (strategies/hooks.py, strategies/prune.py), in granted namespaces only
    Check("create", "batch/jobs", "checkout"),
    Check("list", "batch/jobs", "checkout"),
    Check("delete", "apps/deployments", "checkout", "checkout-old"),
    Check("delete", "/configmaps", "checkout", "old-config"),
    Check("list", "/configmaps", "checkout"),
]
REGION_MUST_NOT = [
    deny("get", "/secrets", "checkout"),
    deny("list", "/secrets", None),
    deny("get", "/secrets", "kube-system"),
    deny("*", "apps/deployments", "checkout"),
    deny("delete", "/namespaces", None),
    deny("delete", "apps/deployments", "kube-system"),
    deny("delete", "/configmaps", "rollout-system"),
    deny("deletecollection", "apps/deployments", None),
    deny("create", "/pods", "checkout"),
    deny("create", "/pods/exec", "checkout"),
    deny("update", "apps/deployments/scale", "checkout"),
    deny("create", "rbac.authorization.k8s.io/rolebindings", "checkout"),
    deny("bind", "rbac.authorization.k8s.io/clusterroles", None),
    deny("create", "/serviceaccounts/token", "rollout-system"),
    deny("impersonate", "/users", None),
    deny("list", "/nodes", None),
    deny("update", "/namespaces", None),
    deny("get", "/configmaps", "kube-system"),
    # bound per granted namespace only: nothing in kube-system, rollout-system or a namespace not granted
    deny("create", "/namespaces", None),
    deny("patch", "/namespaces", "checkout", "checkout"),
    deny("create", "apps/deployments", "kube-system"),
    deny("patch", "apps/deployments", "kube-system", "coredns"),
    deny("create", "apps/deployments", NS),
    deny("create", "/services", "kube-system"),
    deny("create", "apps/deployments", "not-granted"),
    deny("list", "apps/deployments", None),
    deny("get", "/namespaces", "kube-system", "kube-system"),
    deny("create", "/events", "kube-system"),
]


def test_region_deployer_can_do_exactly_what_the_strategies_need(installed: Lab) -> None:
    assert installed.region_contexts, "the lab has no region"
    for region, context in installed.region_contexts.items():
        api = installed.api_client(context)
        assert_table(access_table(api, DEPLOYER_SA, REGION_NEEDS + REGION_MUST_NOT), f"{DEPLOYER_SA} in {region}")


def test_viewer_reads_but_cannot_request_an_action(installed: Lab, people: dict[str, str]) -> None:
    viewer = client.CustomObjectsApi(impersonating(installed, installed.home_context, people["viewer"]))
    assert status_of(lambda: viewer.list_namespaced_custom_object(GROUP, "v1alpha1", NS, "releases")) == 200
    assert status_of(lambda: viewer.list_namespaced_custom_object(GROUP, "v1alpha1", NS, "releaseactions")) == 200
    assert (
        status_of(
            lambda: viewer.create_namespaced_custom_object(
                GROUP, "v1alpha1", NS, "releaseactions", release_action(people["viewer"], "rollback")
            )
        )
        == 403
    )
    assert status_of(lambda: viewer.list_namespaced_custom_object(GROUP, "v1alpha1", "default", "releases")) == 403


def test_responder_requests_actions_but_cannot_edit_releases_or_records(installed: Lab, people: dict[str, str]) -> None:
    home = installed.home_context
    admin = client.CustomObjectsApi(installed.api_client(home))
    name = f"rbac-test-{uuid.uuid4().hex[:8]}"
    admin.create_namespaced_custom_object(GROUP, "v1alpha1", NS, "releases", a_release(name))
    user = people["responder"]
    responder = client.CustomObjectsApi(impersonating(installed, home, user))
    try:
        created = responder.create_namespaced_custom_object(
            GROUP, "v1alpha1", NS, "releaseactions", release_action(user, "rollback")
        )
        assert created["spec"]["requestedBy"] == user
        action = created["metadata"]["name"]
        spec_patch = {"spec": {"version": "6.6.6"}}
        assert (
            status_of(
                lambda: responder.patch_namespaced_custom_object(GROUP, "v1alpha1", NS, "releases", name, spec_patch)
            )
            == 403
        )
        assert (
            status_of(
                lambda: responder.replace_namespaced_custom_object(
                    GROUP, "v1alpha1", NS, "releases", name, a_release(name)
                )
            )
            == 403
        )
        assert (
            status_of(
                lambda: responder.patch_namespaced_custom_object_status(
                    GROUP, "v1alpha1", NS, "releases", name, {"status": {"phase": "Succeeded"}}
                )
            )
            == 403
        )
        assert (
            status_of(lambda: responder.delete_namespaced_custom_object(GROUP, "v1alpha1", NS, "releases", name)) == 403
        )
        assert (
            status_of(
                lambda: responder.patch_namespaced_custom_object_status(
                    GROUP, "v1alpha1", NS, "releaseactions", action, {"status": {"state": "Done"}}
                )
            )
            == 403
        )
        assert (
            status_of(
                lambda: responder.delete_namespaced_custom_object(GROUP, "v1alpha1", NS, "releaseactions", action)
            )
            == 403
        )
        apps = client.AppsV1Api(impersonating(installed, home, user))
        assert status_of(lambda: apps.list_namespaced_deployment(NS)) == 403
        # the Release is untouched
        assert admin.get_namespaced_custom_object(GROUP, "v1alpha1", NS, "releases", name)["spec"]["version"] == "1.0.0"
    finally:
        admin.delete_namespaced_custom_object(GROUP, "v1alpha1", NS, "releases", name)


def test_admission_policy_rejects_a_forged_requester(installed: Lab, people: dict[str, str]) -> None:
    home = installed.home_context
    user = people["responder"]
    responder = client.CustomObjectsApi(impersonating(installed, home, user))
    for forged in ("someone-else", "", None):
        with pytest.raises(ApiException) as denied:
            responder.create_namespaced_custom_object(GROUP, "v1alpha1", NS, "releaseactions", release_action(forged))
        assert denied.value.status == 422
        message = json.loads(denied.value.body)["message"]
        assert POLICY in message and f'must be the requesting user "{user}"' in message, message
    truthful = responder.create_namespaced_custom_object(GROUP, "v1alpha1", NS, "releaseactions", release_action(user))
    assert truthful["spec"]["requestedBy"] == user
    # Not even a cluster admin (system:masters) can write someone else's name into the record.
    admin = client.CustomObjectsApi(installed.api_client(home))
    with pytest.raises(ApiException) as denied:
        admin.create_namespaced_custom_object(GROUP, "v1alpha1", NS, "releaseactions", release_action(user))
    assert denied.value.status == 422 and POLICY in denied.value.body
    # and the record cannot be rewritten afterwards (spec is immutable in the CRD)
    with pytest.raises(ApiException) as immutable:
        admin.patch_namespaced_custom_object(
            GROUP,
            "v1alpha1",
            NS,
            "releaseactions",
            truthful["metadata"]["name"],
            {"spec": {"requestedBy": "lab-admin"}},
        )
    assert immutable.value.status == 422 and "an action is a record" in immutable.value.body


def test_override_freeze_is_its_own_verb(installed: Lab, people: dict[str, str]) -> None:
    """A responder may freeze and unfreeze, but an override-freeze is admitted only from someone
    bound to rollout-freeze-overrider (the admission policy asks the authorizer for that verb)."""
    home, user = installed.home_context, people["responder"]
    responder = client.CustomObjectsApi(impersonating(installed, home, user))

    def create(action: str) -> Any:
        body = release_action(user, action)
        if action in ("freeze", "unfreeze"):
            body["spec"].pop("app")  # `rollout freeze --all`
        return responder.create_namespaced_custom_object(GROUP, "v1alpha1", NS, "releaseactions", body, dry_run="All")

    assert create("freeze")["spec"]["action"] == "freeze"
    assert create("unfreeze")["spec"]["action"] == "unfreeze"
    with pytest.raises(ApiException) as denied:
        create("override-freeze")
    assert denied.value.status == 403, denied.value.body
    assert f"{user} may not override freezes" in json.loads(denied.value.body)["message"]
    rbac = client.RbacAuthorizationV1Api(installed.api_client(home))
    binding = f"{user}-freeze-overrider"
    rbac.create_namespaced_role_binding(
        NS,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": binding},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "rollout-freeze-overrider",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    try:

        def refused() -> str | None:
            code = status_of(lambda: create("override-freeze"))
            return None if code == 200 else f"still {code}"

        wait_until(refused, 30, "override-freeze admitted once rollout-freeze-overrider is bound")
    finally:
        rbac.delete_namespaced_role_binding(binding, NS)


def test_approve_is_its_own_verb_and_its_groups_are_the_requesters_own(installed: Lab, people: dict[str, str]) -> None:
    """`rollout approve` needs the verb approve (rollout-approver) besides the responder's create,
    and the groups it counts for (spec.requesterGroups) must be groups the API server gave the
    requester: a responder cannot claim the group an approval gate allows."""
    home, user = installed.home_context, people["responder"]

    def create(groups: list[str], member_of: str | None = None) -> Any:
        api = impersonating(installed, home, user)
        if member_of:
            api.set_default_header("Impersonate-Group", member_of)
        body = release_action(user, "approve")
        body["spec"].update(wave="canary", requesterGroups=groups)
        return client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, "v1alpha1", NS, "releaseactions", body, dry_run="All"
        )

    with pytest.raises(ApiException) as denied:
        create([])
    assert denied.value.status == 403, denied.value.body
    assert f"{user} may not approve or refuse" in json.loads(denied.value.body)["message"]
    rbac = client.RbacAuthorizationV1Api(installed.api_client(home))
    binding = f"{user}-approver"
    rbac.create_namespaced_role_binding(
        NS,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "rollout-approver"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    try:

        def admitted() -> str | None:
            code = status_of(lambda: create([]))
            return None if code == 200 else f"still {code}"

        wait_until(admitted, 30, "approve admitted once rollout-approver is bound")
        with pytest.raises(ApiException) as forged:
            create(["release-managers"])
        assert forged.value.status == 422, forged.value.body
        assert "may only name groups of the requesting user" in json.loads(forged.value.body)["message"]
        assert create(["release-managers"], member_of="release-managers")["spec"]["requesterGroups"] == [
            "release-managers"
        ]
    finally:
        rbac.delete_namespaced_role_binding(binding, NS)


# --- the controller with nothing but its ServiceAccounts' tokens ------------------------------


def token_kubeconfig(lab: Lab, path: Path, tokens: dict[str, str]) -> Path:
    """A kubeconfig with the lab's servers and CA, one context per cluster, each with a bearer token."""
    admin = yaml.safe_load(lab.kubeconfig.read_text())
    clusters = [c for c in admin["clusters"] if c["name"] in tokens]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "users": [{"name": f"{ctx}-sa", "user": {"token": tok}} for ctx, tok in tokens.items()],
        "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": f"{ctx}-sa"}} for ctx in tokens],
        "current-context": lab.home_context,
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def manifest_args(built: list[dict[str, Any]], overrides: dict[str, str | None]) -> list[str]:
    """The Deployment's container args with the environment-specific values replaced (None: dropped)."""
    (container,) = only(built, "Deployment", "rollout-controller")["spec"]["template"]["spec"]["containers"]
    out = []
    for arg in container["args"][1:]:
        key, _, _value = arg.partition("=")
        if key in overrides:
            if overrides[key] is not None:
                out.append(f"{key}={overrides[key]}")
        else:
            out.append(arg)
    return out


def _shipped_policy(built: list[dict[str, Any]], tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(only(built, "ConfigMap", "rollout-policy")["data"]["policy.yaml"])
    return path


def test_controller_runs_with_the_manifests_args_and_only_service_account_tokens(
    installed: Lab,
    built: list[dict[str, Any]],
    git_server_factory: Callable[..., GitServer],
    people: dict[str, str],
    tmp_path: Path,
) -> None:
    lab = installed
    home = lab.home_context
    git = git_server_factory(token=GIT_TOKEN)  # read by the controller from --git-token-file
    secret_dir = tmp_path / "secrets"  # the Secret's mount, here local files
    secret_dir.mkdir()
    for name, value in (("git-token", GIT_TOKEN + "\n"), ("webhook-secret", "rbac-webhook-key")):
        (secret_dir / name).write_text(value)
        (secret_dir / name).chmod(0o400)
    tokens = {
        home: lab.kubectl(home, "-n", NS, "create", "token", "rollout-controller", "--duration=1h").stdout.strip()
    }
    for context in lab.region_contexts.values():
        tokens[context] = lab.kubectl(
            context, "-n", NS, "create", "token", "rollout-deployer", "--duration=1h"
        ).stdout.strip()
    kubeconfig = token_kubeconfig(lab, tmp_path / "sa.kubeconfig", tokens)
    admin_api = lab.api_client(home)
    custom = client.CustomObjectsApi(admin_api)
    before = {
        r["metadata"]["name"] for r in custom.list_namespaced_custom_object(GROUP, "v1alpha1", NS, "releases")["items"]
    }
    region_ns_before = {
        ctx: {n.metadata.name for n in client.CoreV1Api(lab.api_client(ctx)).list_namespace().items}
        for ctx in lab.region_contexts.values()
    }
    proc = ControllerProcess(kubeconfig, home, git.url, tmp_path / "controller", identity="rbac-e2e")
    proc.extra_args = manifest_args(
        built,
        {
            "--repo": git.url,
            "--prometheus-url": None,
            "--cache-dir": str(tmp_path / "controller" / "cache"),
            "--http-host": "127.0.0.1",
            "--http-port": str(proc.http_port),
            "--identity": proc.identity,
            "--webhook-host": "127.0.0.1",
            "--webhook-port": None,  # the lab process: one loopback listener
            "--regions-kubeconfig": str(kubeconfig),  # the Secret's mount path, here a local file
            "--policy": str(_shipped_policy(built, tmp_path)),
            "--git-token-file": str(secret_dir / "git-token"),
            "--webhook-secret-file": str(secret_dir / "webhook-secret"),
        },
    )  # the ConfigMap's mount, here a local file
    assert "--ref=main" in proc.extra_args and "--lease-seconds=15" in proc.extra_args
    proc.start()
    try:
        proc.wait_healthy(60)
        head = git.head()

        def releases_made() -> str | None:
            if not proc.alive():
                pytest.fail(f"controller exited:\n{proc.log_path.read_text()[-3000:]}")
            items = custom.list_namespaced_custom_object(GROUP, "v1alpha1", NS, "releases")["items"]
            mine = [r for r in items if r["spec"]["commit"] == head and r["metadata"]["name"] not in before]
            apps = {r["spec"]["app"] for r in mine}
            return None if {"checkout", "catalog", "search"} <= apps else f"releases at {head[:12]}: {sorted(apps)}"

        wait_until(releases_made, 120, "Releases created by the controller from Git")

        def source_synced() -> str | None:  # written after the sync's releases, not with them
            source = custom.get_namespaced_custom_object(GROUP, "v1alpha1", NS, "rolloutsources", "default")
            status = source.get("status") or {}
            return None if status.get("valid") is True and status.get("commit") == head else f"status {status}"

        wait_until(source_synced, 30, "the RolloutSource's status: valid, at the pushed commit")
        lease = client.CoordinationV1Api(admin_api).read_namespaced_lease("rollout-controller", NS)
        assert lease.spec.holder_identity == "rbac-e2e"

        # The first wave starts in a lab region: the deployer identity applies the app there.
        canary = lab.region_contexts.get("eu-canary")
        if canary is not None:
            apps_api = client.AppsV1Api(lab.api_client(canary))

            def applied() -> str | None:
                try:
                    deps = apps_api.list_namespaced_deployment("checkout").items
                except ApiException as exc:
                    return f"{exc.status}"
                managers = {m.manager for d in deps for m in d.metadata.managed_fields or []}
                return None if "regional-rollout" in managers else f"deployments {[d.metadata.name for d in deps]}"

            wait_until(applied, 120, "checkout applied in eu-canary by the controller")

        def event_recorded() -> str | None:
            events = client.CoreV1Api(admin_api).list_namespaced_event(NS).items
            ours = [e for e in events if e.source and e.source.component == "rollout-controller"]
            return None if ours else "no Event from rollout-controller yet"

        wait_until(event_recorded, 60, "an Event written by the controller")

        # A responder's requests go through admission and are carried out with the controller's
        # rights only: pause (releases/status, releaseactions/status), drain (DNSEndpoints).
        user = people["responder"]
        responder = client.CustomObjectsApi(impersonating(lab, home, user))
        pause = responder.create_namespaced_custom_object(
            GROUP, "v1alpha1", NS, "releaseactions", release_action(user, "pause", "checkout")
        )
        drain = release_action(user, "drain", "checkout")
        drain["spec"]["region"] = "eu-canary"
        drain = responder.create_namespaced_custom_object(GROUP, "v1alpha1", NS, "releaseactions", drain)

        def handled(name: str) -> Callable[[], str | None]:
            def problem() -> str | None:
                state = (
                    custom.get_namespaced_custom_object(GROUP, "v1alpha1", NS, "releaseactions", name).get("status")
                    or {}
                ).get("state")
                return None if state == "Done" else f"{name}: state {state}"

            return problem

        wait_until(handled(pause["metadata"]["name"]), 60, "pause carried out")
        wait_until(handled(drain["metadata"]["name"]), 60, "drain carried out")
        checkout = [
            r
            for r in custom.list_namespaced_custom_object(GROUP, "v1alpha1", NS, "releases")["items"]
            if r["spec"]["app"] == "checkout" and r["spec"]["commit"] == head
        ]
        audit = [a for r in checkout for a in (r.get("status") or {}).get("audit") or []]
        assert any(a["action"] == "pause" and a.get("by") == user for a in audit), audit
        record = custom.get_namespaced_custom_object("externaldns.k8s.io", "v1alpha1", NS, "dnsendpoints", "checkout")
        weights = {e["setIdentifier"]: e["providerSpecific"][0]["value"] for e in record["spec"]["endpoints"]}
        assert weights["eu-canary"] == "0", weights
        exported = proc.metrics()
        assert exported.count("rollout_leader 1.0") == 1
        calls = re.findall(r"rollout_api_calls_total\{([^}]*)\} ([0-9.e+]+)", exported)
        assert calls, "no API calls counted"
        # Refused: nothing the manifests grant. The prune step's inventory tries every listable
        # kind of the region and skips, with one warning line, those the deployer may not list
        # (secrets, roles...): by design (strategies/cluster.py inventory), so not counted here.
        granted = _deployer_resources()
        refused = [
            labels
            for labels, _ in calls
            if re.search(r'code="40[13]"', labels)
            and (re.search(r'resource="([^"]*)"', labels) or [None, ""])[1] in granted | {""}
        ]
        assert not refused, f"API calls refused: {refused}"
        log = proc.log_path.read_text()
        assert GIT_TOKEN not in log
        denied = [
            line
            for line in log.splitlines()
            if re.search(r'"status": ?403\b|[Ff]orbidden', line) and "prune: kinds not listed" not in line
        ]
        assert not denied, "the controller hit permission errors:\n" + "\n".join(denied[:20])
    finally:
        proc.stop()
        _cleanup_controller_state(lab, before, region_ns_before)


def _cleanup_controller_state(lab: Lab, releases_before: set[str], region_ns_before: dict[str, set[str]]) -> None:
    """Leave the shared lab as we found it: our releases, actions, source, lease, DNS records, app namespaces."""
    home = lab.home_context
    api = lab.api_client(home)
    custom = client.CustomObjectsApi(api)
    with contextlib.suppress(ApiException):
        for release in custom.list_namespaced_custom_object(GROUP, "v1alpha1", NS, "releases")["items"]:
            if release["metadata"]["name"] not in releases_before:
                custom.delete_namespaced_custom_object(GROUP, "v1alpha1", NS, "releases", release["metadata"]["name"])
    for call in (
        lambda: custom.delete_namespaced_custom_object(GROUP, "v1alpha1", NS, "rolloutsources", "default"),
        lambda: client.CoordinationV1Api(api).delete_namespaced_lease("rollout-controller", NS),
    ):
        with contextlib.suppress(ApiException):
            call()
    for app in ("checkout", "catalog", "search"):
        with contextlib.suppress(ApiException):
            custom.delete_namespaced_custom_object("externaldns.k8s.io", "v1alpha1", NS, "dnsendpoints", app)
    for context, existing in region_ns_before.items():
        core = client.CoreV1Api(lab.api_client(context))
        for ns in core.list_namespace().items:
            if ns.metadata.name not in existing:
                with contextlib.suppress(ApiException):
                    core.delete_namespace(ns.metadata.name)


def test_region_token_secret_is_filled_for_the_regions_kubeconfig(installed: Lab) -> None:
    """The long-lived token Secret docs/install.md builds the regions kubeconfig from gets a token."""
    for context in installed.region_contexts.values():
        core = client.CoreV1Api(installed.api_client(context))

        def filled(core: client.CoreV1Api = core) -> str | None:
            data = core.read_namespaced_secret("rollout-deployer-token", NS).data or {}
            return None if data.get("token") else "token not filled in yet"

        wait_until(filled, 60, f"rollout-deployer-token in {context}")


def _deployer_resources() -> set[str]:
    """Every resource the region deployer's ClusterRole names (deploy/base/region/deployer.yaml)."""
    docs = yaml.safe_load_all((REGION_DEPLOY / "deployer.yaml").read_text())
    role = next(d for d in docs if d and d.get("kind") == "ClusterRole")
    return {r for rule in role["rules"] for r in rule["resources"]}

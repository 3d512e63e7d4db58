"""The operator's rollout policy (config/grants.py): each escalation a repository author could try,
the exact message it must produce, and `rollout validate` refusing it.

The attack table is also what docs/security.md cites as the proof of each mitigation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from config.errors import InvalidRepository
from config.grants import (
    DEFAULT_POLICY,
    Grant,
    InvalidPolicy,
    PodSecurity,
    load_policy,
    parse_policy,
    violations,
)
from config.loader import load_repository
from rollout.cli import main

POLICY_FIX = "ask the platform operator to grant it in the rollout policy (docs/security.md)"
BASELINE = f"app 'web' has Pod Security level 'baseline' ({POLICY_FIX})"


def deployment(pod: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    pod_spec = {"containers": [{"name": "web", "image": "web:1.0"}], **(pod or {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", **metadata},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec},
        },
    }


def container(**security: Any) -> dict[str, Any]:
    return {"containers": [{"name": "web", "image": "web:1.0", "securityContext": security}]}


@dataclass(frozen=True)
class Attack:
    name: str
    objects: list[dict[str, Any]]
    file: str
    field: str
    problem: str
    fix: str
    namespace: str = "web"


ATTACKS = [
    Attack(
        "a Deployment in kube-system (the plan's namespace)",
        [deployment()],
        "rollout.yaml",
        "namespace",
        "namespace 'kube-system' is reserved for the cluster and the controller; app 'web' may not deploy there",
        "deploy to the app's own namespace 'web'; only the platform operator can grant 'kube-system', "
        "by naming it in the rollout policy",
        namespace="kube-system",
    ),
    Attack(
        "a namespace not granted",
        [deployment()],
        "rollout.yaml",
        "namespace",
        "namespace 'payments' is not granted to app 'web' (granted: web)",
        f"deploy to a granted namespace, or {POLICY_FIX}",
        namespace="payments",
    ),
    Attack(
        "a manifest's own namespace",
        [deployment(namespace="rollout-system")],
        "manifests",
        "Deployment/web.metadata.namespace",
        "sets its own namespace 'rollout-system'; app 'web' deploys to the plan's namespace 'web'",
        "remove metadata.namespace (rollout.yaml's namespace chooses it)",
    ),
    Attack(
        "a ClusterRoleBinding",
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "own"},
                "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
            }
        ],
        "manifests",
        "ClusterRoleBinding/own.kind",
        "kind rbac.authorization.k8s.io/ClusterRoleBinding is cluster-scoped and not granted to app 'web'",
        "remove it, or ask the platform operator to grant kinds: [rbac.authorization.k8s.io/ClusterRoleBinding] "
        "to this app in the rollout policy (docs/security.md)",
    ),
    Attack(
        "a RoleBinding",
        [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "own"}}],
        "manifests",
        "RoleBinding/own.kind",
        "kind rbac.authorization.k8s.io/RoleBinding is sensitive: it grants permissions and not granted to app 'web'",
        "remove it, or ask the platform operator to grant kinds: [rbac.authorization.k8s.io/RoleBinding] "
        "to this app in the rollout policy (docs/security.md)",
    ),
    Attack(
        "a Secret",
        [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}],
        "manifests",
        "Secret/s.kind",
        "kind Secret is sensitive: it holds credentials and not granted to app 'web'",
        "remove it, or ask the platform operator to grant kinds: [Secret] to this app in the rollout policy "
        "(docs/security.md)",
    ),
    Attack(
        "a Namespace object",
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mine"}}],
        "manifests",
        "Namespace/mine.kind",
        "Namespace objects are not granted to app 'web': the controller creates the plan's namespace itself",
        "remove it and set namespace: in rollout.yaml",
    ),
    Attack(
        "a bare Pod",
        [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "c:1"}]},
            }
        ],
        "manifests",
        "Pod/p.kind",
        "kind Pod is not an application kind granted by default and not granted to app 'web'",
        "remove it, or ask the platform operator to grant kinds: [Pod] to this app in the rollout "
        "policy (docs/security.md)",
    ),
    Attack(
        "a privileged pod",
        [deployment(container(privileged=True))],
        "manifests",
        "Deployment/web.spec.template.spec.containers[0].securityContext.privileged",
        "runs a privileged container (full access to the node)",
        f"remove privileged: true; {BASELINE}",
    ),
    Attack(
        "a hostPath mount",
        [deployment({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]})],
        "manifests",
        "Deployment/web.spec.template.spec.volumes[0].hostPath",
        "mounts the node's filesystem (hostPath '/')",
        f"use emptyDir, configMap, secret or a persistentVolumeClaim; {BASELINE}",
    ),
    Attack(
        "hostNetwork",
        [deployment({"hostNetwork": True})],
        "manifests",
        "Deployment/web.spec.template.spec.hostNetwork",
        "hostNetwork: true shares the node's namespace with the pod",
        f"remove hostNetwork; {BASELINE}",
    ),
    Attack(
        "hostPID",
        [deployment({"hostPID": True})],
        "manifests",
        "Deployment/web.spec.template.spec.hostPID",
        "hostPID: true shares the node's namespace with the pod",
        f"remove hostPID; {BASELINE}",
    ),
    Attack(
        "a pod running as the deployer's ServiceAccount",
        [deployment({"serviceAccountName": "rollout-deployer"})],
        "manifests",
        "Deployment/web.spec.template.spec.serviceAccountName",
        "runs as ServiceAccount 'rollout-deployer', which app 'web' neither renders nor is granted (its token "
        "would be mounted into the pod)",
        f"use the 'default' ServiceAccount or one this app renders, or {POLICY_FIX} (serviceAccounts)",
    ),
    Attack(
        "added capabilities",
        [deployment(container(capabilities={"add": ["SYS_ADMIN", "NET_ADMIN"]}))],
        "manifests",
        "Deployment/web.spec.template.spec.containers[0].securityContext.capabilities.add",
        "adds Linux capabilities SYS_ADMIN, NET_ADMIN",
        f"remove securityContext.capabilities.add; {BASELINE}",
    ),
    Attack(
        "a hostPort",
        [deployment({"containers": [{"name": "w", "image": "w:1", "ports": [{"hostPort": 22}]}]})],
        "manifests",
        "Deployment/web.spec.template.spec.containers[0].ports[0].hostPort",
        "binds port 22 on the node",
        f"remove hostPort and expose the port through a Service; {BASELINE}",
    ),
    Attack(
        "a privileged CronJob init container",
        [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "c"},
                "spec": {
                    "jobTemplate": {
                        "spec": {
                            "template": {
                                "spec": {
                                    "initContainers": [
                                        {"name": "i", "image": "i:1", "securityContext": {"privileged": True}}
                                    ],
                                    "containers": [{"name": "c", "image": "c:1"}],
                                }
                            }
                        }
                    }
                },
            }
        ],
        "manifests",
        "CronJob/c.spec.jobTemplate.spec.template.spec.initContainers[0].securityContext.privileged",
        "runs a privileged container (full access to the node)",
        f"remove privileged: true; {BASELINE}",
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_each_escalation_is_refused_with_its_exact_message(attack: Attack) -> None:
    found = violations(
        attack.objects,
        DEFAULT_POLICY.grant_for("web"),
        app="web",
        namespace=attack.namespace,
        manifests="manifests",
        plan_file="rollout.yaml",
    )
    assert [(i.file, i.field, i.problem, i.fix) for i in found] == [
        (attack.file, attack.field, attack.problem, attack.fix)
    ]


def test_an_ordinary_app_passes_the_default_policy() -> None:
    objects = [
        deployment(),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web-runner"}},
        deployment({"serviceAccountName": "web-runner"}),
        deployment({"serviceAccountName": "default"}, namespace="web"),
    ]
    assert violations(objects, DEFAULT_POLICY.default, app="web", namespace="web") == []


def test_a_grant_widens_exactly_what_it_names() -> None:
    policy = parse_policy(
        {
            "grants": [
                {
                    "apps": ["pay-*"],
                    "namespaces": ["payments", "{app}"],
                    "kinds": ["Secret"],
                    "serviceAccounts": ["vault"],
                },
                {
                    "apps": ["node-agent"],
                    "namespaces": ["kube-system"],
                    "podSecurity": "privileged",
                    "kinds": ["apps/DaemonSet", "rbac.authorization.k8s.io/ClusterRoleBinding"],
                },
            ]
        }
    )
    pay = policy.grant_for("pay-api")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    assert (
        violations([secret, deployment({"serviceAccountName": "vault"})], pay, app="pay-api", namespace="payments")
        == []
    )
    assert violations([secret], pay, app="pay-api", namespace="pay-api") == []
    assert [
        i.field for i in violations([deployment({"hostNetwork": True})], pay, app="pay-api", namespace="payments")
    ] == ["Deployment/web.spec.template.spec.hostNetwork"]
    agent = policy.grant_for("node-agent")
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "b"}}
    assert (
        violations([deployment({"hostNetwork": True}), binding], agent, app="node-agent", namespace="kube-system") == []
    )
    assert policy.grant_for("catalog") is policy.default  # no grant matches: the default


def test_reserved_namespaces_are_granted_only_by_name_never_by_a_glob_or_the_app_placeholder() -> None:
    assert not Grant(namespaces=("*",)).allows_namespace("kube-system", "web")
    assert not Grant().allows_namespace("rollout-system", "rollout-system")  # an app named like it
    assert not Grant(namespaces=("kube-*",)).allows_namespace("kube-public", "web")
    assert Grant(namespaces=("kube-system",)).allows_namespace("kube-system", "web")
    assert Grant(namespaces=("team-*",)).allows_namespace("team-a", "web")


def test_restricted_level_asks_for_the_restricted_standard() -> None:
    grant = Grant(podSecurity=PodSecurity.RESTRICTED)
    fields = {i.field.rsplit(".", 1)[-1] for i in violations([deployment()], grant, app="web", namespace="web")}
    assert fields == {"allowPrivilegeEscalation", "drop", "runAsNonRoot", "seccompProfile"}
    hardened = deployment(
        {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            **container(allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]}),
        }
    )
    assert violations([hardened], grant, app="web", namespace="web") == []


def test_policy_file_unknown_keys_and_bad_kinds_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"grants": [{"apps": ["a"], "namespace": ["x"], "kinds": ["*"]}]}))
    with pytest.raises(InvalidPolicy) as refused:
        load_policy(path)
    fields = {(i.field, i.problem.split(";")[0]) for i in refused.value.issues}
    assert ("grants[0].namespace", "Extra inputs are not permitted") in fields
    assert ("grants[0].kinds", "'*' is not a kind") in fields
    assert load_policy(None) is DEFAULT_POLICY


# --- rollout validate / load_repository -------------------------------------------------------


def _plant(root: Path, app: str, name: str, text: str) -> None:
    (root / "apps" / app / "manifests" / name).write_text(text)


ESCALATION = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: miner, namespace: kube-system}
spec:
  selector: {matchLabels: {app: miner}}
  template:
    metadata: {labels: {app: miner}}
    spec:
      serviceAccountName: rollout-deployer
      hostNetwork: true
      containers:
        - name: miner
          image: "miner:1.0"
          securityContext: {privileged: true}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: take-over}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: search}]
"""


def test_load_repository_refuses_what_the_grant_does_not_allow(example_copy: Path) -> None:
    _plant(example_copy, "search", "escalate.yaml", ESCALATION)
    with pytest.raises(InvalidRepository) as invalid:
        load_repository(example_copy)
    fields = {(i.file, i.field) for i in invalid.value.issues}
    assert fields == {
        ("apps/search/manifests", "Deployment/miner.metadata.namespace"),
        ("apps/search/manifests", "Deployment/miner.spec.template.spec.serviceAccountName"),
        ("apps/search/manifests", "Deployment/miner.spec.template.spec.hostNetwork"),
        ("apps/search/manifests", "Deployment/miner.spec.template.spec.containers[0].securityContext.privileged"),
        ("apps/search/manifests", "ClusterRoleBinding/take-over.kind"),
    }


def test_rollout_validate_refuses_escalations_and_honours_the_operator_policy(
    example_copy: Path, tmp_path: Path
) -> None:
    plan = example_copy / "apps" / "checkout" / "rollout.yaml"
    plan.write_text(plan.read_text().replace("namespace: checkout", "namespace: kube-system"))
    _plant(example_copy, "search", "escalate.yaml", ESCALATION)
    result = CliRunner().invoke(main, ["validate", str(example_copy), "-o", "json"])
    assert result.exit_code == 1, result.output
    issues = json.loads(result.output)["issues"]
    assert {
        "file": "apps/checkout/rollout.yaml",
        "field": "namespace",
        "problem": "namespace 'kube-system' is reserved for the cluster and the controller; app 'checkout' may "
        "not deploy there",
        "fix": "deploy to the app's own namespace 'checkout'; only the platform operator can grant "
        "'kube-system', by naming it in the rollout policy",
    } in issues
    assert any(i["field"] == "ClusterRoleBinding/take-over.kind" for i in issues)

    text = CliRunner().invoke(main, ["validate", str(example_copy)])
    assert text.exit_code == 1
    assert (
        "apps/search/manifests: Deployment/miner.spec.template.spec.hostNetwork: hostNetwork: true shares the "
        "node's namespace with the pod. Fix: remove hostNetwork;"
    ) in text.output

    # The operator (not the repository) grants what these apps need: then validation passes.
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "grants": [
                    {"apps": ["checkout"], "namespaces": ["kube-system"]},
                    {
                        "apps": ["search"],
                        "namespaces": ["search", "kube-system"],
                        "podSecurity": "privileged",
                        "serviceAccounts": ["rollout-deployer"],
                        "kinds": ["rbac.authorization.k8s.io/ClusterRoleBinding"],
                    },
                ]
            }
        )
    )
    (example_copy / "apps" / "search" / "manifests" / "escalate.yaml").write_text(
        ESCALATION.replace("namespace: kube-system}", "}")
    )
    granted = CliRunner().invoke(main, ["validate", str(example_copy), "--policy", str(policy)])
    assert granted.exit_code == 0, granted.output


def test_validate_refuses_a_broken_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("grants: [{apps: [a], podSecurity: lax}]\n")
    from tests.conftest import EXAMPLE

    result = CliRunner().invoke(main, ["validate", str(EXAMPLE), "--policy", str(policy)])
    assert result.exit_code == 1
    assert "grants[0].podSecurity" in result.output

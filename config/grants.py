"""The operator's rollout policy: what each app's repository author may deploy (docs/security.md).

The policy lives outside Git (a file the operator mounts, `--policy FILE`), so whoever can push to
the tracked branch cannot widen their own rights. Per app (or group of apps, by name glob) it says
which namespaces the app may deploy to, which kinds it may render beyond the default application
kinds, which ServiceAccounts its pods may run as beyond `default` and the ones it renders itself,
and its Pod Security level. Without a file the built-in default below applies.

`violations(objects, grant, ...)` is pure: rendered objects in, issues out, each naming the object
(kind/name), the rule it breaks and the fix.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from config.errors import Issue, field_path

APP_PLACEHOLDER = "{app}"
# Never granted by a glob or by the {app} placeholder: only by naming them literally in a grant.
RESERVED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "rollout-system", "default"})
# Namespaced application kinds every app may render: (API group, kind); "" is the core group.
DEFAULT_KINDS = frozenset(
    {
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("", "Service"),
        ("", "ConfigMap"),
        ("", "ServiceAccount"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("gateway.networking.k8s.io", "HTTPRoute"),
        ("policy", "PodDisruptionBudget"),
        ("autoscaling", "HorizontalPodAutoscaler"),
    }
)
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "StorageClass",
        "IngressClass",
        "GatewayClass",
        "RuntimeClass",
        "CSIDriver",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "APIService",
        "CertificateSigningRequest",
        "ClusterIssuer",
    }
)
RBAC_GROUP = "rbac.authorization.k8s.io"
SENSITIVE_KINDS = {
    "Secret": "it holds credentials",
    "Role": "it grants permissions",
    "RoleBinding": "it grants permissions",
}
# Volume types a restricted pod may use (the Kubernetes "restricted" Pod Security Standard).
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
POLICY_FIX = "ask the platform operator to grant it in the rollout policy (docs/security.md)"


class PodSecurity(StrEnum):
    """How much a pod may ask of its node; also the namespaces' pod-security.kubernetes.io level."""

    RESTRICTED = "restricted"  # baseline, plus non-root, no privilege escalation, drop ALL, seccomp
    BASELINE = "baseline"  # no privileged, host namespaces, hostPath, hostPort or added capabilities
    PRIVILEGED = "privileged"  # nothing checked: only for node agents the operator trusts


class Grant(BaseModel):
    """What one app may deploy. Unset fields take the built-in defaults."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    namespaces: tuple[str, ...] = Field(
        default=(APP_PLACEHOLDER,), description="namespaces the app may deploy to: names, globs, {app} (the app's name)"
    )
    kinds: tuple[str, ...] = Field(
        default=(), description="kinds granted beyond the defaults: 'Kind' (any group) or 'group/Kind'"
    )
    service_accounts: tuple[str, ...] = Field(
        default=(),
        alias="serviceAccounts",
        description="ServiceAccounts pods may run as beyond 'default' and the ones the app renders",
    )
    pod_security: PodSecurity = Field(default=PodSecurity.BASELINE, alias="podSecurity")

    @field_validator("kinds")
    @classmethod
    def _kind_shape(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        for kind in kinds:
            if not kind or "*" in kind or kind.count("/") > 1 or not kind.rsplit("/", 1)[-1][:1].isupper():
                raise ValueError(
                    f"{kind!r} is not a kind; write 'Kind' or 'group/Kind' "
                    "(e.g. Secret, networking.k8s.io/NetworkPolicy), no wildcards"
                )
        return kinds

    def allows_namespace(self, namespace: str, app: str) -> bool:
        for pattern in self.namespaces:
            if pattern == namespace:
                return True  # named literally: the only way to grant a reserved namespace
            if namespace in RESERVED_NAMESPACES:
                continue
            if fnmatch.fnmatchcase(namespace, pattern.replace(APP_PLACEHOLDER, app)):
                return True
        return False

    def allows_kind(self, group: str, kind: str) -> bool:
        if (group, kind) in DEFAULT_KINDS:
            return True
        return kind in self.kinds or f"{group}/{kind}" in self.kinds or (not group and f"core/{kind}" in self.kinds)

    def granted_namespaces(self, app: str) -> str:
        return ", ".join(p.replace(APP_PLACEHOLDER, app) for p in self.namespaces) or "none"


class AppGrant(Grant):
    apps: tuple[str, ...] = Field(min_length=1, description="app names or globs this grant is for")


class Policy(BaseModel):
    """The whole operator policy. The first grant whose `apps` matches an app applies to it;
    apps no grant matches get `default`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    default: Grant = Field(default_factory=Grant)
    grants: tuple[AppGrant, ...] = ()

    def grant_for(self, app: str) -> Grant:
        for grant in self.grants:
            if any(fnmatch.fnmatchcase(app, pattern) for pattern in grant.apps):
                return grant
        return self.default


DEFAULT_POLICY = Policy()


class InvalidPolicy(Exception):
    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("invalid rollout policy:\n" + "\n".join(f"  - {i}" for i in issues))


def load_policy(path: Path | str | None) -> Policy:
    """The policy in `path`, or the built-in default when `path` is None. Raises InvalidPolicy."""
    if path is None:
        return DEFAULT_POLICY
    shown = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidPolicy(
            [
                Issue(
                    shown,
                    "",
                    f"cannot be read ({exc.__class__.__name__})",
                    "mount the policy file (e.g. from the ConfigMap rollout-policy)",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise InvalidPolicy(
            [Issue(shown, "", f"is not valid YAML ({exc.__class__.__name__})", "check indentation and quoting")]
        ) from None
    return parse_policy(data if data is not None else {}, shown)


def parse_policy(data: Any, shown: str = "policy") -> Policy:
    if not isinstance(data, dict):
        raise InvalidPolicy([Issue(shown, "", "must be a YAML mapping", "write default: and grants: keys")])
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise InvalidPolicy(
            [
                Issue(
                    shown,
                    field_path(e["loc"]) or "(top level)",
                    e["msg"].removeprefix("Value error, "),
                    "remove it or check its spelling against docs/security.md"
                    if e["type"] == "extra_forbidden"
                    else "correct it (docs/security.md)",
                )
                for e in exc.errors()
            ]
        ) from None


# --- the checks ------------------------------------------------------------------------------


def group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def namespace_issues(grant: Grant, app: str, namespace: str, plan_file: str) -> list[Issue]:
    """The plan's target namespace against the grant."""
    if grant.allows_namespace(namespace, app):
        return []
    if namespace in RESERVED_NAMESPACES:
        return [
            Issue(
                plan_file,
                "namespace",
                f"namespace {namespace!r} is reserved for the cluster and the "
                f"controller; app {app!r} may not deploy there",
                f"deploy to the app's own namespace {app!r}; only the platform operator can grant "
                f"{namespace!r}, by naming it in the rollout policy",
            )
        ]
    return [
        Issue(
            plan_file,
            "namespace",
            f"namespace {namespace!r} is not granted to app {app!r} (granted: {grant.granted_namespaces(app)})",
            f"deploy to a granted namespace, or {POLICY_FIX}",
        )
    ]


def violations(
    objects: Iterable[Mapping[str, Any]],
    grant: Grant,
    *,
    app: str,
    namespace: str,
    manifests: str = "manifests",
    plan_file: str = "rollout.yaml",
) -> list[Issue]:
    """Every way the rendered `objects` of `app` (target `namespace`) exceed `grant`."""
    objects = list(objects)
    issues = namespace_issues(grant, app, namespace, plan_file)
    own_accounts = {
        str((o.get("metadata") or {}).get("name"))
        for o in objects
        if o.get("kind") == "ServiceAccount" and group_of(str(o.get("apiVersion", ""))) == ""
    }
    accounts = {"default", *own_accounts, *grant.service_accounts}
    for obj in objects:
        kind, name = str(obj.get("kind", "")), str((obj.get("metadata") or {}).get("name", ""))
        where = f"{kind}/{name}"
        issues += [
            Issue(manifests, f"{where}.{field}", problem, fix)
            for field, problem, fix in _object_problems(obj, grant, app, namespace, accounts)
        ]
    return issues


def _object_problems(
    obj: Mapping[str, Any], grant: Grant, app: str, namespace: str, accounts: set[str]
) -> Iterator[tuple[str, str, str]]:
    kind, api_version = str(obj.get("kind", "")), str(obj.get("apiVersion", ""))
    group = group_of(api_version)
    if not grant.allows_kind(group, kind):
        yield "kind", *_kind_refusal(group, kind, app)
        return
    own = (obj.get("metadata") or {}).get("namespace")
    if kind not in CLUSTER_SCOPED_KINDS and own not in (None, namespace):
        yield (
            "metadata.namespace",
            f"sets its own namespace {own!r}; app {app!r} deploys to the plan's namespace {namespace!r}",
            "remove metadata.namespace (rollout.yaml's namespace chooses it)",
        )
    for path, pod in pod_specs(obj):
        yield from _pod_problems(path, pod, grant, app, accounts)


def _kind_refusal(group: str, kind: str, app: str) -> tuple[str, str]:
    spelled = f"{group}/{kind}" if group else kind
    if kind == "Namespace" and not group:
        return (
            f"Namespace objects are not granted to app {app!r}: the controller creates the plan's namespace itself",
            "remove it and set namespace: in rollout.yaml",
        )
    if kind in CLUSTER_SCOPED_KINDS:
        why = "cluster-scoped"
    elif group == RBAC_GROUP or (not group and kind in SENSITIVE_KINDS):
        why = "sensitive: " + SENSITIVE_KINDS.get(kind, "it grants permissions")
    else:
        why = "not an application kind granted by default"
    return (
        f"kind {spelled} is {why} and not granted to app {app!r}",
        f"remove it, or ask the platform operator to grant kinds: [{spelled}] to this app in the "
        "rollout policy (docs/security.md)",
    )


def pod_specs(obj: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every pod spec an object carries: a Pod's spec, a template's, a CronJob's job template's."""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return
    if obj.get("kind") == "Pod":
        yield "spec", spec
    template = spec.get("template")
    if isinstance(template, Mapping) and isinstance(template.get("spec"), Mapping):
        yield "spec.template.spec", template["spec"]
    job = spec.get("jobTemplate")
    job_spec = job.get("spec") if isinstance(job, Mapping) else None
    job_template = job_spec.get("template") if isinstance(job_spec, Mapping) else None
    if isinstance(job_template, Mapping) and isinstance(job_template.get("spec"), Mapping):
        yield "spec.jobTemplate.spec.template.spec", job_template["spec"]


def _containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for group in ("initContainers", "containers", "ephemeralContainers"):
        items = pod.get(group)
        for i, container in enumerate(items if isinstance(items, list) else []):
            if isinstance(container, Mapping):
                yield f"{group}[{i}]", container


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _pod_problems(
    path: str, pod: Mapping[str, Any], grant: Grant, app: str, accounts: set[str]
) -> Iterator[tuple[str, str, str]]:
    level = grant.pod_security
    account = pod.get("serviceAccountName") or pod.get("serviceAccount")
    if account is not None and str(account) not in accounts:
        field = "serviceAccountName" if pod.get("serviceAccountName") else "serviceAccount"
        yield (
            f"{path}.{field}",
            f"runs as ServiceAccount {account!r}, which app {app!r} neither renders nor is "
            "granted (its token would be mounted into the pod)",
            f"use the 'default' ServiceAccount or one this app renders, or {POLICY_FIX} (serviceAccounts)",
        )
    if level == PodSecurity.PRIVILEGED:
        return
    fix_tail = f"app {app!r} has Pod Security level {level.value!r} ({POLICY_FIX})"
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host) is True:
            yield (
                f"{path}.{host}",
                f"{host}: true shares the node's namespace with the pod",
                f"remove {host}; {fix_tail}",
            )
    volumes = pod.get("volumes")
    for i, volume in enumerate(volumes if isinstance(volumes, list) else []):
        volume = _mapping(volume)
        if "hostPath" in volume:
            host_path = _mapping(volume.get("hostPath")).get("path")
            yield (
                f"{path}.volumes[{i}].hostPath",
                f"mounts the node's filesystem (hostPath {host_path!r})",
                f"use emptyDir, configMap, secret or a persistentVolumeClaim; {fix_tail}",
            )
        elif level == PodSecurity.RESTRICTED:
            kinds = sorted(set(volume) - {"name"} - RESTRICTED_VOLUMES)
            if kinds:
                yield (
                    f"{path}.volumes[{i}]",
                    f"uses volume type {', '.join(kinds)}",
                    f"use {', '.join(sorted(RESTRICTED_VOLUMES))}; {fix_tail}",
                )
    pod_context = _mapping(pod.get("securityContext"))
    for where, container in _containers(pod):
        context = _mapping(container.get("securityContext"))
        prefix = f"{path}.{where}"
        if context.get("privileged") is True:
            yield (
                f"{prefix}.securityContext.privileged",
                "runs a privileged container (full access to the node)",
                f"remove privileged: true; {fix_tail}",
            )
        if _mapping(context.get("windowsOptions")).get("hostProcess") is True:
            yield (
                f"{prefix}.securityContext.windowsOptions.hostProcess",
                "runs as a Windows host process",
                f"remove hostProcess; {fix_tail}",
            )
        added = _mapping(context.get("capabilities")).get("add")
        if added:
            yield (
                f"{prefix}.securityContext.capabilities.add",
                f"adds Linux capabilities {', '.join(str(c) for c in added)}",
                f"remove securityContext.capabilities.add; {fix_tail}",
            )
        ports = container.get("ports")
        for j, port in enumerate(ports if isinstance(ports, list) else []):
            if _mapping(port).get("hostPort"):
                yield (
                    f"{prefix}.ports[{j}].hostPort",
                    f"binds port {_mapping(port).get('hostPort')} on the node",
                    f"remove hostPort and expose the port through a Service; {fix_tail}",
                )
        if level == PodSecurity.RESTRICTED:
            yield from _restricted_problems(prefix, context, pod_context, fix_tail)


def _restricted_problems(
    prefix: str, context: Mapping[str, Any], pod_context: Mapping[str, Any], fix_tail: str
) -> Iterator[tuple[str, str, str]]:
    if context.get("allowPrivilegeEscalation") is not False:
        yield (
            f"{prefix}.securityContext.allowPrivilegeEscalation",
            "does not forbid privilege escalation",
            f"set securityContext.allowPrivilegeEscalation: false; {fix_tail}",
        )
    if "ALL" not in (_mapping(context.get("capabilities")).get("drop") or []):
        yield (
            f"{prefix}.securityContext.capabilities.drop",
            "does not drop all Linux capabilities",
            f"set securityContext.capabilities.drop: [ALL]; {fix_tail}",
        )
    non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
    if non_root is not True:
        yield (
            f"{prefix}.securityContext.runAsNonRoot",
            "may run as root",
            f"set runAsNonRoot: true (pod or container securityContext); {fix_tail}",
        )
    seccomp = _mapping(context.get("seccompProfile") or pod_context.get("seccompProfile")).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        yield (
            f"{prefix}.securityContext.seccompProfile",
            "has no seccomp profile",
            f"set seccompProfile: {{type: RuntimeDefault}}; {fix_tail}",
        )

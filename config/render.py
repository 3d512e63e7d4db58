"""Render an app's manifests for one region and one release, deterministically.

Same repository, commit, app and region give byte-identical YAML: files are read in sorted
order and objects are dumped with sorted keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.exceptions import SecurityError

from config.errors import Issue
from config.grants import violations
from config.identity import ANNOTATION_COMMIT, ReleaseIdentity
from config.repository import AppSource, Repository
from config.templating import OutsideRepository, confined_path, environment

MANIFEST_SUFFIXES = (".yaml", ".yml", ".yaml.j2", ".yml.j2")
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                            "PriorityClass", "StorageClass", "IngressClass", "GatewayClass"})
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class RenderFailed(Exception):
    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


@dataclass(frozen=True)
class Rendered:
    app: str
    region: str
    identity: ReleaseIdentity
    objects: tuple[dict[str, Any], ...]

    def to_yaml(self) -> str:
        return yaml.safe_dump_all(list(self.objects), sort_keys=True, default_flow_style=False,
                                  explicit_start=True)


def manifest_files(app: AppSource) -> list[Path]:
    folder = app.directory / "manifests"
    return sorted(p for p in folder.iterdir() if p.name.endswith(MANIFEST_SUFFIXES)) if folder.is_dir() else []


def template_context(repo: Repository, app: AppSource, region_name: str, identity: ReleaseIdentity) -> dict:
    region = repo.regions[region_name]
    params = {**app.values.params, **region.params, **app.values.region_overrides.get(region_name, {})}
    registry = params.get("registry")
    image = app.values.image
    ref = f"{registry}/{image.repository}" if registry else image.repository
    ref += f":{image.tag}" if image.tag else ""
    ref += f"@{image.digest}" if image.digest else ""
    return {
        "app": app.name,
        "namespace": app.plan.target_namespace,
        "version": identity.version,
        "image": ref,
        "release": {"number": identity.number, "commit": identity.commit, "track": identity.track},
        "region": {"name": region.name, "tier": region.tier.value, "cluster": region.cluster,
                   "trafficShare": region.traffic_share, "characteristics": dict(region.characteristics)},
        "params": params,
    }


def render(repo: Repository, app_name: str, region_name: str, identity: ReleaseIdentity) -> Rendered:
    """Render or raise RenderFailed listing every problem found."""
    app = repo.apps[app_name]
    context = template_context(repo, app, region_name, identity)
    env = environment(app.directory)
    issues: list[Issue] = []
    objects: list[dict[str, Any]] = []
    files = manifest_files(app)
    if not files:
        issues.append(Issue(repo.relative(app.directory / "manifests"), "", "no manifest templates found",
                            "add at least one *.yaml template"))
    for path in files:
        shown = repo.relative(path)
        try:
            confined_path(app.directory, str(path.relative_to(app.directory)))
            text = env.get_template(str(path.relative_to(app.directory))).render(**context)
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except OutsideRepository as exc:
            issues.append(Issue(shown, "", f"template reaches outside the app directory: {exc}",
                                "keep templates and includes inside apps/<app>/"))
            continue
        except SecurityError as exc:
            issues.append(Issue(shown, _template_line(exc), f"the template sandbox refused: {exc}",
                                "templates may read values and call filters, not reach into Python objects"))
            continue
        except jinja2.UndefinedError as exc:
            issues.append(Issue(shown, _template_line(exc), f"undefined variable: {exc.message}",
                                "define it in values.yaml params or the region's params, or use | default(...)"))
            continue
        except jinja2.TemplateError as exc:
            issues.append(Issue(shown, _template_line(exc), f"template error: {exc}", "correct the template"))
            continue
        except yaml.YAMLError as exc:
            issues.append(Issue(shown, "", f"rendered text is not YAML: {exc}".replace("\n", " "),
                                "check indentation and quoting of rendered values"))
            continue
        for index, doc in enumerate(docs):
            problems = list(_check_object(doc))
            field_prefix = f"document[{index}]"
            issues += [Issue(shown, f"{field_prefix}.{field}" if field else field_prefix, problem, fix)
                       for field, problem, fix in problems]
            if not problems:
                objects.append(_stamp(doc, app.name, app.plan.target_namespace, region_name, identity))
    # the operator's policy (config/grants.py): nothing outside the app's grant renders
    issues += violations(objects, repo.grants.grant_for(app.name), app=app.name,
                         namespace=app.plan.target_namespace, manifests=repo.relative(app.directory / "manifests"),
                         plan_file=repo.relative(app.directory / "rollout.yaml"))
    if issues:
        raise RenderFailed(issues)
    return Rendered(app_name, region_name, identity, tuple(objects))


def _template_line(exc: jinja2.TemplateError) -> str:
    line = getattr(exc, "lineno", None)
    return f"line {line}" if line else ""


def _check_object(doc: Any) -> Iterator[tuple[str, str, str]]:
    if not isinstance(doc, dict):
        yield "", "is not a Kubernetes object (a mapping)", "each YAML document must be one object"
        return
    for key in ("apiVersion", "kind"):
        if not isinstance(doc.get(key), str) or not doc.get(key):
            yield key, "is missing", f"set {key} (e.g. apps/v1 / Deployment)"
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name):
        yield "metadata.name", f"{name!r} is not a valid name", "use lowercase letters, digits, '-' and '.'"
    for path, pod_spec in _pod_specs(doc):
        yield from _check_pod_spec(path, pod_spec)
    if doc.get("kind") == "Deployment":
        yield from _check_deployment(doc)


def _pod_specs(doc: dict) -> Iterator[tuple[str, dict]]:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        yield "spec", spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield "spec.template.spec", ((spec.get("template") or {}).get("spec") or {})
    elif kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        yield "spec.jobTemplate.spec.template.spec", ((job.get("template") or {}).get("spec") or {})


def _check_pod_spec(path: str, pod_spec: dict) -> Iterator[tuple[str, str, str]]:
    containers = pod_spec.get("containers")
    if not containers:
        yield f"{path}.containers", "is empty", "list at least one container with a name and an image"
        return
    for group in ("initContainers", "containers"):
        for i, container in enumerate(pod_spec.get(group) or []):
            field = f"{path}.{group}[{i}].image"
            problem = image_problem(str(container.get("image", "")))
            if problem:
                yield field, problem, "tag images with the release version or commit (or pin a digest)"


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None when it is."""
    if not image:
        return "has no image"
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    if tag == "latest":
        return f"{image!r} uses the moving tag 'latest'"
    if tag is None and not digest:
        return f"{image!r} has no tag or digest (it would mean 'latest')"
    return None


def _check_deployment(doc: dict) -> Iterator[tuple[str, str, str]]:
    spec = doc.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector:
        yield "spec.selector.matchLabels", "is missing", "select the pod template's labels"
    elif any(labels.get(k) != v for k, v in selector.items()):
        yield "spec.selector.matchLabels", "does not match spec.template.metadata.labels", \
            "make every selector label a pod template label"


def _stamp(doc: dict, app: str, namespace: str, region: str, identity: ReleaseIdentity) -> dict:
    """Add identity labels to the object and its pod template; leave selectors alone (immutable)."""
    labels = identity.labels(app, region)
    out = yaml.safe_load(yaml.safe_dump(doc))  # deep copy through plain YAML types
    metadata = out.setdefault("metadata", {})
    metadata.setdefault("labels", {}).update(labels)
    metadata.setdefault("annotations", {})[ANNOTATION_COMMIT] = identity.commit
    if out["kind"] not in CLUSTER_SCOPED:
        metadata.setdefault("namespace", namespace)
    template = (out.get("spec") or {}).get("template")
    if out["kind"] == "CronJob":
        template = out["spec"]["jobTemplate"]["spec"]["template"]
    if isinstance(template, dict):
        template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    return out

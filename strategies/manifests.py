"""Pure transformations of rendered manifests into the objects a strategy applies.

Names follow docs/conventions.md. Every desired object carries the annotation
`rollout.dev/applied-hash`: a digest of the object as we mean to apply it. Comparing it with the
annotation observed on the cluster tells whether an apply would change anything, so a step that is
already in place performs no write.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from config.identity import LABEL_COLOR, LABEL_NAME, LABEL_TRACK
from config.render import Rendered
from strategies.errors import PermanentError
from strategies.model import ANNOTATION_APPLIED, ObjectRef

Obj = dict[str, Any]
INVALID_MANIFESTS = "InvalidManifests"


class ManifestError(PermanentError, ValueError):
    """The rendered manifests lack what the strategy needs: permanent, the region fails with it."""

    def __init__(self, message: str, *, reason: str = INVALID_MANIFESTS) -> None:
        super().__init__(message, reason=reason)


def applied_hash(obj: Mapping[str, Any]) -> str:
    clean = copy.deepcopy(dict(obj))
    (clean.get("metadata") or {}).get("annotations", {}).pop(ANNOTATION_APPLIED, None)
    return hashlib.sha256(json.dumps(clean, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def stamped(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION_APPLIED] = applied_hash(out)
    return out


def ref_of(obj: Mapping[str, Any]) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(str(obj["apiVersion"]), str(obj["kind"]), meta.get("namespace"), str(meta["name"]))


def hash_of(obj: Mapping[str, Any]) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_APPLIED)


def find(rendered: Rendered, kind: str, name: str) -> Obj:
    for obj in rendered.objects:
        if obj.get("kind") == kind and obj["metadata"]["name"] == name:
            return obj
    raise ManifestError(
        f"release {rendered.identity.number} renders no {kind} named {name!r} "
        f"(docs/conventions.md: the workload and its Service are named after the app)"
    )


def others(rendered: Rendered, app: str, workload: str | None = None) -> list[Obj]:
    """Rendered objects besides the traffic Deployment `workload` (default: named after the app)
    and the app's entry Service, as-is: ConfigMaps, and the workloads that roll with the release."""
    workload = workload or app
    return [
        stamped(o)
        for o in rendered.objects
        if not (
            (o.get("kind") == "Deployment" and o["metadata"]["name"] == workload)
            or (o.get("kind") == "Service" and o["metadata"]["name"] == app)
        )
    ]


def one_shot(objects: Iterable[Obj], number: str, ttl_seconds: int = 3600) -> list[Obj]:
    """Jobs made safe to apply on every release: a Job's pod template is immutable, so each
    release creates its own Job, named with the release number (`<name>-<number>`, at most 63
    characters), and finished ones are cleaned by ttlSecondsAfterFinished (default one hour)
    unless the manifest sets it. Other objects unchanged."""
    out = []
    for obj in objects:
        if obj.get("kind") == "Job" and not str(obj["metadata"]["name"]).endswith(f"-{number}"):
            obj = copy.deepcopy(obj)
            base = str(obj["metadata"]["name"])[: 62 - len(number)].rstrip("-.")
            obj["metadata"]["name"] = f"{base}-{number}"
            obj.setdefault("spec", {}).setdefault("ttlSecondsAfterFinished", ttl_seconds)
        out.append(obj)
    return out


def total_replicas(rendered: Rendered, app: str) -> int:
    replicas = (find(rendered, "Deployment", app).get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def deployment(
    rendered: Rendered,
    app: str,
    *,
    name: str | None = None,
    replicas: int | None = None,
    extra_labels: Mapping[str, str] | None = None,
    rolling: Mapping[str, Any] | None = None,
    progress_deadline: timedelta | None = None,
) -> Obj:
    """The app's Deployment renamed, with extra labels on object, pod template and selector.

    The selector of the stable Deployment `<app>` is left as rendered (selectors are immutable);
    variants (`<app>-canary`, `<app>-blue`) add their distinguishing labels to it.
    """
    obj = copy.deepcopy(find(rendered, "Deployment", app))
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    if name is not None:
        meta["name"] = name
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        meta.pop(key, None)
    obj.pop("status", None)
    if extra_labels:
        meta.setdefault("labels", {}).update(extra_labels)
        spec["template"].setdefault("metadata", {}).setdefault("labels", {}).update(extra_labels)
        spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(extra_labels)
    if replicas is not None:
        spec["replicas"] = replicas
    if rolling is not None:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": dict(rolling)}
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = max(1, int(progress_deadline.total_seconds()))
    return stamped(obj)


def service(
    rendered: Rendered, app: str, *, name: str | None = None, extra_selector: Mapping[str, str] | None = None
) -> Obj:
    obj = copy.deepcopy(find(rendered, "Service", app))
    if name is not None:
        obj["metadata"]["name"] = name
    if extra_selector:
        obj.setdefault("spec", {}).setdefault("selector", {}).update(extra_selector)
    return stamped(obj)


def service_port(rendered: Rendered, app: str) -> int:
    ports = (find(rendered, "Service", app).get("spec") or {}).get("ports") or []
    if not ports:
        raise ManifestError(f"Service {app!r} declares no port; the HTTPRoute needs one")
    return int(ports[0]["port"])


def http_route(rendered: Rendered, app: str, gateway: str, weights: Iterable[tuple[str, int]]) -> Obj:
    """HTTPRoute `<app>` sending rules[0] to the given backend Services with the given weights."""
    svc = find(rendered, "Service", app)
    port = service_port(rendered, app)
    meta = svc["metadata"]
    return stamped(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {
                "name": app,
                "namespace": meta.get("namespace"),
                "labels": dict(meta.get("labels") or {}),
                "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if k != ANNOTATION_APPLIED},
            },
            "spec": {
                "parentRefs": [{"name": gateway}],
                "rules": [{"backendRefs": [{"name": s, "port": port, "weight": w} for s, w in weights]}],
            },
        }
    )


def canary_replicas(total: int, weight: int) -> int:
    """Replicas for `weight`% of `total`, at least one while any traffic goes to the canary."""
    return 0 if weight <= 0 else max(1, math.ceil(total * weight / 100))


def track_labels(track: str) -> dict[str, str]:
    return {LABEL_TRACK: track}


def color_labels(color: str) -> dict[str, str]:
    return {LABEL_COLOR: color}


def app_selector(app: str) -> dict[str, str]:
    return {LABEL_NAME: app}

"""Kubernetes objects (plain dicts, as read from the API) -> the frozen snapshot. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from config.identity import LABEL_RELEASE
from config.times import parse_time
from regions.analysis.model import Verdict
from strategies.manifests import hash_of, ref_of
from strategies.model import (
    WORKLOAD_KINDS,
    Commands,
    Condition,
    DeploymentState,
    ObjectRef,
    RouteState,
    ServiceState,
    Snapshot,
    WorkloadState,
)

Raw = Mapping[str, Any]


def _condition(c: Raw) -> Condition:
    when = c.get("lastUpdateTime") or c.get("lastTransitionTime")
    return Condition(
        str(c.get("type", "")),
        str(c.get("status", "")),
        str(c.get("reason") or ""),
        str(c.get("message") or ""),
        parse_time(str(when)) if when else None,
    )


def deployment_state(obj: Raw) -> DeploymentState:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    return DeploymentState(
        name=meta["name"],
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        spec_replicas=1 if spec.get("replicas") is None else int(spec["replicas"]),
        replicas=int(status.get("replicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        conditions=tuple(_condition(c) for c in status.get("conditions") or []),
        release=(meta.get("labels") or {}).get(LABEL_RELEASE),
        applied_hash=hash_of(obj),
    )


def workload_state(obj: Raw) -> WorkloadState:
    """A Deployment, StatefulSet, DaemonSet or Job read from the API, by its kind's status fields."""
    kind, meta = str(obj.get("kind")), obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conditions = tuple(_condition(c) for c in status.get("conditions") or [])
    common: dict[str, Any] = {
        "kind": kind,
        "name": str(meta["name"]),
        "generation": int(meta.get("generation") or 0),
        "observed_generation": int(status.get("observedGeneration") or 0),
        "conditions": conditions,
        "applied_hash": hash_of(obj),
    }
    replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
    if kind == "DaemonSet":
        return WorkloadState(
            **common,
            desired=int(status.get("desiredNumberScheduled") or 0),
            updated=int(status.get("updatedNumberScheduled") or 0),
            ready=int(status.get("numberReady") or 0),
            available=int(status.get("numberAvailable") or 0),
            current=int(status.get("numberUnavailable") or 0),
        )
    if kind == "StatefulSet":
        rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
        available = status.get("availableReplicas")
        return WorkloadState(
            **common,
            desired=replicas,
            updated=int(status.get("updatedReplicas") or 0),
            ready=int(status.get("readyReplicas") or 0),
            available=None if available is None else int(available),
            current=int(status.get("replicas") or 0),
            partition=int(rolling.get("partition") or 0),
        )
    if kind == "Job":
        return WorkloadState(
            **common,
            desired=int(spec.get("completions") or 1),
            updated=int(status.get("succeeded") or 0),
            ready=int(status.get("ready") or 0),
        )
    return WorkloadState(
        **common,
        desired=replicas,
        updated=int(status.get("updatedReplicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        current=int(status.get("replicas") or 0),
    )


def service_state(obj: Raw) -> ServiceState:
    selector = (obj.get("spec") or {}).get("selector") or {}
    return ServiceState(obj["metadata"]["name"], tuple(sorted(selector.items())), hash_of(obj))


def route_state(obj: Raw) -> RouteState:
    rules = (obj.get("spec") or {}).get("rules") or []
    refs = (rules[0].get("backendRefs") or []) if rules else []
    weights = tuple((str(r["name"]), int(r.get("weight", 1))) for r in refs)
    return RouteState(obj["metadata"]["name"], weights, hash_of(obj))


def snapshot(objects: Iterable[Raw], *, analysis: Verdict | None = None, commands: Commands | None = None) -> Snapshot:
    """Every object read for one app in one region, sorted into the snapshot's typed views."""
    objs = list(objects)
    applied: list[tuple[ObjectRef, str | None]] = [(ref_of(o), hash_of(o)) for o in objs]
    return Snapshot(
        deployments=tuple(deployment_state(o) for o in objs if o.get("kind") == "Deployment"),
        workloads=tuple(workload_state(o) for o in objs if o.get("kind") in WORKLOAD_KINDS),
        services=tuple(service_state(o) for o in objs if o.get("kind") == "Service"),
        routes=tuple(route_state(o) for o in objs if o.get("kind") == "HTTPRoute"),
        applied=tuple(applied),
        analysis=analysis,
        commands=commands or Commands(),
    )

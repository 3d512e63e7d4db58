"""Ownership between apps (strategies/cluster.py): the pure parts of the check the region adapter
makes before any write. The lab test tests/integration/test_grants_lab.py proves it end to end."""

from __future__ import annotations

from strategies.cluster import action_targets, owner_problem
from strategies.model import Apply, Delete, Event, ObjectRef, Scale, SetWeights

SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shared", "namespace": "shop"}}
DEP = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}
ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "web", "namespace": "shop"},
}


def test_another_apps_object_is_refused_with_both_names() -> None:
    ref = ObjectRef("v1", "Service", "shop", "shared")
    assert owner_problem("b", ref, {"app.kubernetes.io/name": "a"}) == (
        "Service/shared -n shop belongs to app 'a' (label app.kubernetes.io/name=a); app 'b' may not change or "
        "delete it. Fix: rename the object in app 'b''s manifests, or remove it from app 'a' first"
    )


def test_own_objects_and_new_objects_pass() -> None:
    ref = ObjectRef("v1", "Service", "shop", "shared")
    assert owner_problem("a", ref, {"app.kubernetes.io/name": "a", "app.kubernetes.io/managed-by": "x"}) is None
    assert owner_problem("a", ref, {}) is None  # absent (or unlabelled: server-side apply's conflicts decide)


def test_every_written_object_is_checked_once_events_are_not() -> None:
    actions = [
        Apply((SVC, DEP), "release"),
        SetWeights("gatewayAPI", 10, (ROUTE,)),
        Scale("web", 0, DEP),
        Delete(ObjectRef("v1", "ConfigMap", "shop", "old")),
        Event("web", "Progressing", "msg"),
    ]
    assert [str(r) for r in action_targets(actions)] == [
        "Service/shared -n shop",
        "Deployment/web -n shop",
        "HTTPRoute/web -n shop",
        "ConfigMap/old -n shop",
    ]

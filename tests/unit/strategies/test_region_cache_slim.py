"""What the region watch cache keeps of each object (strategies/region_cache.py `slim`): every
reader of the cache must see the same thing from the slim copy as from the whole object the API
server returned. Objects shaped like a kube-apiserver's answers (defaulted fields, managedFields,
other tools' annotations, status)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from config.identity import LABEL_MANAGED_BY, LABEL_NAME, LABEL_RELEASE, MANAGED_BY
from strategies.cluster import owner_problem
from strategies.manifests import ref_of
from strategies.model import ANNOTATION_APPLIED
from strategies.observe import snapshot
from strategies.prune import ANNOTATION_PRUNE, live_object
from strategies.region_cache import KindStore, key_of, rv_of, slim

NS = "shop"
MANAGED = [{"manager": "regional-rollout", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
LABELS = {LABEL_NAME: "checkout", LABEL_MANAGED_BY: MANAGED_BY, LABEL_RELEASE: "7", "app.kubernetes.io/version": "2"}
ANNOTATIONS = {
    ANNOTATION_APPLIED: "abc123",
    ANNOTATION_PRUNE: "false",
    "deployment.kubernetes.io/revision": "3",
    "kubectl.kubernetes.io/last-applied-configuration": json.dumps({"big": "x" * 2000}),
}


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": NS,
        "uid": "0d1c2b3a-0000-4000-8000-000000000000",
        "resourceVersion": "4711",
        "generation": 3,
        "creationTimestamp": "2026-11-29T20:00:00Z",
        "labels": dict(LABELS),
        "annotations": dict(ANNOTATIONS),
        "managedFields": copy.deepcopy(MANAGED),
        **extra,
    }


DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": meta("checkout", deletionTimestamp="2026-11-29T21:00:00Z"),
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {LABEL_NAME: "checkout"}},
        "template": {
            "metadata": {"labels": {LABEL_NAME: "checkout"}},
            "spec": {
                "containers": [{"name": "checkout", "image": "shop/checkout:2", "ports": [{"containerPort": 8080}]}],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
            },
        },
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    },
    "status": {
        "observedGeneration": 2,
        "replicas": 4,
        "updatedReplicas": 1,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "unavailableReplicas": 1,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
                "lastUpdateTime": "2026-11-29T20:01:00Z",
                "lastTransitionTime": "2026-11-29T20:01:00Z",
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "message": 'ReplicaSet "checkout-5d4f" is progressing.',
                "lastUpdateTime": "2026-11-29T20:02:00Z",
                "lastTransitionTime": "2026-11-29T20:00:00Z",
            },
        ],
    },
}
SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": meta("checkout", ownerReferences=[{"kind": "Thing", "name": "x", "uid": "1"}]),
    "spec": {
        "selector": {LABEL_NAME: "checkout", "rollout.dev/color": "blue"},
        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
        "clusterIP": "10.0.0.12",
        "clusterIPs": ["10.0.0.12"],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "ipFamilies": ["IPv4"],
    },
    "status": {"loadBalancer": {}},
}
ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": meta("checkout"),
    "spec": {
        "parentRefs": [{"name": "gateway", "group": "gateway.networking.k8s.io", "kind": "Gateway"}],
        "hostnames": ["checkout.example.com"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"name": "checkout-stable", "port": 80, "weight": 80, "kind": "Service", "group": ""},
                    {"name": "checkout-canary", "port": 80, "weight": 20, "kind": "Service", "group": ""},
                ],
            },
            {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}]},
        ],
    },
    "status": {"parents": [{"parentRef": {"name": "gateway"}, "controllerName": "x", "conditions": []}]},
}
WHOLE = (DEPLOYMENT, SERVICE, ROUTE)


@pytest.mark.parametrize("obj", WHOLE, ids=lambda o: o["kind"])
def test_a_slim_copy_reads_the_same_as_the_whole_object_for_every_reader(obj: dict[str, Any]) -> None:
    small = slim(copy.deepcopy(obj))
    assert snapshot([small]) == snapshot([obj])  # observe: states, applied hashes, refs
    assert ref_of(small) == ref_of(obj) and key_of(small) == key_of(obj) and rv_of(small) == rv_of(obj) == 4711
    labels = small["metadata"]["labels"]
    assert owner_problem("payments", ref_of(obj), labels) == owner_problem("payments", ref_of(obj), LABELS)
    # the prune rules' view: labels, owners, deleting, and the two annotations they read
    seen, whole = live_object(small), live_object(obj)
    assert (seen.ref, seen.labels, seen.owned, seen.deleting) == (whole.ref, whole.labels, whole.owned, whole.deleting)
    assert all(seen.annotation(k) == whole.annotation(k) for k in (ANNOTATION_APPLIED, ANNOTATION_PRUNE))
    assert len(json.dumps(small)) < len(json.dumps(obj)) / 2


def test_what_is_dropped_and_what_is_kept() -> None:
    d = slim(copy.deepcopy(DEPLOYMENT))
    assert d["spec"] == {"replicas": 3} and d["status"] == DEPLOYMENT["status"]
    assert d["metadata"]["annotations"] == {ANNOTATION_APPLIED: "abc123", ANNOTATION_PRUNE: "false"}
    assert "managedFields" not in d["metadata"] and "uid" not in d["metadata"]
    s = slim(copy.deepcopy(SERVICE))
    assert s["spec"] == {"selector": SERVICE["spec"]["selector"]} and "status" not in s
    r = slim(copy.deepcopy(ROUTE))
    assert [list(rule) for rule in r["spec"]["rules"]] == [["backendRefs"], ["backendRefs"]]
    assert r["spec"]["rules"][0]["backendRefs"] == ROUTE["spec"]["rules"][0]["backendRefs"]


def test_a_kind_without_a_field_list_keeps_its_whole_spec_and_status() -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta("db"),
        "spec": {"replicas": 2, "updateStrategy": {"rollingUpdate": {"partition": 1}}, "serviceName": "db"},
        "status": {"replicas": 2, "currentReplicas": 2},
    }
    small = slim(copy.deepcopy(sts))
    assert small["spec"] == sts["spec"] and small["status"] == sts["status"]
    assert snapshot([small]) == snapshot([sts])


def test_the_store_keeps_slim_copies_and_leaves_the_callers_object_alone() -> None:
    store = KindStore("apps/v1", "Deployment")
    given = copy.deepcopy(DEPLOYMENT)
    del given["apiVersion"], given["kind"]  # a watch event's object may come without them: the store types it
    store.upsert(given)
    assert "managedFields" in given["metadata"] and "template" in given["spec"]
    [kept] = store.of_app(NS, "checkout")
    assert kept == slim(DEPLOYMENT) and store.get(NS, "checkout") == kept
    newer = {**copy.deepcopy(DEPLOYMENT), "metadata": {**meta("checkout"), "resourceVersion": "5000"}}
    store.replace([copy.deepcopy(newer)], 5000)  # a relist: slim copies too
    assert store.get(NS, "checkout") == slim(newer) and "managedFields" in newer["metadata"]

"""One list of cluster-scoped kinds (config/grants.py): the grants check and the identity stamp
(config/render.py) agree on which objects get the app's namespace."""

from __future__ import annotations

from config.grants import CLUSTER_SCOPED_KINDS
from config.identity import ReleaseIdentity
from config.render import _stamp

IDENTITY = ReleaseIdentity(commit="a" * 40, version="1.0.0", track="stable")


def stamped(kind: str) -> dict:
    return _stamp({"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}}, "web", "shop", "eu-west", IDENTITY)


def test_cluster_scoped_objects_get_no_namespace_and_namespaced_ones_get_the_apps() -> None:
    for kind in ("PersistentVolume", "ValidatingWebhookConfiguration", "Namespace", "ClusterRole"):
        assert kind in CLUSTER_SCOPED_KINDS
        assert "namespace" not in stamped(kind)["metadata"], kind
    assert stamped("ConfigMap")["metadata"]["namespace"] == "shop"

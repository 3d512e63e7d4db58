"""The prune step's listing from the region watches (strategies/cluster.py `census`): one copy per
kind per region cluster, shared by every app, gives the prune rules exactly the objects the list
by the app's labels gave, and the adapter lists from the API only the kinds whose copy is not
synced. Stand-ins for the discovery client and the API (the lab test test_prune_lab uses real ones)."""

from __future__ import annotations

import copy
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

from config.identity import LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY
from strategies.cluster import KubernetesCluster
from strategies.errors import Backoff
from strategies.model import ObjectRef
from strategies.prune import live_object
from strategies.region_cache import PARTIAL, KindCache
from tests.unit.strategies.test_region_cache import until

from .helpers import rollout

R = rollout("catalog")
NS = R.namespace
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_NAME}=catalog"


def item(api_version: str, kind: str, name: str, *, app: str = "catalog", rv: int = 5, **extra: Any) -> dict[str, Any]:
    labels = {LABEL_NAME: app, **extra.pop("labels", {LABEL_MANAGED_BY: MANAGED_BY})}
    meta = {"name": name, "namespace": extra.pop("namespace", NS), "resourceVersion": str(rv), "labels": labels}
    meta["annotations"] = {"rollout.dev/applied-hash": "h", "rollout.dev/prune": "true", "other/tool": "x"}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


CM = item("v1", "ConfigMap", "extra", data={"secret-ish": "never held"})
CM_OTHER_APP = item("v1", "ConfigMap", "theirs", app="payments")
CM_OTHER_NS = item("v1", "ConfigMap", "elsewhere", namespace="payments")
RUNNING_JOB = item("batch/v1", "Job", "migrate-1", status={"active": 1})
DONE_JOB = item(
    "batch/v1", "Job", "migrate-0", status={"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
)
DEPLOY = item("apps/v1", "Deployment", "catalog")
DEPLOY_NOT_OURS = item("apps/v1", "Deployment", "catalog-manual", labels={})  # the name label only


class Res:
    """A discovery entry that records the per-app lists made of it."""

    def __init__(self, kind: str, group_version: str, items: list[dict[str, Any]], namespaced: bool = True) -> None:
        self.kind, self.group_version, self.namespaced, self.preferred = kind, group_version, namespaced, True
        self.verbs = ["list", "delete", "get", "watch"]
        self.items = items
        self.calls: list[tuple[str | None, str]] = []

    def path(self) -> str:
        return f"/{self.group_version}/{self.kind.lower()}s"

    def get(self, *, namespace: str | None, label_selector: str, _request_timeout: float) -> Any:
        self.calls.append((namespace, label_selector))
        wanted = dict(kv.split("=") for kv in label_selector.split(","))
        found = [
            copy.deepcopy(o)
            for o in self.items
            if o["metadata"].get("namespace") == namespace
            and all(o["metadata"]["labels"].get(k) == v for k, v in wanted.items())
        ]
        return type("Listed", (), {"to_dict": lambda _self: {"items": found}})()


class Listed:
    def __init__(self, items: list[dict[str, Any]], rv: int):
        self.data = json.dumps({"metadata": {"resourceVersion": str(rv)}, "items": items}).encode()


def metadata_only(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server answers for `as=PartialObjectMetadataList`."""
    return {"kind": PARTIAL, "apiVersion": "meta.k8s.io/v1", "metadata": copy.deepcopy(obj["metadata"])}


def started(kind: str, api_version: str, items: list[dict[str, Any]], events: queue.Queue[Any]) -> KindCache:
    def watch(_rv: int) -> Iterator[dict[str, Any]]:
        while (event := events.get(timeout=60)) is not None:
            yield event

    cache = KindCache(lambda **_: Listed(items, 5), api_version, kind, watch_fn=watch, label_selector="x")
    cache.start()
    assert cache.wait_synced(5)
    return cache


def adapter(resources: list[Res], caches: dict[str, KindCache], census: dict[tuple[str, str], KindCache]) -> Any:
    a = KubernetesCluster.__new__(KubernetesCluster)
    a.backoff, a.timeout, a.sleep, a.context = Backoff(attempts=1), 1.0, lambda _: None, "eu-west"
    a._watch, a._caches, a._census, a._census_started = True, caches, census, True
    a.writes, a._namespaces = 0, {NS}
    a._caches_lock = threading.Lock()
    discovery = type("D", (), {"search": lambda _s: resources, "get": lambda _s, **_k: None})()
    a._dynamic = type("Dyn", (), {"resources": discovery})()
    return a


def test_the_listing_from_the_shared_copies_is_the_listing_by_the_apps_labels() -> None:
    cms, jobs, deploys = [CM, CM_OTHER_APP, CM_OTHER_NS], [RUNNING_JOB, DONE_JOB], [DEPLOY, DEPLOY_NOT_OURS]
    resources = [Res("ConfigMap", "v1", cms), Res("Job", "batch/v1", jobs), Res("Deployment", "apps/v1", deploys)]
    by_api = adapter(resources, {}, {})
    by_api._watch = False
    expected = sorted(by_api.inventory(R), key=lambda o: o.ref.name)
    assert [o.ref.name for o in expected] == ["catalog", "extra", "migrate-0", "migrate-1"]
    assert [r.calls for r in resources] == [[(NS, SELECTOR)]] * 3

    events: list[queue.Queue[Any]] = [queue.Queue() for _ in range(3)]
    census = {
        ("v1", "ConfigMap"): started("ConfigMap", "v1", [metadata_only(o) for o in cms], events[0]),
        ("batch/v1", "Job"): started("Job", "batch/v1", jobs, events[1]),  # whole Jobs: their status is read
    }
    deployments = started("Deployment", "apps/v1", deploys, events[2])  # observe's copy, by the name label
    try:
        for r in resources:
            r.calls.clear()
        watched = adapter(resources, {"Deployment": deployments}, census)
        seen = sorted(watched.inventory(R), key=lambda o: o.ref.name)
        assert not any(r.calls for r in resources)  # no list at all
        assert seen == [  # the same view, less the annotations the prune rules never read
            o.__class__(**{**o.__dict__, "annotations": tuple(a for a in o.annotations if a[0] != "other/tool")})
            for o in expected
        ]
        assert [o.running for o in seen] == [False, False, False, True]

        # our own writes are seen at once: a delete is gone before the watch says so, an apply is there
        watched._get_or_none = lambda fn: None
        watched._resource = lambda ref: type("Res", (), {})()
        watched.delete(ObjectRef("v1", "ConfigMap", NS, "extra"))
        new = item("v1", "ConfigMap", "added", rv=9)
        applied = type("Applied", (), {"to_dict": lambda _s: copy.deepcopy(new)})()
        watched._call = lambda fn: applied
        watched.apply(new)
        assert sorted(o.ref.name for o in watched.inventory(R) if o.ref.kind == "ConfigMap") == ["added"]
        assert "data" not in census[("v1", "ConfigMap")].store.get(NS, "added")  # metadata only is held
    finally:
        for cache in [*census.values(), deployments]:
            cache.stop()
        for q in events:
            q.put(None)


def test_a_kind_whose_copy_is_not_synced_or_was_refused_is_listed_per_app_as_before() -> None:
    cms, jobs = [CM], [DONE_JOB]
    resources = [Res("ConfigMap", "v1", cms), Res("Job", "batch/v1", jobs)]

    def forbidden(**_: Any) -> Any:
        error = Exception("forbidden")
        error.status = 403  # type: ignore[attr-defined]
        raise error

    refused = KindCache(forbidden, "v1", "ConfigMap", label_selector="x", give_up_unserved=True)
    refused.start()
    until(lambda: refused.unserved)
    refused.join(5)
    events: queue.Queue[Any] = queue.Queue()
    jobs_copy = started("Job", "batch/v1", jobs, events)
    try:
        a = adapter(resources, {}, {("v1", "ConfigMap"): refused, ("batch/v1", "Job"): jobs_copy})
        assert sorted(o.ref.name for o in a.inventory(R)) == ["extra", "migrate-0"]
        assert resources[0].calls == [(NS, SELECTOR)] and resources[1].calls == []
        assert not refused.synced and not refused._thread.is_alive()  # no retry: a list at rest is a call
    finally:
        jobs_copy.stop()
        events.put(None)


def test_census_starts_one_metadata_copy_per_prunable_namespaced_kind_besides_observes() -> None:
    resources = [
        Res("ConfigMap", "v1", []),
        Res("Secret", "v1", []),
        Res("Job", "batch/v1", []),
        Res("Deployment", "apps/v1", []),  # observe's copy serves it
        Res("Pod", "v1", []),  # made by controllers: never pruned
        Res("Namespace", "v1", [], namespaced=False),  # cluster-scoped: listed per app when opted in
    ]
    nowatch = Res("Widget", "example.com/v1", [])
    nowatch.verbs = ["list", "delete"]
    resources.append(nowatch)
    calls: list[tuple[str, bool, dict[str, Any]]] = []
    done = threading.Event()

    class Quiet:
        """A watch request's response that sends nothing until the test ends."""

        def stream(self, **_: Any) -> Iterator[bytes]:
            done.wait(30)
            yield from ()

        def close(self) -> None: ...

        def release_conn(self) -> None: ...

    def raw_list(path: str, metadata: bool, **params: Any) -> Any:
        calls.append((path, metadata, params))
        return Quiet() if params.get("watch") else Listed([], 1)

    deployments = KindCache(lambda **_: Listed([], 1), "apps/v1", "Deployment", watch_fn=lambda rv: iter(()))
    a = adapter(resources, {"Deployment": deployments, "Service": deployments, "HTTPRoute": deployments}, {})
    a._census_started = False
    a._raw_list = raw_list
    census = a.census()
    try:
        assert sorted(census) == [("batch/v1", "Job"), ("v1", "ConfigMap"), ("v1", "Secret")]
        until(lambda: all(c.synced for c in census.values()))
        until(lambda: len([c for c in calls if c[2].get("watch")]) >= 3)
        first = {path: (metadata, params["label_selector"]) for path, metadata, params in calls}
        assert first["/v1/configmaps"] == (True, f"{LABEL_MANAGED_BY}={MANAGED_BY}")
        assert first["/batch/v1/jobs"] == (False, f"{LABEL_MANAGED_BY}={MANAGED_BY}")
        watches = [params for _, _, params in calls if params.get("watch")]
        assert {(w["timeout_seconds"], w["allow_watch_bookmarks"]) for w in watches} == {(300, True)}
        assert a.census() is census  # once per cluster
        assert all(c._quiet for c in census.values())  # ~30 per cluster: an outage is not 30 warnings
    finally:
        done.set()
        a.close()


def test_a_metadata_only_object_is_stored_as_its_kind() -> None:
    events: queue.Queue[Any] = queue.Queue()
    cache = started("ConfigMap", "v1", [metadata_only(CM)], events)
    try:
        held = cache.store.get(NS, "extra")
        assert held is not None and (held["apiVersion"], held["kind"]) == ("v1", "ConfigMap")
        assert live_object(held).ref == live_object(CM).ref
        events.put({"type": "MODIFIED", "object": metadata_only(item("v1", "ConfigMap", "extra", rv=7))})
        until(lambda: (cache.store.get(NS, "extra") or {}).get("metadata", {}).get("resourceVersion") == "7")
        assert (cache.store.get(NS, "extra") or {})["kind"] == "ConfigMap"
    finally:
        cache.stop()
        events.put(None)

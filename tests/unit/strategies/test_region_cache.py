"""The region watch cache (strategies/region_cache.py) and the adapter's reads through it, with fakes:
never an older copy after our own write, resumed watches, relists only on 410 Gone or an error."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

from config.identity import LABEL_NAME
from deploy.lab.procs import wait_until
from strategies.cluster import KubernetesCluster
from strategies.errors import Backoff
from strategies.model import ObjectRef
from strategies.observe import deployment_state
from strategies.region_cache import KindCache, KindStore

NS = "shop"


def deployment(rv: int, generation: int, observed: int, version: str, name: str = "checkout") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NS,
            "resourceVersion": str(rv),
            "generation": generation,
            "labels": {LABEL_NAME: "checkout", "app.kubernetes.io/version": version},
        },
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": observed,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
        },
    }


def complete(obj: dict[str, Any]) -> bool:
    """What a strategy reads as "this Deployment's rollout is complete"."""
    d = deployment_state(obj)
    return d.observed_generation >= d.generation and d.updated == d.ready == d.spec_replicas


OLD_DONE = deployment(5, 1, 1, "1.0.0")  # the previous release, rolled out
APPLIED = deployment(7, 2, 1, "1.1.0")  # what our apply of the new release returned: not observed yet


def test_a_late_watch_event_of_the_older_copy_never_reads_as_rollout_complete_after_our_write() -> None:
    store = KindStore("apps/v1", "Deployment")
    store.upsert(OLD_DONE)
    assert complete(store.of_app(NS, "checkout")[0])
    assert store.upsert(APPLIED)  # our own write, recorded at once
    assert not store.upsert(OLD_DONE)  # the watch delivers the old copy late
    assert not store.upsert(deployment(6, 1, 1, "1.0.0"))  # or any copy older than our write
    [seen] = store.of_app(NS, "checkout")
    assert seen["metadata"]["resourceVersion"] == "7" and not complete(seen)
    assert not store.upsert(deployment(7, 2, 1, "1.1.0"))  # the watch's copy of our write: the same
    assert store.upsert(deployment(9, 2, 2, "1.1.0"))  # the controller-manager's rollout: newer, taken
    assert complete(store.of_app(NS, "checkout")[0])


def test_an_own_delete_is_gone_at_once_and_only_a_newer_copy_brings_it_back() -> None:
    store = KindStore("apps/v1", "Deployment")
    store.upsert(APPLIED)
    store.forget(NS, "checkout")
    assert store.of_app(NS, "checkout") == [] and store.get(NS, "checkout") is None
    assert not store.upsert(deployment(7, 2, 1, "1.1.0"))  # a late event of what we deleted
    assert store.upsert(deployment(8, 2, 1, "1.1.0"))  # a Foreground delete's update, or a recreation
    assert not store.deleted(deployment(6, 1, 1, "1.0.0"))  # a delete older than what we know
    assert store.deleted(deployment(10, 2, 1, "1.1.0"))
    assert store.of_app(NS, "checkout") == []


def test_a_relist_keeps_newer_own_writes_and_drops_what_is_gone() -> None:
    store = KindStore("apps/v1", "Deployment")
    store.upsert(deployment(3, 1, 1, "1.0.0", name="gone"))
    store.upsert(APPLIED)
    store.upsert(deployment(12, 1, 0, "1.1.0", name="written-after-the-list"))
    store.replace([OLD_DONE, {**deployment(4, 1, 1, "1.0.0", name="new"), "kind": None}], list_rv=10)
    names = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in store.of_app(NS, "checkout")}
    assert names == {"checkout": "7", "new": "4", "written-after-the-list": "12"}
    assert store.get(NS, "gone") is None


class Listed:
    def __init__(self, items: list[dict[str, Any]], rv: int):
        self.data = json.dumps({"metadata": {"resourceVersion": str(rv)}, "items": items}).encode()


class FakeApi:
    """A list call and watch requests fed by the test; records every call."""

    def __init__(self, items: list[dict[str, Any]], rv: int):
        self.items, self.rv = items, rv
        self.lists: list[dict[str, Any]] = []
        self.watches: list[int] = []
        self.events: queue.Queue[Any] = queue.Queue()

    def list(self, **kwargs: Any) -> Listed:
        self.lists.append(kwargs)
        return Listed(self.items, self.rv)

    def watch(self, resource_version: int) -> Iterator[dict[str, Any]]:
        self.watches.append(resource_version)
        while True:
            event = self.events.get(timeout=10)
            if event is None:  # the server's timeout: this watch request ends
                return
            if isinstance(event, Exception):
                raise event
            yield event


def until(check: Any, timeout: float = 5.0) -> None:
    """The cache's thread reached `check` within `timeout` (the lab's deadline-bounded poll)."""
    wait_until(
        lambda: None if check() else "not yet", timeout, "the cache's condition", error=AssertionError, max_delay_s=0.02
    )


def gone() -> Exception:
    error = Exception("too old resource version")
    error.status = 410  # type: ignore[attr-defined]
    return error


def test_the_watch_is_resumed_from_the_last_version_and_relisted_only_on_gone_or_an_error() -> None:
    api = FakeApi([OLD_DONE], rv=5)
    cache = KindCache(api.list, "apps/v1", "Deployment", watch_fn=api.watch)
    assert cache.of_app(NS, "checkout") is None and cache.lookup(NS, "checkout") == (False, None)
    cache.start()
    try:
        assert cache.wait_synced(5)
        assert cache.lookup(NS, "checkout") == (True, OLD_DONE)
        assert api.lists[0]["label_selector"] == LABEL_NAME
        api.events.put({"type": "MODIFIED", "object": deployment(9, 2, 2, "1.1.0")})
        api.events.put({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "11"}}})
        api.events.put(None)  # the request ends: resumed from 11, no list
        until(lambda: len(api.watches) == 2)
        assert api.watches == [5, 11] and cache.lists == 1
        assert (cache.of_app(NS, "checkout") or [{}])[0]["metadata"]["resourceVersion"] == "9"
        api.events.put({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
        until(lambda: len(api.watches) == 3)
        assert cache.lists == 2 and cache.synced  # 410: relisted at once; the copy stayed usable
        api.events.put(ConnectionResetError("the apiserver went away"))
        until(lambda: not cache.synced or cache.lists == 3)
        until(lambda: cache.lists == 3 and cache.synced)  # relisted after a second
        assert len(api.watches) == 4
    finally:
        cache.stop()
        api.events.put(None)


def test_a_broken_watch_sends_reads_back_to_the_api() -> None:
    api = FakeApi([OLD_DONE], rv=5)
    failing = threading.Event()

    def flaky_list(**kwargs: Any) -> Listed:
        if failing.is_set():
            raise ConnectionRefusedError("down")
        return api.list(**kwargs)

    cache = KindCache(flaky_list, "apps/v1", "Deployment", watch_fn=api.watch)
    cache.start()
    try:
        assert cache.wait_synced(5)
        failing.set()
        api.events.put(ConnectionResetError("down"))
        until(lambda: not cache.synced)
        assert cache.of_app(NS, "checkout") is None  # the adapter reads the API (and sees it fail)
    finally:
        cache.stop()
        api.events.put(None)


class Applied:
    def __init__(self, obj: dict[str, Any]):
        self.obj = obj

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.obj))


def adapter_with(cache: KindCache, returned: dict[str, Any]) -> KubernetesCluster:
    adapter = KubernetesCluster.__new__(KubernetesCluster)
    adapter.backoff, adapter.timeout, adapter.sleep = Backoff(attempts=1), 1.0, lambda _: None
    adapter._namespaces = {NS}
    adapter.writes = 0
    adapter._watch = True
    adapter._caches = {"Deployment": cache}
    adapter._census = {}
    resource = type("Res", (), {"server_side_apply": lambda _s, **_k: Applied(returned)})()
    adapter._resource = lambda ref: resource  # type: ignore[method-assign]
    return adapter


def test_the_adapter_records_what_its_apply_returned_and_reads_it_before_the_watch_does() -> None:
    api = FakeApi([OLD_DONE], rv=5)
    cache = KindCache(api.list, "apps/v1", "Deployment", watch_fn=api.watch)
    cache.start()
    try:
        assert cache.wait_synced(5)
        adapter = adapter_with(cache, APPLIED)
        adapter.apply(deployment(0, 0, 0, "1.1.0"))
        [seen] = cache.of_app(NS, "checkout") or []
        assert seen["metadata"]["resourceVersion"] == "7" and not complete(seen)
        api.events.put({"type": "MODIFIED", "object": OLD_DONE})  # late, older
        api.events.put(None)
        until(lambda: len(api.watches) == 2)
        [seen] = cache.of_app(NS, "checkout") or []
        assert not complete(seen)
        assert adapter._cached(ObjectRef("apps/v1", "Deployment", NS, "checkout")) is cache
        assert adapter._cached(ObjectRef("apps/v1beta1", "Deployment", NS, "checkout")) is None
        adapter._get_or_none = lambda fn: None  # type: ignore[method-assign]
        type(adapter).delete(adapter, ObjectRef("apps/v1", "Deployment", NS, "checkout"))
        assert cache.lookup(NS, "checkout") == (True, None)
    finally:
        cache.stop()
        api.events.put(None)

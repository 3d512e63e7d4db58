"""Watch-fed copies of the kinds the strategies read on every pass, one per kind per region cluster.

`KubernetesCluster.observe` read each driven app's Deployments, Services and HTTPRoute from the API
on every pass (three or more calls per app-region per pass). A `KindCache` holds every object of
one kind in one cluster that carries the app name label, from one list and then one watch shared by
all apps: started lazily the first time a release drives that cluster, resumed from the last
resourceVersion when a watch request ends, relisted only on 410 Gone or an error. Reads are served
from it once it is synced; until then, and while its watch is broken (the cluster may be down: the
strategies must see the read fail, not an old copy), the adapter reads the API as before.

Read-your-writes, as `rollout/cache.py` does for Releases: the adapter records the object each of
its own applies returned (and forgets what it deleted), and the cache never replaces a copy with an
older resourceVersion, so a read right after a write never decides from the copy before it (a late
watch event of the old Deployment must not read as "rollout complete"). `KindStore` is that pure
part; `KindCache` adds the thread.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import structlog

from config.identity import LABEL_NAME

log = structlog.get_logger("strategies.region_cache")
WATCH_SECONDS = 60  # one watch request lasts this long on the server; then it is resumed
RETRY_SECONDS = 1.0  # after an error, before relisting (doubled for each error in a row)
MAX_RETRY_SECONDS = 30.0
UNSERVED_RETRY_SECONDS = 60.0  # a kind the cluster does not serve (no CRD) or we may not list
Obj = dict[str, Any]
PARTIAL = "PartialObjectMetadata"  # the kind of an object listed or watched as metadata only
Key = tuple[str, str]  # (namespace, name)
_RUNNING: weakref.WeakSet[KindCache] = weakref.WeakSet()  # stopped at exit: no thread is left in a read


@atexit.register
def _stop_all() -> None:
    """A daemon thread still in a socket read when the interpreter finalizes can abort the process
    (seen: pytest exiting 134 after the lab tests passed); 3 s at most for all of them."""
    caches = list(_RUNNING)
    for cache in caches:
        cache.stop()
    deadline = time.monotonic() + 3.0
    for cache in caches:
        cache.join(max(0.0, deadline - time.monotonic()))


# What is kept of each object (`slim`): only what a reader of the cache looks at. The readers:
# strategies/observe.py `snapshot` (deployment_state, service_state, route_state, and `applied`:
# ref_of and hash_of), KubernetesCluster.check_ownership (the name label), this module (name,
# namespace, resourceVersion, the name label). A field a reader needs but `slim` drops would read as
# absent: tests/unit/strategies/test_region_cache.py checks that a slim copy gives the same snapshot
# as the whole object. The rest (the pod template, ports, clusterIPs, parentRefs, managedFields,
# other tools' annotations) is most of an object's size.
KEPT_METADATA = (
    "name",
    "namespace",
    "resourceVersion",
    "generation",
    "labels",
    "deletionTimestamp",
    "ownerReferences",
)
KEPT_ANNOTATIONS = "rollout.dev/"  # the controller's own (the applied hash, the prune opt-out)
KEPT_SPEC: dict[str, tuple[str, ...]] = {
    "Deployment": ("replicas",),
    "Service": ("selector",),
    "HTTPRoute": ("rules",),  # each rule: its backendRefs only
}


def slim(obj: Obj) -> Obj:
    """`obj` with only the fields the cache's readers use (a new dict; `obj` is not changed). A kind
    not in KEPT_SPEC keeps its whole spec and status: nothing is dropped that no one looked at."""
    meta = obj.get("metadata") or {}
    out_meta: Obj = {k: meta[k] for k in KEPT_METADATA if k in meta}
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(KEPT_ANNOTATIONS)}
    if notes:
        out_meta["annotations"] = notes
    out: Obj = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": out_meta}
    kind = str(obj.get("kind"))
    spec = obj.get("spec")
    if isinstance(spec, dict) and kind in KEPT_SPEC:
        spec = {k: spec[k] for k in KEPT_SPEC[kind] if k in spec}
        if kind == "HTTPRoute" and isinstance(spec.get("rules"), list):
            spec["rules"] = [{"backendRefs": r.get("backendRefs") or []} for r in spec["rules"] if isinstance(r, dict)]
    if spec is not None:
        out["spec"] = spec
    if "status" in obj and kind != "Service" and kind != "HTTPRoute":  # a Deployment's status: all of it is read
        out["status"] = obj["status"]
    return out


def rv_of(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class KindStore:
    """The objects of one kind, by key and by (namespace, app); never goes back to an older
    resourceVersion of an object, whoever reports it (a watch event, a relist, our own write)."""

    def __init__(self, api_version: str, kind: str):
        self.api_version, self.kind = api_version, kind
        self._items: dict[Key, Obj] = {}
        self._floor: dict[Key, int] = {}  # the newest resourceVersion known per key, deletes included
        self._by_app: dict[Key, dict[str, Obj]] = {}  # (namespace, app label) -> name -> object
        self._lock = threading.Lock()

    def _typed(self, obj: Obj) -> Obj:
        if not obj.get("kind") or obj.get("kind") == PARTIAL:  # a metadata-only answer names its own type
            obj = {**obj, "apiVersion": self.api_version, "kind": self.kind}
        elif not obj.get("apiVersion"):
            obj = {**obj, "apiVersion": self.api_version}
        return slim(obj)  # a new dict: the caller's object is never changed

    def _put(self, key: Key, obj: Obj) -> None:
        self._drop(key)
        self._items[key] = obj
        app = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_NAME)
        if app is not None:
            self._by_app.setdefault((key[0], str(app)), {})[key[1]] = obj

    def _drop(self, key: Key) -> None:
        old = self._items.pop(key, None)
        if old is None:
            return
        app = ((old.get("metadata") or {}).get("labels") or {}).get(LABEL_NAME)
        group = self._by_app.get((key[0], str(app)))
        if group is not None:
            group.pop(key[1], None)
            if not group:
                del self._by_app[(key[0], str(app))]

    def upsert(self, obj: Obj) -> bool:
        """An object as some source saw it; kept only if newer than what is known. True if kept."""
        key, rv = key_of(obj), rv_of(obj)
        with self._lock:
            if key in self._floor and rv <= self._floor[key]:  # the same version is the same content
                return False
            self._floor[key] = rv
            self._put(key, self._typed(obj))
            return True

    def deleted(self, obj: Obj) -> bool:
        """A DELETED event (its resourceVersion is the delete's): ignored if we know a newer copy."""
        key, rv = key_of(obj), rv_of(obj)
        with self._lock:
            if rv < self._floor.get(key, 0):
                return False
            self._floor[key] = rv
            self._drop(key)
            return True

    def forget(self, namespace: str, name: str) -> None:
        """Our own delete: gone for the readers at once; a later event of it (a Foreground delete's
        deletionTimestamp, a recreation) is newer than anything known and brings it back."""
        key = (namespace, name)
        with self._lock:
            known = self._items.get(key)
            if known is not None:
                self._floor[key] = max(self._floor.get(key, 0), rv_of(known))
            self._drop(key)

    def replace(self, listed: Iterable[Obj], list_rv: int) -> None:
        """A full list at `list_rv`: its objects, except where a newer copy is known, and the known
        objects newer than the list (written after it was taken)."""
        with self._lock:
            fresh: dict[Key, Obj] = {}
            for obj in listed:
                key = key_of(obj)
                known = self._items.get(key)
                fresh[key] = known if known is not None and rv_of(known) > rv_of(obj) else self._typed(obj)
            for key, known in self._items.items():
                if key not in fresh and rv_of(known) > list_rv:
                    fresh[key] = known
            self._items, self._by_app = {}, {}
            for key, obj in fresh.items():
                self._floor[key] = max(self._floor.get(key, 0), rv_of(obj))
                self._put(key, obj)

    def of_app(self, namespace: str, app: str) -> list[Obj]:
        with self._lock:
            return [self._items[(namespace, n)] for n in sorted(self._by_app.get((namespace, app), {}))]

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._items.get((namespace, name))


class Unserved(Exception):
    """The cluster does not serve the kind (404: no CRD) or forbids listing it (403)."""


ListFn = Callable[..., Any]


class KindCache:
    """One kind in one cluster: a list, then watches resumed from the last resourceVersion. `list_fn`
    is the all-namespaces list call of the kind (it also serves the watch; `watch_fn`, for tests,
    gives one watch request's events from a resourceVersion instead). Reads (`of_app`,
    `lookup`) say so while not synced: the caller then reads the API."""

    def __init__(
        self,
        list_fn: ListFn,
        api_version: str,
        kind: str,
        *,
        watch_fn: Callable[[int], Iterable[dict[str, Any]]] | None = None,
        cluster: str = "",
        labelled: bool = True,
        label_selector: str | None = None,
        give_up_unserved: bool = False,
        watch_seconds: int = WATCH_SECONDS,
        quiet: bool = False,
    ):
        self.store = KindStore(api_version, kind)
        self._list_fn = list_fn
        self._watch_fn = watch_fn
        self._cluster = cluster
        # only the objects with an app name label (Deployments, Services: observe lists by it), or all;
        # `label_selector` instead: only the objects it selects
        selector = label_selector if label_selector is not None else LABEL_NAME if labelled else None
        self._selector: dict[str, str] = {"label_selector": selector} if selector else {}
        # a kind the cluster does not serve or we may not list (403/404): stop for good instead of
        # retrying every minute (a retry is an API call at rest); readers then always read the API
        self._give_up_unserved = give_up_unserved
        self.unserved = False
        self._watch_seconds = watch_seconds  # one watch request's length: one request per this at rest
        # an outage logged at debug level: for the many prune copies, whose readers fall back to the
        # API as quietly as before (observe's copies of the same cluster already warn once)
        self._quiet = quiet
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._response: Any = None  # the watch request in progress: shut down by stop()
        self.lists = 0  # full lists made: one at the start, then one per 410 Gone or error
        self._told_unserved = False  # a 403/404 is logged once, then retried quietly

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"watch-{self._cluster}-{self.store.kind}", daemon=True
                )
                self._thread.start()
                _RUNNING.add(self)

    def stop(self) -> None:
        """End the thread: the watch in progress is cut at the socket (a read blocked in it returns)."""
        self._stop.set()
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def of_app(self, namespace: str, app: str) -> list[Obj] | None:
        return self.store.of_app(namespace, app) if self.synced else None

    def lookup(self, namespace: str, name: str) -> tuple[bool, Obj | None]:
        """(True, the object or None when it does not exist), or (False, None) when the cache cannot
        tell (not synced): the caller reads the API."""
        return (True, self.store.get(namespace, name)) if self.synced else (False, None)

    # --- the thread ----------------------------------------------------------------------------

    def _list(self) -> int:
        response = self._list_fn(**self._selector, _preload_content=False, _request_timeout=30)
        listed = json.loads(response.data)
        rv = int((listed.get("metadata") or {}).get("resourceVersion") or 0)
        self.store.replace(listed.get("items") or [], rv)
        self.lists += 1
        return rv

    def _run(self) -> None:
        resume: int | None = None
        failures = 0  # in a row: the wait before the next list doubles, up to MAX_RETRY_SECONDS
        while not self._stop.is_set():
            try:
                if resume is None:
                    resume = self._list()
                    self._synced.set()
                    failures = 0
                resume = self._watch(resume)
            except Exception as exc:  # noqa: BLE001 - every failure ends in a relist
                resume = None
                if self._stop.is_set():  # stop() cut the watch
                    return
                status = getattr(exc, "status", None)
                if status == 410:  # too old a version: the copy is still good, relist at once
                    log.info("region watch expired; relisting", cluster=self._cluster, kind=self.store.kind)
                    continue
                self._synced.clear()  # the cluster may be down: readers must see their reads fail
                if status in (403, 404) and self._give_up_unserved:
                    self.unserved = True
                    log.debug("region kind not watched", cluster=self._cluster, kind=self.store.kind, status=status)
                    return
                if status in (403, 404):
                    if not self._told_unserved:  # once: a namespaced grant is the default, not a fault
                        log.info(
                            "region kind not watched; read per pass",
                            cluster=self._cluster,
                            kind=self.store.kind,
                            status=status,
                        )
                        self._told_unserved = True
                    self._stop.wait(UNSERVED_RETRY_SECONDS)
                    continue
                failures += 1
                if failures == 1:  # once per outage: the reads' own errors say the rest
                    (log.debug if self._quiet else log.warning)(
                        "region watch interrupted; reads go to the API until it is back",
                        cluster=self._cluster,
                        kind=self.store.kind,
                        error=type(exc).__name__,
                    )
                self._stop.wait(min(MAX_RETRY_SECONDS, RETRY_SECONDS * 2 ** (failures - 1)))

    def _events(self, resource_version: int) -> Iterator[dict[str, Any]]:
        """One watch request's events, parsed as plain JSON (no model classes: this is per event)."""
        if self._watch_fn is not None:
            yield from self._watch_fn(resource_version)
            return
        from kubernetes.watch.watch import iter_resp_lines

        response = self._list_fn(
            **self._selector,
            watch=True,
            resource_version=str(resource_version),
            timeout_seconds=self._watch_seconds,
            allow_watch_bookmarks=True,
            _preload_content=False,
            _request_timeout=self._watch_seconds + 15,  # a stalled stream ends as an error
        )
        self._response = response
        if self._stop.is_set():  # stopped while the request was being made
            self.stop()
        try:
            for line in iter_resp_lines(response):
                if line and not line.isspace():
                    yield json.loads(line)
        finally:
            self._response = None
            response.close()
            response.release_conn()

    def _watch(self, resource_version: int) -> int:
        """Apply one watch request's events; the resourceVersion to resume from."""
        for event in self._events(resource_version):
            if self._stop.is_set():
                break
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                error = Exception(str(obj.get("message")))
                error.status = int(obj.get("code") or 500)  # type: ignore[attr-defined]
                raise error
            resource_version = max(resource_version, rv_of(obj))
            if kind in ("ADDED", "MODIFIED"):
                self.store.upsert(obj)
            elif kind == "DELETED":
                self.store.deleted(obj)
        return resource_version

"""A watch-fed cache of one custom resource kind: reconciles read from memory, not the API."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Collection
from typing import Any

import structlog
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from rollout.release import ReleasePhase
from rollout.store import StoredRelease, as_object

log = structlog.get_logger("rollout.cache")
WATCH_SECONDS = 60  # one watch request lasts this long; then it is resumed from where it ended


class WatchCache:
    def __init__(
        self,
        api_client: client.ApiClient,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        on_change: Callable[[], None],
    ):
        self._api = client.CustomObjectsApi(api_client)
        self._args = (group, version, namespace, plural)
        self._on_change = on_change
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.version = 0  # counts changes: a reader that saw this version has nothing new to look at
        self._stop = threading.Event()
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{plural}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())

    def put(self, obj: dict[str, Any]) -> None:
        """Record our own write at once, so the next pass does not decide from a stale copy."""
        with self._lock:
            current = self._items.get(obj["metadata"]["name"])
            if current is None or _rv(obj) > _rv(current):  # the same version is the same content
                self._items[obj["metadata"]["name"]] = obj
                self.version += 1

    def _run(self) -> None:
        """List once, then watch from the last resourceVersion seen; a watch that ends (the server's
        timeout) is resumed, not relisted. Only an error (410 Gone: the version is too old; the
        network) lists again, so an idle fleet costs one watch request a minute per kind, not a list."""
        resume: str | None = None
        while not self._stop.is_set():
            try:
                if resume is None:
                    listed = as_object(self._api.list_namespaced_custom_object(*self._args))
                    with self._lock:
                        self._items = {i["metadata"]["name"]: i for i in listed["items"]}
                        self.version += 1
                    self.synced.set()
                    self._on_change()
                    resume = str(listed["metadata"]["resourceVersion"])
                resume = self._watch(resume)
            except ApiException as exc:
                resume = None
                if exc.status == 410:
                    log.info("watch expired; relisting", resource=self._args[3])
                    continue
                log.warning("watch failed; relisting", resource=self._args[3], status=exc.status)
                self._stop.wait(1)
            except Exception as exc:  # noqa: BLE001 - network errors of many kinds: relist
                resume = None
                log.warning("watch interrupted; relisting", resource=self._args[3], error=type(exc).__name__)
                self._stop.wait(1)

    def _watch(self, resource_version: str) -> str | None:
        """Apply the events of one watch request; returns the resourceVersion to resume from."""
        stream = watch.Watch()
        for event in stream.stream(
            self._api.list_namespaced_custom_object,
            *self._args,
            resource_version=resource_version,
            timeout_seconds=WATCH_SECONDS,
            allow_watch_bookmarks=True,
        ):
            if self._stop.is_set():
                stream.stop()
                return None
            obj, kind = event["object"], event["type"]
            resource_version = str(obj.get("metadata", {}).get("resourceVersion") or resource_version)
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                continue  # BOOKMARK: only the resourceVersion moves on
            with self._lock:
                if kind == "DELETED":
                    self._items.pop(obj["metadata"]["name"], None)
                else:
                    self._items[obj["metadata"]["name"]] = obj
                self.version += 1
            self._on_change()
        return resource_version


class ReleaseIndex:
    """The releases of a watch cache grouped by app, rebuilt only when the cache changed, and then
    parsing only the objects whose resourceVersion changed: a pass over an idle fleet parses nothing
    and touches no idle app."""

    def __init__(self, cache: WatchCache, active: Collection[ReleasePhase]):
        self._cache = cache
        self._active = frozenset(active)
        self._version = -1
        self._parsed: dict[str, StoredRelease] = {}
        self.by_app: dict[str, list[StoredRelease]] = {}  # each app's releases, oldest first
        self.live: frozenset[str] = frozenset()  # apps with a release in an active phase
        self.app_of: dict[str, str] = {}  # release name -> app

    def refresh(self) -> bool:
        """Catch up with the cache; True when something changed since the last call."""
        version = self._cache.version  # read first: a change while copying is seen next time
        if version == self._version:
            return False
        parsed: dict[str, StoredRelease] = {}
        for obj in self._cache.items():
            meta = obj["metadata"]
            known = self._parsed.get(meta["name"])
            same = known is not None and known.resource_version == str(meta.get("resourceVersion"))
            parsed[meta["name"]] = known if same and known is not None else StoredRelease.from_object(obj)
        by_app: dict[str, list[StoredRelease]] = defaultdict(list)
        for release in parsed.values():
            by_app[release.spec.app].append(release)
        for releases in by_app.values():
            releases.sort(key=lambda r: (r.created, r.name))
        self._parsed, self.by_app, self._version = parsed, dict(by_app), version
        self.app_of = {name: r.spec.app for name, r in parsed.items()}
        self.live = frozenset(r.spec.app for r in parsed.values() if ReleasePhase(r.status.phase) in self._active)
        return True


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion", 0))
    except ValueError:
        return 0

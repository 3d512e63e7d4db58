"""A watch-fed cache of one custom resource kind: reconciles read from memory, not the API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from rollout.store import as_object

log = structlog.get_logger("rollout.cache")


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
            if current is None or _rv(obj) >= _rv(current):
                self._items[obj["metadata"]["name"]] = obj

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listed = as_object(self._api.list_namespaced_custom_object(*self._args))
                with self._lock:
                    self._items = {i["metadata"]["name"]: i for i in listed["items"]}
                self.synced.set()
                self._on_change()
                self._watch(listed["metadata"]["resourceVersion"])
            except ApiException as exc:
                log.warning("watch failed; relisting", resource=self._args[3], status=exc.status)
                self._stop.wait(1)
            except Exception as exc:  # noqa: BLE001 - network errors of many kinds: relist
                log.warning("watch interrupted; relisting", resource=self._args[3], error=type(exc).__name__)
                self._stop.wait(1)

    def _watch(self, resource_version: str) -> None:
        stream = watch.Watch()
        for event in stream.stream(
            self._api.list_namespaced_custom_object, *self._args, resource_version=resource_version, timeout_seconds=60
        ):
            if self._stop.is_set():
                stream.stop()
                return
            obj, kind = event["object"], event["type"]
            with self._lock:
                if kind == "DELETED":
                    self._items.pop(obj["metadata"]["name"], None)
                elif kind in ("ADDED", "MODIFIED"):
                    self._items[obj["metadata"]["name"]] = obj
            self._on_change()


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion", 0))
    except ValueError:
        return 0

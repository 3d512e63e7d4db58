"""One list+watch loop per kind (Releases, ReleaseActions) per server, with the caller's identity,
into an in-memory copy that every open page reads. Pages learn of a change through `Hub.wait`
(Server-Sent Events in server.py): a browser never makes the server call the API server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from rollout.store import ACTIONS, GROUP, RELEASES, VERSION, as_object

log = structlog.get_logger(__name__)
WATCH_SECONDS = 240  # the API server ends a watch after this; the loop goes on from the last version
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)


class Hub:
    """The current objects of both kinds and a change counter; thread-safe."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._objects: dict[str, dict[str, dict[str, Any]]] = {RELEASES: {}, ACTIONS: {}}
        self._synced: set[str] = set()
        self.version = 0
        self.error = ""

    def replace(self, kind: str, items: list[dict[str, Any]]) -> None:
        with self._changed:
            self._objects[kind] = {o["metadata"]["name"]: o for o in items}
            self._synced.add(kind)
            self.error = ""
            self._bump()

    def apply(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        with self._changed:
            name = obj["metadata"]["name"]
            if event == "DELETED":
                self._objects[kind].pop(name, None)
            else:
                self._objects[kind][name] = obj
            self._bump()

    def failed(self, message: str) -> None:
        with self._changed:
            if message != self.error:
                self.error = message
                self._bump()

    def _bump(self) -> None:
        self.version += 1
        self._changed.notify_all()

    def releases(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._objects[RELEASES].values())

    def actions(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._objects[ACTIONS].values())

    @property
    def synced(self) -> bool:
        with self._changed:
            return self._synced == {RELEASES, ACTIONS}

    def wait(self, since: int, timeout_s: float) -> int:
        """The version once it differs from `since`, or the same after `timeout_s`."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != since, timeout=timeout_s)
            return self.version


class Watcher:
    """List, then watch from the list's resourceVersion; a watch that ends resumes from the last
    version seen; an expired version (410) or any error lists again after a backoff."""

    def __init__(
        self, api_client: client.ApiClient, namespace: str, kind: str, hub: Hub, describe: Callable[[ApiException], str]
    ):
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace, self.kind, self.hub, self.describe = namespace, kind, hub, describe
        self.stopped = threading.Event()
        self._watch = watch.Watch()
        self.thread = threading.Thread(target=self._run, name=f"ui-watch-{kind}", daemon=True)

    def start(self) -> Watcher:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self._watch.stop()

    def _run(self) -> None:
        failures = 0
        while not self.stopped.is_set():
            try:
                self._list_and_watch()
                failures = 0
            except ApiException as exc:
                self.hub.failed(self.describe(exc))
                failures += 1
            except Exception as exc:  # noqa: BLE001 - connection refused, TLS, timeouts: shown, retried
                self.hub.failed(f"cannot reach the home cluster to watch {self.kind}: {type(exc).__name__}: {exc}")
                failures += 1
            if failures:
                log.warning("ui.watch.retry", kind=self.kind, error=self.hub.error, failures=failures)
                self.stopped.wait(BACKOFF_S[min(failures, len(BACKOFF_S)) - 1])

    def _list_and_watch(self) -> None:
        listed = as_object(self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, self.kind))
        self.hub.replace(self.kind, listed["items"])
        version = listed["metadata"]["resourceVersion"]
        while not self.stopped.is_set():
            self._watch = watch.Watch()
            for event in self._watch.stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                self.kind,
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True,
            ):
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    return  # e.g. 410 Gone: the version expired; list again
                version = obj["metadata"]["resourceVersion"]
                if kind != "BOOKMARK":
                    self.hub.apply(self.kind, kind, obj)

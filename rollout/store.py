"""Release and ReleaseAction objects in the controller's home cluster: the controller's memory.

Status writes carry the resourceVersion they were decided from, so a concurrent writer (a second
replica that still thinks it leads, a responder's action) makes the write fail with a conflict
instead of being overwritten; the caller re-reads and re-decides.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout.release import ReleaseSpec, ReleaseStatus

GROUP, VERSION = "rollout.dev", "v1alpha1"
RELEASES, ACTIONS = "releases", "releaseactions"
LABEL_APP = "app.kubernetes.io/name"


def as_object(value: object) -> dict[str, Any]:
    """The custom objects API returns untyped JSON; our objects are mappings."""
    return cast(dict[str, Any], value)


class ObjectCache(Protocol):
    """What the store reads from when the controller runs: its watch cache (rollout/cache.py)."""

    synced: threading.Event

    def items(self) -> list[dict[str, Any]]: ...

    def put(self, obj: dict[str, Any]) -> None: ...


class StatusConflict(Exception):
    """The object changed since it was read: re-read and decide again."""


@dataclass(frozen=True)
class StoredRelease:
    name: str
    resource_version: str
    spec: ReleaseSpec
    status: ReleaseStatus
    created: str

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> StoredRelease:
        meta = obj["metadata"]
        return cls(
            meta["name"],
            meta["resourceVersion"],
            ReleaseSpec.from_dict(obj["spec"]),
            ReleaseStatus.from_dict(obj.get("status")),
            meta.get("creationTimestamp", ""),
        )


class ReleaseStore:
    def __init__(self, api_client: client.ApiClient, namespace: str = "rollout-system"):
        self._api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self._cache: ObjectCache | None = None
        # status.actedBy of every status write: the replica and shard that wrote it (rollout/shards.py
        # Fence.stamp). Not part of ReleaseStatus: it says who wrote, not what the release is.
        self.acted_by: Callable[[], dict[str, Any]] | None = None

    def read_from(self, cache: ObjectCache) -> None:
        """List from `cache` once it is synced instead of from the API (every Git poll listed every
        release of the fleet), and record this store's own writes in it at once."""
        self._cache = cache

    def _seen(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self._cache is not None:
            self._cache.put(obj)
        return obj

    def create(self, spec: ReleaseSpec, status: ReleaseStatus | None = None) -> StoredRelease:
        """Create the release; if it already exists (a restart, another pass), return the stored one."""
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Release",
            "metadata": {"name": spec.name, "labels": {LABEL_APP: spec.app}},
            "spec": spec.to_dict(),
        }
        try:
            created = self._api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, RELEASES, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            return self.get(spec.name)
        stored = StoredRelease.from_object(self._seen(as_object(created)))
        return self.write_status(stored, status) if status is not None else stored

    def get(self, name: str) -> StoredRelease:
        return StoredRelease.from_object(
            as_object(self._api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, RELEASES, name))
        )

    def list(self, app: str | None = None) -> list[StoredRelease]:
        if self._cache is not None and self._cache.synced.is_set():
            items = [i for i in self._cache.items() if not app or i["spec"].get("app") == app]
        else:
            selector = f"{LABEL_APP}={app}" if app else ""
            items = as_object(
                self._api.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, RELEASES, label_selector=selector
                )
            )["items"]
        return sorted((StoredRelease.from_object(i) for i in items), key=lambda r: (r.created, r.name))

    def write_status(self, release: StoredRelease, status: ReleaseStatus) -> StoredRelease:
        """Replace the status, guarded by the resourceVersion it was decided from."""
        written = status.to_dict()
        if self.acted_by is not None:
            written["actedBy"] = self.acted_by()
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Release",
            "metadata": {"name": release.name, "resourceVersion": release.resource_version},
            "spec": release.spec.to_dict(),
            "status": written,
        }
        try:
            updated = self._api.replace_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, RELEASES, release.name, body
            )
        except ApiException as exc:
            if exc.status == 409:
                raise StatusConflict(release.name) from None
            raise
        return StoredRelease.from_object(self._seen(as_object(updated)))

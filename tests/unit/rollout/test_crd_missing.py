"""The rollout CRDs missing from the home cluster (not installed yet, or deleted): the controller's
watch cache answers 404 by relisting, never reports itself synced and holds no objects (nothing is
decided from an empty picture); once the CRD is installed it fills in without a restart. The CLI
turns the same 404 into the install command."""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout.cache import WatchCache
from rollout.cli.ops import explain

RELEASE = {"metadata": {"name": "search-abc", "resourceVersion": "7"}, "spec": {}, "status": {}}


class Api:
    """list_namespaced_custom_object as the home apiserver answers it before and after the CRD."""

    def __init__(self) -> None:
        self.installed = False
        self.lists = 0

    def list_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.lists += 1
        if not self.installed:
            raise ApiException(status=404, reason="Not Found")
        return {"items": [RELEASE], "metadata": {"resourceVersion": "7"}}


def test_without_the_crd_the_cache_relists_stays_unsynced_and_fills_in_once_it_is_installed() -> None:
    cache = WatchCache(client.ApiClient(), "rollout.dev", "v1alpha1", "rollout-system", "releases", lambda: None)
    api = Api()
    cache._api = api  # type: ignore[assignment]
    watching = threading.Event()

    def watch(resource_version: str) -> None:  # the watch stream itself: held open until stopped
        watching.set()
        cache._stop.wait(30)

    cache._watch = watch  # type: ignore[method-assign]
    cache.start()
    try:
        deadline = threading.Event()
        while api.lists < 2 and not deadline.wait(0.1):
            pass
        assert api.lists >= 2, "a 404 was not retried"  # relisted (about once a second), no crash
        assert not cache.synced.is_set() and cache.items() == []
        api.installed = True
        assert cache.synced.wait(10) and watching.wait(10)
        assert [o["metadata"]["name"] for o in cache.items()] == ["search-abc"]
    finally:
        cache.stop()


def test_the_cli_names_the_install_command_when_the_crds_are_missing() -> None:
    message = explain(ApiException(status=404, reason="Not Found"), "list releases", "rollout-system", lambda: "me")
    assert "the rollout CRDs are not installed" in message and "kubectl apply -k deploy/" in message

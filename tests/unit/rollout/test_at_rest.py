"""The controller at rest (issue 15 item 2): a watch that ends is resumed, not relisted; the release
index parses only what changed and names only the apps with a release in flight; Git polls list the
fleet from the watch cache; watches are counted as WATCH, not as a read per pass."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes import watch as kube_watch
from kubernetes.client.exceptions import ApiException

from rollout import metrics
from rollout.cache import ReleaseIndex, WatchCache
from rollout.controller import Controller
from rollout.failures import Retries
from rollout.reconciler import ACTIVE
from rollout.release import ReleaseSpec, ReleaseStatus
from rollout.store import ReleaseStore, StoredRelease


def release(name: str, app: str, phase: str, rv: str) -> dict[str, Any]:
    spec = ReleaseSpec(app=app, commit="c" * 40, version="1.0.0", plan_digest="p", content_digest="d", waves=())
    status = ReleaseStatus.from_dict({"phase": phase})
    return {
        "metadata": {"name": name, "resourceVersion": rv, "creationTimestamp": f"2026-01-01T00:00:0{rv[-1]}Z"},
        "spec": spec.to_dict(),
        "status": status.to_dict(),
    }


class ListApi:
    def __init__(self, *rvs: str) -> None:
        self.rvs = list(rvs)
        self.lists = 0

    def list_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        rv = self.rvs[min(self.lists, len(self.rvs) - 1)]
        self.lists += 1
        return {"items": [release("a-1", "a", "Succeeded", rv)], "metadata": {"resourceVersion": rv}}


def test_a_watch_that_ends_is_resumed_from_its_last_version_and_only_410_relists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[str] = []
    stop = threading.Event()

    class Watch:
        def stream(self, func: Any, *args: Any, resource_version: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
            started.append(resource_version)
            assert kwargs["allow_watch_bookmarks"] is True
            if len(started) == 1:  # one change, then a bookmark, then the server's timeout
                yield {"type": "MODIFIED", "object": release("a-1", "a", "Succeeded", "6")}
                yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "8"}}}
            elif len(started) == 2:
                raise ApiException(status=410, reason="Gone")
            else:
                stop.wait(10)

        def stop(self) -> None:
            pass

    monkeypatch.setattr(kube_watch, "Watch", Watch)
    changes: list[int] = []
    cache = WatchCache(client.ApiClient(), "rollout.dev", "v1alpha1", "ns", "releases", lambda: changes.append(1))
    api = ListApi("5", "9")
    cache._api = api  # type: ignore[assignment]
    cache.start()
    try:
        deadline = threading.Event()
        while len(started) < 3 and not deadline.wait(0.05):
            pass
        assert started == ["5", "8", "9"], "resumed from the bookmark, relisted only after 410 Gone"
        assert api.lists == 2
        assert len(changes) == 3  # list, MODIFIED, list again: a bookmark is no change
    finally:
        stop.set()
        cache.stop()


class FakeCache:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = {o["metadata"]["name"]: o for o in objects}
        self.version = 1
        self.synced = threading.Event()
        self.synced.set()
        self.puts: list[dict[str, Any]] = []

    def items(self) -> list[dict[str, Any]]:
        return list(self.objects.values())

    def put(self, obj: dict[str, Any]) -> None:
        self.puts.append(obj)
        self.objects[obj["metadata"]["name"]] = obj
        self.version += 1


def test_the_index_parses_only_what_changed_and_names_only_apps_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = [release(f"app{i}-1", f"app{i}", "Succeeded", "1") for i in range(50)]
    fake = FakeCache([*fleet, release("web-1", "web", "Succeeded", "2"), release("web-2", "web", "Progressing", "3")])
    parsed: list[str] = []
    original = StoredRelease.from_object.__func__  # type: ignore[attr-defined]

    def counting(cls: type[StoredRelease], obj: dict[str, Any]) -> StoredRelease:
        parsed.append(obj["metadata"]["name"])
        return original(cls, obj)  # type: ignore[no-any-return]

    monkeypatch.setattr(StoredRelease, "from_object", classmethod(counting))
    index = ReleaseIndex(fake, ACTIVE)  # type: ignore[arg-type]
    assert index.refresh() and len(parsed) == 52
    assert index.live == {"web"}
    assert [r.name for r in index.by_app["web"]] == ["web-1", "web-2"]
    parsed.clear()
    for _ in range(100):  # idle passes: nothing parsed, nothing rebuilt
        assert not index.refresh()
    assert parsed == []
    fake.put(release("web-2", "web", "Succeeded", "4"))
    assert index.refresh() and parsed == ["web-2"] and index.live == frozenset()


class Api:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def list_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("list")
        return {"items": []}

    def replace_namespaced_custom_object_status(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("replace")
        body: dict[str, Any] = args[-1]
        return {**body, "metadata": {**body["metadata"], "resourceVersion": "7"}}


def test_git_polls_list_releases_from_the_synced_cache_and_writes_land_in_it() -> None:
    store = ReleaseStore(client.ApiClient(), "ns")
    api = Api()
    store._api = api  # type: ignore[assignment]
    assert store.list() == [] and api.calls == ["list"]  # no cache yet: the API
    fake = FakeCache([release("a-1", "a", "Succeeded", "1"), release("b-1", "b", "Pending", "2")])
    store.read_from(fake)
    api.calls.clear()
    assert [r.name for r in store.list()] == ["a-1", "b-1"] and [r.name for r in store.list("b")] == ["b-1"]
    assert api.calls == []
    written = store.write_status(store.list("b")[0], ReleaseStatus.from_dict({"phase": "Superseded"}))
    assert written.resource_version == "7" and fake.puts[-1]["metadata"]["resourceVersion"] == "7"
    fake.synced.clear()  # relisting after an error: the API again
    store.list()
    assert api.calls == ["replace", "list"]


def test_a_watch_is_counted_as_watch_not_as_a_read() -> None:
    base = "https://127.0.0.1:6443/apis/rollout.dev/v1alpha1/namespaces/ns/releases"
    assert metrics.watching(base + "?watch=true&timeoutSeconds=60&allowWatchBookmarks=true")
    assert not metrics.watching(base) and not metrics.watching(base + "?labelSelector=watch%3Dtrue")
    assert metrics.resource_of(base + "?watch=true") == "releases"


def test_an_idle_pass_reconciles_only_the_release_in_flight_and_gathers_nothing_per_release() -> None:
    fleet = [release(f"app{i}-1", f"app{i}", "Succeeded", str(i + 1)) for i in range(50)]
    releases = FakeCache([*fleet, release("web-2", "web", "Progressing", "99")])
    reconciled: list[str] = []

    class Reconciler:
        freezes: tuple[Any, ...] = ()

        def reconcile(self, stored: StoredRelease, siblings: Any, requests: Any, now: datetime) -> StoredRelease:
            reconciled.append(stored.name)
            return stored

    def no_names(by_app: Any) -> Any:
        raise AssertionError("the fleet's names were gathered with no action pending")

    controller = Controller.__new__(Controller)
    controller.releases = releases  # type: ignore[assignment]
    controller.actions = FakeCache([])  # type: ignore[assignment]
    controller.index = ReleaseIndex(releases, ACTIVE)  # type: ignore[arg-type]
    controller._pending = (-1, [])
    controller._retries = Retries()
    controller._reconciler = Reconciler()  # type: ignore[assignment]
    controller._known = no_names  # type: ignore[method-assign]
    controller._freezes = lambda now: ()  # type: ignore[method-assign]
    controller._collect_trees = lambda by_app, now: None  # type: ignore[method-assign]
    now = datetime.now(UTC)
    for _ in range(3):
        controller.reconcile_all(now)
    assert reconciled == ["web-2"] * 3


def test_the_controller_does_not_load_scipy_until_a_judge_runs() -> None:
    """scipy.stats is about 87 MiB of RSS: a fresh interpreter importing the controller must not
    carry it (it is imported by the judge on first use)."""
    import subprocess
    import sys

    probe = "import sys, rollout.controller, rollout.cli; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr

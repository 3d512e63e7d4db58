"""The reconcile worker pool (rollout/workers.py) and the pass that uses it: reconciles of different
apps run in parallel, never two of one app at a time, one app's error stops no other, the pass
returns only when its batch is done, and `--workers 1` is the pass as it was (one thread, app order)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from rollout.cache import ReleaseIndex
from rollout.controller import Controller
from rollout.failures import Retries
from rollout.reconciler import ACTIVE
from rollout.shards import Fence
from rollout.store import StoredRelease
from rollout.workers import AppPool, pool_size, sized
from tests.unit.rollout.test_at_rest import FakeCache, release

WAIT = 5.0  # seconds: a deadline for conditions, never a sleep


def test_different_apps_run_at_once_up_to_the_number_of_workers() -> None:
    pool = AppPool(3)
    together = threading.Barrier(3, timeout=WAIT)  # passes only if three tasks run at the same time
    lock, running, most = threading.Lock(), [0], [0]

    def task(app: str) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if app in ("a", "b", "c"):
            together.wait()
        with lock:
            running[0] -= 1

    assert pool.run(["a", "b", "c", "d", "e", "f"], task) == frozenset()
    assert most[0] == 3  # three at once, never more than the three workers
    pool.shutdown()


def test_an_app_still_running_is_not_started_twice_and_the_pass_waits_for_its_batch() -> None:
    pool = AppPool(4)
    release_a, a_started = threading.Event(), threading.Event()
    runs: list[str] = []
    lock = threading.Lock()

    def task(app: str) -> None:
        with lock:
            runs.append(app)
        if app == "a":
            a_started.set()
            assert release_a.wait(WAIT)

    first_done = threading.Event()

    def first_pass() -> None:
        pool.run(["a", "b"], task)
        first_done.set()

    first = threading.Thread(target=first_pass)
    first.start()
    assert a_started.wait(WAIT)
    skipped = pool.run(["a", "c"], task)  # a second caller while a's reconcile is running
    assert skipped == frozenset({"a"})
    assert not first_done.is_set()  # the first pass still waits for a
    release_a.set()
    first.join(WAIT)
    assert first_done.is_set()
    assert sorted(runs) == ["a", "b", "c"]  # a once
    assert pool.run(["a"], task) == frozenset()  # a is free again once its reconcile ended
    pool.shutdown()


def test_an_error_in_one_app_does_not_stop_the_others() -> None:
    pool = AppPool(2)
    done: list[str] = []

    def task(app: str) -> None:
        if app == "broken":
            raise RuntimeError("boom")
        done.append(app)

    assert pool.run(["a", "broken", "b", "c"], task) == frozenset()
    assert sorted(done) == ["a", "b", "c"]
    assert pool.run(["broken"], task) == frozenset()  # a lone app: still inside the error boundary
    pool.shutdown()


def test_one_worker_is_the_pass_as_before_one_thread_in_app_order_errors_propagate() -> None:
    pool = AppPool(1)
    seen: list[tuple[str, str]] = []
    pool.run(["c", "a", "b"], lambda app: seen.append((app, threading.current_thread().name)))
    assert seen == [(a, threading.current_thread().name) for a in ("a", "b", "c")]

    def fails(app: str) -> None:
        raise RuntimeError(app)

    with pytest.raises(RuntimeError):
        pool.run(["a"], fails)
    assert pool.run(["a"], lambda app: None) == frozenset()  # not left busy by the error
    with pytest.raises(ValueError, match="--workers 0"):
        AppPool(0)


def test_a_parallel_pass_fences_each_apps_writes_by_its_own_shard_in_its_worker() -> None:
    apps = ["cart", "billing", "checkout", "orders"]  # shards 3, 1, 5, 4 of 6
    cache = FakeCache([release(f"{a}-1", a, "Progressing", str(i + 1)) for i, a in enumerate(apps)])
    held = {3: True, 5: True, 4: True, 1: False}
    fence = Fence("replica-a", lambda s: held.get(s, False), lambda: sorted(held))
    seen: dict[str, tuple[bool, dict[str, Any], str]] = {}
    together = threading.Barrier(3, timeout=WAIT)  # the three held apps are reconciled at once

    class Reconciler:
        freezes: tuple[Any, ...] = ()

        def reconcile(self, stored: StoredRelease, siblings: Any, requests: Any, now: datetime) -> StoredRelease:
            together.wait()
            seen[stored.spec.app] = (fence.may_write(), fence.stamp(), threading.current_thread().name)
            return stored

    ctl = Controller.__new__(Controller)
    ctl.s = SimpleNamespace(shards=6)  # type: ignore[assignment]
    ctl.shard_leases = SimpleNamespace()  # type: ignore[assignment]
    ctl.fence = fence
    ctl.releases = cache  # type: ignore[assignment]
    ctl.actions = FakeCache([])  # type: ignore[assignment]
    ctl.index = ReleaseIndex(cache, ACTIVE)  # type: ignore[arg-type]
    ctl._pending = (-1, [])
    ctl._retries = Retries()
    ctl._pool = AppPool(4)
    ctl._reconciler = Reconciler()  # type: ignore[assignment]
    ctl._freezes = lambda now: ()  # type: ignore[method-assign]
    ctl._collect_trees = lambda by_app, now: None  # type: ignore[method-assign]
    ctl._write_back = lambda by_app, now: None  # type: ignore[method-assign]
    ctl.reconcile_all(datetime.now(UTC))
    assert {app: (ok, stamp) for app, (ok, stamp, _) in seen.items()} == {
        "cart": (True, {"replica": "replica-a", "shard": 3}),
        "checkout": (True, {"replica": "replica-a", "shard": 5}),
        "orders": (True, {"replica": "replica-a", "shard": 4}),
    }
    assert all(name.startswith("reconcile") for _, _, name in seen.values())  # on the pool's threads
    assert fence.shard == 0  # the pass's own thread acts for shard 0 as before
    ctl._pool.shutdown()


def test_api_clients_keep_a_connection_per_worker() -> None:
    api = sized(client.ApiClient(client.Configuration()), pool_size(16))
    assert api.rest_client.pool_manager.connection_pool_kw["maxsize"] == 20
    assert pool_size(1) == 10  # never below the client's own default on two cores

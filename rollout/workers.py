"""Reconciles of different apps in parallel: a bounded pool the reconcile pass hands its apps to.

The pass stays level-triggered and simple: it gives the pool the apps that move, the pool runs one
task per app on at most `workers` threads, and the pass returns only when every task of its batch
has ended. Contract (tests/unit/rollout/test_workers.py):

- at most one task per app at a time: an app still running (which a waiting pass never leaves
  behind, but a second caller could) is skipped, to be picked up by the next pass;
- an error in one app's task is logged and does not stop the others;
- `workers=1` runs the tasks one after another in the calling thread, in app order, and lets an
  error propagate: exactly the pass as it was before the pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import structlog
from kubernetes import client
from kubernetes.client import rest

log = structlog.get_logger("rollout.workers")


class AppPool:
    def __init__(self, workers: int, name: str = "reconcile"):
        if workers < 1:
            raise ValueError(f"--workers {workers}: at least 1")
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) if workers > 1 else None
        self._lock = threading.Lock()
        self._busy: set[str] = set()

    def run(self, apps: Iterable[str], task: Callable[[str], None]) -> frozenset[str]:
        """Run `task(app)` for every app and wait for all of them; returns the apps skipped because
        a task of theirs was still running."""
        ordered = sorted(set(apps))
        if self._executor is None:
            return self._run_here(ordered, task)
        skipped: set[str] = set()
        if len(ordered) == 1:  # no thread hop for a lone app
            if self._claim(ordered[0]):
                self._guarded(ordered[0], task)
                return frozenset()
            return frozenset(ordered)
        futures: list[Future[None]] = []
        for app in ordered:
            if not self._claim(app):
                skipped.add(app)
                continue
            futures.append(self._executor.submit(self._guarded, app, task))
        wait(futures)
        return frozenset(skipped)

    def _run_here(self, apps: list[str], task: Callable[[str], None]) -> frozenset[str]:
        skipped: set[str] = set()
        for app in apps:
            if not self._claim(app):
                skipped.add(app)
                continue
            try:
                task(app)
            finally:
                self._done(app)
        return frozenset(skipped)

    def _guarded(self, app: str, task: Callable[[str], None]) -> None:
        try:
            task(app)
        except Exception as exc:  # noqa: BLE001 - one app's failure must not stop the others
            log.exception("app reconcile failed", app=app, error=f"{type(exc).__name__}: {exc}"[:300])
        finally:
            self._done(app)

    def _claim(self, app: str) -> bool:
        with self._lock:
            if app in self._busy:
                return False
            self._busy.add(app)
            return True

    def _done(self, app: str) -> None:
        with self._lock:
            self._busy.discard(app)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def pool_size(workers: int) -> int:
    """Connections an ApiClient keeps per host: one per worker, plus the watches, the lease loop and
    the Git intake that share the home client (urllib3 discards, and reopens, connections beyond it)."""
    return max(10, workers + 4)


def sized(api_client: client.ApiClient, connections: int) -> client.ApiClient:
    """`api_client` with a connection pool of at least `connections` per host (the client sizes it
    from the CPU count when it is built; the pool is rebuilt before any request is made)."""
    if (api_client.configuration.connection_pool_maxsize or 0) < connections:
        api_client.configuration.connection_pool_maxsize = connections
        api_client.rest_client = rest.RESTClientObject(api_client.configuration)
    return api_client

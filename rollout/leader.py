"""Leader election on a coordination.k8s.io Lease, using the kubernetes client's implementation.

Only the leader acts. `is_leader()` is also fenced by time: the lease is trusted only until the
renew deadline after the last successful renewal, so a leader cut off from the API server stops
writing at once instead of when the library's loop notices.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog
from kubernetes import client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from rollout.metrics import LEADER

log = structlog.get_logger("rollout.leader")


class _FencedElection(leaderelection.LeaderElection):
    def __init__(self, config: electionconfig.Config, renewed: Callable[[], None]):
        super().__init__(config)  # type: ignore[no-untyped-call]  # the client ships no hints
        self._renewed = renewed

    def try_acquire_or_renew(self) -> bool:
        ok = bool(super().try_acquire_or_renew())  # type: ignore[no-untyped-call]
        if ok and self.observed_record and self.observed_record.holder_identity == self.election_config.lock.identity:
            self._renewed()
        return ok


class LeaderElector:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        renew_seconds: int = 10,
        retry_seconds: int = 2,
    ):
        lock = LeaseLock(name, namespace, identity)
        lock.api_instance = client.CoordinationV1Api(api_client)  # the library defaults to the global client
        self.identity = identity
        self._renew_deadline = renew_seconds
        self._last_renewal = 0.0
        self._leading = threading.Event()
        self._lost = threading.Event()
        self._on_start: Callable[[], None] = lambda: None
        config = electionconfig.Config(lock, lease_seconds, renew_seconds, retry_seconds, self._started, self._stopped)
        self._election = _FencedElection(config, self._mark_renewed)

    def _mark_renewed(self) -> None:
        self._last_renewal = time.monotonic()

    def _started(self) -> None:
        log.info("became leader", identity=self.identity)
        self._leading.set()
        LEADER.set(1)
        self._on_start()

    def _stopped(self) -> None:
        log.warning("lost leadership; stopping all writes", identity=self.identity)
        self._leading.clear()
        self._lost.set()
        LEADER.set(0)

    def is_leader(self) -> bool:
        fresh = time.monotonic() - self._last_renewal < self._renew_deadline
        return self._leading.is_set() and fresh and not self._lost.is_set()

    @property
    def lost(self) -> threading.Event:
        return self._lost

    def run(self, on_start: Callable[[], None]) -> None:
        """Block campaigning; `on_start` runs in its own thread once the lease is ours."""
        self._on_start = on_start
        self._election.run()  # type: ignore[no-untyped-call]

"""Client-side limits on the rate of Kubernetes API requests (`--kube-api-qps`, `--kube-api-burst`).

One token bucket per cluster client, as client-go gives every rest.Config: a controller that
reconciles many apps at once must not turn a Git push into a burst of thousands of requests at a
region's apiserver (priority and fairness would then queue or reject the other tenants' calls, and
ours with them). A request takes one token; tokens refill at `qps` per second up to `burst`. When
none is left, the request waits for its turn instead of failing: the wait is the cost, counted in
`rollout_api_throttle_seconds_total` so that an operator sees when the limit, not the apiserver,
sets the pace (docs/install.md). Every request counts, a watch's start and relists included.

Written here rather than taken from a rate-limiting library: a reservation bucket is the few lines
below, and the libraries on PyPI bring storage backends and an async API this needs neither of.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rollout import metrics


class TokenBucket:
    """Reservations against a bucket of `burst` tokens refilled at `qps` per second. `reserve()`
    takes a token at once and says how long the caller must wait before using it, so concurrent
    callers are served in the order they reserved, none waits longer than its place in the queue,
    and the lock is never held while sleeping. `qps <= 0` means no limit."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if qps > 0 and burst < 1:
            raise ValueError(f"burst {burst}: at least 1 with a qps limit")
        self.qps = qps
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)  # a fresh client may send `burst` requests at once
        self._at = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token; the seconds to wait before the request may go (0.0: at once)."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.qps)
            self._at = now
            self._tokens -= 1.0  # below zero: reserved ahead of the refill, paid by waiting
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps


def throttled(
    api_client: Any, cluster: str, qps: float, burst: int, sleep: Callable[[float], None] = time.sleep
) -> Any:
    """`api_client` whose every HTTP request first waits for a token of its own bucket. Apply it
    after `workers.sized` (which may rebuild the REST client) and before `metrics.instrument`."""
    if qps <= 0:
        return api_client
    bucket = TokenBucket(qps, burst)
    rest = api_client.rest_client
    original = rest.request

    def limited(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        wait = bucket.reserve()
        if wait > 0:
            metrics.API_THROTTLE.labels(cluster).inc(wait)
            sleep(wait)
        return original(method, url, *args, **kwargs)

    rest.request = limited
    return api_client

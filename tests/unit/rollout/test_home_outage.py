"""The home cluster going away under the controller's pass: its apiserver refusing connections, or
answering 5xx while its etcd restarts. The Release's status write fails; the release is retried
with backoff (one log line per attempt), nothing is decided on it meanwhile, and once the home
cluster answers again the release goes on from the state it had, started exactly once.

The controller's pass and the reconciler run for real (see test_permanent_errors); the status
write is the one that fails, as the Release store's PATCH does when the home apiserver is down."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from structlog.testing import capture_logs

from config.repository import Repository
from rollout.failures import Retries
from rollout.release import ReleasePhase, ReleaseStatus
from rollout.store import StoredRelease
from strategies.errors import Backoff
from tests.unit.rollout.test_permanent_errors import GOOD, T0, Store, controller, release, repo, run_pass

__all__ = ["repo"]  # the module fixture, shared

OUTAGES: dict[str, Callable[[], Exception]] = {
    "home apiserver down": lambda: urllib3.exceptions.MaxRetryError(
        None,  # type: ignore[arg-type]
        "/apis/rollout.dev/v1alpha1/namespaces/rollout-system/releases",
        ConnectionRefusedError(111, "Connection refused"),
    ),
    "etcd restarted": lambda: ApiException(status=500, reason="etcdserver: leader changed"),
}


class FailingStore(Store):
    """The Release store while the home cluster is out: every status write raises."""

    def __init__(self, cache: object, outage: Callable[[], Exception]) -> None:
        super().__init__(cache)  # type: ignore[arg-type]
        self.outage: Callable[[], Exception] | None = outage
        self.attempts = 0

    def write_status(self, stored: StoredRelease, status: ReleaseStatus) -> StoredRelease:
        self.attempts += 1
        if self.outage is not None:
            raise self.outage()
        return super().write_status(stored, status)


@pytest.mark.parametrize("outage", sorted(OUTAGES))
def test_a_home_outage_is_retried_with_backoff_and_the_release_goes_on_once_it_is_back(
    repo: Repository, outage: str
) -> None:
    pending = release(GOOD, "2026-11-29T01:00:00Z", "1.3.0")
    ctl, cache, sink, _ = controller(repo, [pending])
    store = FailingStore(cache, OUTAGES[outage])
    ctl._reconciler.store = store  # type: ignore[union-attr,assignment]
    ctl._retries = Retries(Backoff(initial=2.0, factor=2.0, maximum=300.0, jitter=0.0))
    now = T0
    with capture_logs() as logs:
        for _ in range(20):  # 20 s of outage, a pass a second: tries at 0, 2, 6 and 14 s
            run_pass(ctl, cache, now)
            now += timedelta(seconds=1)
    lines = [e for e in logs if e.get("release") == pending.name and e["event"] == "reconcile failed; will retry"]
    assert store.attempts == len(lines) == 4, (store.attempts, lines)
    assert [e["retry_in"] for e in lines] == [2.0, 4.0, 8.0, 16.0]
    assert all("exc_info" not in e for e in logs)  # one line per attempt, no traceback
    assert cache.get(pending.name).status == pending.status  # nothing decided, nothing lost
    assert sink.notices == []

    store.outage = None  # the home cluster answers again
    now += timedelta(seconds=20)  # past the backoff
    run_pass(ctl, cache, now)
    resumed = cache.get(pending.name).status
    assert resumed.phase == ReleasePhase.PROGRESSING.value, resumed
    assert [a.action for a in resumed.audit].count("start") == 1, resumed.audit
    run_pass(ctl, cache, now + timedelta(seconds=1))
    assert [a.action for a in cache.get(pending.name).status.audit].count("start") == 1

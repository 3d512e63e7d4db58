"""Issue 12 on a real kube-apiserver (the lab's KWOK region eu-west): an app of two Deployments
(one, `db`, not named after the app and rolled by its own Recreate strategy) and a Job is released
twice, the Job is never patched (each release creates its own, so the second release succeeds where
a patch would be refused as immutable), and the region does not pass while `db` is not Ready: it
fails naming it once the progress deadline has passed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from kubernetes import client

from strategies.model import Phase, RegionRollout, StrategyStatus
from tests.unit.strategies.helpers import rollout, run_until_settled
from tests.unit.strategies.test_workloads import with_workloads

from .conftest import REGION

pytestmark = pytest.mark.integration

DEADLINE = timedelta(seconds=15)
RUN_TIMEOUT = 180.0


def make(ns: str, **kw: Any) -> RegionRollout:
    return with_workloads(rollout("catalog", REGION, namespace=ns, progress_deadline=DEADLINE), **kw)


def jobs(api: client.ApiClient, ns: str) -> dict[str, tuple[int, str, bool]]:
    """name -> (generation, resourceVersion, complete) of the namespace's Jobs."""
    out = {}
    for j in client.BatchV1Api(api).list_namespaced_job(ns).items:
        complete = any(c.type == "Complete" and c.status == "True" for c in (j.status.conditions or []))
        out[j.metadata.name] = (j.metadata.generation, j.metadata.resource_version, complete)
    return out


def test_two_deployments_and_a_job_released_twice_then_a_db_that_never_gets_ready(region, timings, stopwatch) -> None:
    factory, ns = region
    cluster = factory()
    second = make(ns)
    first = replace(second, release=second.previous, previous=None)
    v1_job = f"db-backup-{first.release.identity.number}"
    v2_job = f"db-backup-{second.release.identity.number}"

    status = run_until_settled(cluster, first, timeout=RUN_TIMEOUT, max_wait=0.5)
    assert status.phase is Phase.SUCCEEDED, status
    after_first = jobs(cluster.api_client, ns)
    assert after_first[v1_job][2], after_first  # the region passed only once the Job completed
    timings.record("workloads: first release (2 Deployments + Job)", status.phase.value, stopwatch())

    status = run_until_settled(cluster, second, timeout=RUN_TIMEOUT, max_wait=0.5)
    assert status.phase is Phase.SUCCEEDED, status
    after_second = jobs(cluster.api_client, ns)
    # never patched: release 2 created its own Job; release 1's, finished, was pruned once release 2
    # passed (strategies/prune.py), the same object until then
    assert v1_job not in after_second, after_second
    assert after_second[v2_job][2]
    db = client.AppsV1Api(cluster.api_client).read_namespaced_deployment("db", ns)
    assert db.spec.strategy.type == "Recreate" and db.status.ready_replicas == 1
    timings.record("workloads: second release, a new Job", status.phase.value, stopwatch())

    # a third release whose database never becomes Ready: the region must not pass
    third = make(ns, never_ready="db")
    seen: list[StrategyStatus] = []
    status = run_until_settled(
        cluster,
        third,
        StrategyStatus(),
        timeout=RUN_TIMEOUT,
        max_wait=0.5,
        on_pass=lambda step: seen.append(step.status),
        stop=lambda s: s.phase is not Phase.PROGRESSING,
    )
    assert all(s.phase is not Phase.SUCCEEDED for s in seen)
    # (restoring a Recreate Deployment that has reported ProgressDeadlineExceeded is a known gap: see
    # the report of issue 12; this test stops where the region fails)
    assert status.phase is Phase.ROLLING_BACK, status
    assert status.reason == "ProgressDeadlineExceeded" and "Deployment db" in status.message, status
    timings.record("workloads: db never Ready -> fails naming it", status.phase.value, stopwatch())

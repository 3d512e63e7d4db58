"""Pruning (issue 12 item 4) on a real kube-apiserver (the lab's KWOK region eu-west): release 1
renders a ConfigMap `extra` that release 2 no longer renders; once release 2 passed the region,
`extra` is gone from the cluster (read from the API server, not from the status), while an object
annotated rollout.dev/prune: "false" and another app's object carrying the same labels but the app
stay; a rollback of release 2 to release 1 (release 2 passed the region and pruned there, as when
it then fails in a later region and is rolled back everywhere it went) brings `extra` back and
deletes `added`, which only release 2 rendered, while release 2's `added-kept`, annotated
rollout.dev/prune: "false", stays. The listing goes through the API
server's discovery, so this also checks that every served kind is listed without error."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from kubernetes import client

from config.identity import LABEL_NAME
from config.render import Rendered
from strategies.manifests import stamped
from strategies.model import Commands, Phase
from strategies.prune import ANNOTATION_PRUNE
from tests.fixtures.traffic import wait_until
from tests.unit.strategies.helpers import rollout, run_until_settled

from .conftest import REGION

pytestmark = pytest.mark.integration

DEADLINE = timedelta(seconds=30)
RUN_TIMEOUT = 120.0


def with_configmaps(rendered: Rendered | None, ns: str, **annotations: dict[str, str]) -> Rendered:
    """`rendered` plus one ConfigMap per keyword (name -> annotations), labelled like its Deployment."""
    assert rendered is not None
    objs = copy.deepcopy(list(rendered.objects))
    labels = next(o for o in objs if o["kind"] == "Deployment")["metadata"]["labels"]
    for name, notes in annotations.items():
        meta = {"name": name, "namespace": ns, "labels": dict(labels), "annotations": dict(notes)}
        objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"release": "1"}})
    return replace(rendered, objects=tuple(objs))


def configmaps(api: client.ApiClient, ns: str) -> set[str]:
    return {c.metadata.name for c in client.CoreV1Api(api).list_namespaced_config_map(ns).items}


def test_an_object_dropped_from_git_is_pruned_after_success_and_a_rollback_restores_it_and_prunes_the_new_ones(
    region: Any, timings: Any, stopwatch: Callable[[], float]
) -> None:
    factory, ns = region
    cluster = factory()
    api = cluster.api_client
    second = rollout("catalog", REGION, namespace=ns, progress_deadline=DEADLINE)
    v1 = with_configmaps(second.previous, ns, extra={}, keep={ANNOTATION_PRUNE: "false"})
    first = replace(second, release=v1, previous=None)
    v2 = with_configmaps(second.release, ns, added={}, **{"added-kept": {ANNOTATION_PRUNE: "false"}})
    second = replace(second, release=v2, previous=v1)

    status = run_until_settled(cluster, first, timeout=RUN_TIMEOUT, max_wait=0.5)
    assert status.phase is Phase.SUCCEEDED, status
    assert {"extra", "keep"} <= configmaps(api, ns)
    # another app's object: the same labels (managed-by, release, region...) but the app's name
    theirs: dict[str, Any] = copy.deepcopy(next(o for o in v1.objects if o["metadata"]["name"] == "extra"))
    theirs["metadata"]["name"] = "theirs"
    theirs["metadata"]["labels"][LABEL_NAME] = "search"
    client.CoreV1Api(api).create_namespaced_config_map(ns, stamped(theirs))
    timings.record("prune: release 1 with ConfigMap extra", status.phase.value, stopwatch())

    status = run_until_settled(cluster, second, timeout=RUN_TIMEOUT, max_wait=0.5)
    assert status.phase is Phase.SUCCEEDED, status
    wait_until(lambda: "extra" not in configmaps(api, ns), 20.0, 0.2, "ConfigMap extra to be deleted")
    assert {"keep", "theirs", "added", "added-kept"} <= configmaps(api, ns)
    timings.record("prune: release 2 without it -> extra deleted", status.phase.value, stopwatch())

    status = run_until_settled(
        cluster, second, status, timeout=RUN_TIMEOUT, max_wait=0.5, commands=lambda s: Commands(abort="test")
    )
    assert status.phase is Phase.ROLLED_BACK, status
    assert "extra" in configmaps(api, ns)
    extra = client.CoreV1Api(api).read_namespaced_config_map("extra", ns)
    assert extra.metadata.labels["rollout.dev/release"] == v1.identity.number
    wait_until(lambda: "added" not in configmaps(api, ns), 20.0, 0.2, "ConfigMap added (release 2 only) deleted")
    assert {"keep", "theirs", "added-kept"} <= configmaps(api, ns)
    timings.record(
        "prune: rollback to release 1 -> extra restored, release 2's added deleted", status.phase.value, stopwatch()
    )

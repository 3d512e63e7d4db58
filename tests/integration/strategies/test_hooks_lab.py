"""Issue 12 item 3 on a real kube-apiserver (the lab's KWOK region eu-west, where Job pods
complete): the guestbook example's db-backup hook runs as its own Job before each release changes
anything (pre-upgrade), and before a rollback restores anything (pre-rollback), and is never
applied with the release's objects; the hooks of one phase run one after the other by weight, and a
hook-succeeded Job is deleted once complete."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from kubernetes import client

from config.identity import ReleaseIdentity
from config.render import Rendered
from strategies.driver import Driven, ReleaseAt, Renderer
from strategies.fake import FAULT_LABEL
from strategies.model import Phase, RegionRollout
from tests.fixtures.traffic import wait_until
from tests.unit.strategies.helpers import V1, V2, in_namespace, repo, run_until_settled

from .conftest import REGION

pytestmark = pytest.mark.integration

APP = "guestbook"
DEADLINE = timedelta(seconds=20)
RUN_TIMEOUT = 150.0
V3 = ReleaseIdentity("3" * 40, "1.2.0")


def moved(rendered: Rendered | None, ns: str) -> Rendered | None:
    rendered = in_namespace(rendered, ns)
    if rendered is None:
        return None
    hooks = copy.deepcopy(list(rendered.hooks))
    for h in hooks:
        h["metadata"]["namespace"] = ns
    return replace(rendered, hooks=tuple(hooks))


def release(ns: str, new: ReleaseIdentity, old: ReleaseIdentity | None) -> RegionRollout:
    renderer = Renderer(lambda commit: repo())
    at = ReleaseAt(new.commit, new.version)
    r = renderer.rollout(APP, REGION, at, ReleaseAt(old.commit, old.version) if old else None)
    r = replace(r, strategy=r.strategy.model_copy(update={"progress_deadline": DEADLINE}))
    return replace(r, namespace=ns, release=moved(r.release, ns), previous=moved(r.previous, ns))  # type: ignore[arg-type]


def web_never_ready(rendered: Rendered) -> Rendered:
    """The release with gb-web's pods never Ready (the lab's KWOK fault label); gb-mysql healthy."""
    objs = copy.deepcopy(list(rendered.objects))
    for o in objs:
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "gb-web":
            o["spec"]["template"]["metadata"]["labels"][FAULT_LABEL] = "never-ready"
    return replace(rendered, objects=tuple(objs))


def job_name(r: RegionRollout, phase: str) -> str:
    return f"db-backup-{r.release_number}-{phase}"


class Order:
    """Watches every pass: the generation of gb-web whenever the hook Job of `phase` was first seen
    Complete, and every generation gb-web had before that (the hook must come first)."""

    def __init__(self, job: str, phase: Phase) -> None:
        self.job, self.phase = job, phase
        self.before: set[int] = set()
        self.done_at: int | None = None

    def __call__(self, driven: Driven) -> None:
        snap = driven.snapshot
        if snap is None or self.done_at is not None:
            return
        web = snap.workload("Deployment", "gb-web")
        job = snap.workload("Job", self.job)
        generation = web.generation if web else 0
        if job is not None and job.problem is None:
            self.done_at = generation
        elif driven.status.phase is self.phase or self.phase is Phase.PROGRESSING:
            self.before.add(generation)


def jobs(api: client.ApiClient, ns: str) -> dict[str, Any]:
    return {j.metadata.name: j for j in client.BatchV1Api(api).list_namespaced_job(ns).items}


def complete(job: Any) -> bool:
    return any(c.type == "Complete" and c.status == "True" for c in (job.status.conditions or []))


def test_pre_upgrade_then_pre_rollback_hooks_run_first(region, timings, stopwatch) -> None:
    factory, ns = region
    cluster = factory()
    apps = client.AppsV1Api(cluster.api_client)

    # release 1 (a first release): the pre-upgrade Job completed before gb-web existed
    first = release(ns, V1, None)
    order = Order(job_name(first, "pre-upgrade"), Phase.PROGRESSING)
    status = run_until_settled(cluster, first, timeout=RUN_TIMEOUT, max_wait=0.5, on_pass=order)
    assert status.phase is Phase.SUCCEEDED, status
    assert order.done_at == 0 and order.before <= {0}, (order.done_at, order.before)  # no gb-web yet
    found = jobs(cluster.api_client, ns)
    assert complete(found[job_name(first, "pre-upgrade")])
    web = apps.read_namespaced_deployment("gb-web", ns)
    assert found[job_name(first, "pre-upgrade")].status.completion_time <= web.metadata.creation_timestamp
    timings.record("hooks: first release, pre-upgrade Job first", status.phase.value, stopwatch())

    # release 2: its own pre-upgrade Job, complete while gb-web was still at release 1's generation
    second = release(ns, V2, V1)
    generation = apps.read_namespaced_deployment("gb-web", ns).metadata.generation
    order = Order(job_name(second, "pre-upgrade"), Phase.PROGRESSING)
    status = run_until_settled(cluster, second, timeout=RUN_TIMEOUT, max_wait=0.5, on_pass=order)
    assert status.phase is Phase.SUCCEEDED, status
    assert order.done_at == generation and order.before <= {generation}, (generation, order.done_at, order.before)
    assert apps.read_namespaced_deployment("gb-web", ns).metadata.generation > generation
    assert apps.read_namespaced_deployment("gb-mysql", ns).spec.strategy.type == "Recreate"
    timings.record("hooks: second release, its own pre-upgrade Job", status.phase.value, stopwatch())

    # release 3: gb-web never becomes Ready; the region fails, and its pre-rollback backup Job runs
    # (and completes) before the restore changes gb-web back to release 2
    third = release(ns, V3, V2)
    third = replace(third, release=web_never_ready(third.release))
    order = Order(job_name(third, "pre-rollback"), Phase.ROLLING_BACK)
    failed_at: list[int] = []

    def watch(driven: Driven) -> None:
        if driven.status.phase is Phase.ROLLING_BACK and not failed_at and driven.snapshot is not None:
            web = driven.snapshot.workload("Deployment", "gb-web")
            failed_at.append(web.generation if web else 0)
        order(driven)

    status = run_until_settled(cluster, third, timeout=RUN_TIMEOUT, max_wait=0.5, on_pass=watch)
    assert status.phase is Phase.ROLLED_BACK, status
    assert status.reason == "ProgressDeadlineExceeded" and "gb-web" in status.message, status
    assert failed_at and order.done_at is not None
    assert order.done_at == failed_at[0], (failed_at, order.done_at)  # gb-web untouched until then
    found = jobs(cluster.api_client, ns)
    assert complete(found[job_name(third, "pre-rollback")])
    assert complete(found[job_name(third, "pre-upgrade")])
    # hooks are never applied as plain objects of a release
    phased = ("-pre-upgrade", "-pre-rollback")
    assert all(n.endswith(phased) for n in found), sorted(found)
    web = apps.read_namespaced_deployment("gb-web", ns)
    assert web.metadata.labels["app.kubernetes.io/version"] == V2.version
    timings.record("hooks: gb-web never Ready -> pre-rollback Job, then restore", status.phase.value, stopwatch())


def hook_variant(backup: dict[str, Any], name: str, **annotations: str) -> dict[str, Any]:
    """A pre-upgrade hook Job like the guestbook's backup, named `name`, with `annotations`."""
    out = copy.deepcopy(backup)
    out["metadata"]["name"] = name
    out["metadata"]["annotations"] = {"rollout.dev/hook": "pre-upgrade", **annotations}
    return out


def test_weighted_hooks_run_in_order_and_a_hook_succeeded_job_is_deleted(region, timings, stopwatch) -> None:
    """Issue 12: three pre-upgrade hooks of one release, weights 0 (the backup, policy
    hook-succeeded), 5 and 10 (Helm's and our weight annotations): each Job started once the one
    before it completed (read from the Jobs' startTime and completionTime), the backup Job is gone
    afterwards, the other two stay (before-hook-creation, the default, deletes only an earlier
    release's Job of the same hook)."""
    factory, ns = region
    cluster = factory()
    first = release(ns, V1, None)
    [backup] = first.release.hooks
    backup = copy.deepcopy(backup)
    backup["metadata"]["annotations"]["helm.sh/hook-delete-policy"] = "hook-succeeded"
    hooks = (
        hook_variant(backup, "warm", **{"rollout.dev/hook-weight": "10"}),
        backup,
        hook_variant(backup, "schema", **{"helm.sh/hook-weight": "5"}),
    )
    first = replace(first, release=replace(first.release, hooks=hooks))

    seen: set[str] = set()

    def watch(driven: Driven) -> None:  # every hook Job the passes saw, even one deleted later
        if driven.snapshot is not None:
            seen.update(n for n in ("db-backup", "schema", "warm") if driven.snapshot.workload("Job", job(n)))

    def job(name: str) -> str:
        return f"{name}-{first.release_number}-pre-upgrade"

    status = run_until_settled(cluster, first, timeout=RUN_TIMEOUT, max_wait=0.5, on_pass=watch)
    assert status.phase is Phase.SUCCEEDED, status
    found = jobs(cluster.api_client, ns)
    schema, warm = found[job("schema")], found[job("warm")]
    assert complete(schema) and complete(warm)
    assert schema.status.completion_time <= warm.status.start_time, (schema.status, warm.status)
    web = client.AppsV1Api(cluster.api_client).read_namespaced_deployment("gb-web", ns)
    assert warm.status.completion_time <= web.metadata.creation_timestamp  # all before the strategy
    assert "db-backup" in seen  # it ran (it completed: the release went on) ...
    wait_until(lambda: job("db-backup") not in jobs(cluster.api_client, ns), 20.0, 0.2, "db-backup Job deleted")
    timings.record("hooks: weights 0, 5, 10 in order; hook-succeeded Job deleted", status.phase.value, stopwatch())

"""Issue 12 (1, 2): every workload of a release gates the region by its kind's rules; Jobs are
created once per release and never patched; an immutable-field answer is permanent and says how
to fix it; the traffic workload of canary/blue-green is resolved by one rule (config.policies)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from config.policies import traffic_workload, workload_problems
from config.schema import Plan
from strategies import decide
from strategies.errors import PermanentError, classify
from strategies.fake import FakeCluster
from strategies.manifests import one_shot
from strategies.model import Phase, StrategyStatus, WorkloadState
from strategies.observe import snapshot, workload_state
from strategies.rolling import desired

from .helpers import T0, repo, rollout, run_until_settled

# --- each kind's health rules ------------------------------------------------------------------


def obj(kind: str, spec: dict[str, Any], status: dict[str, Any], generation: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "x", "generation": generation},
        "spec": spec,
        "status": status,
    }


@pytest.mark.parametrize(
    ("kind", "spec", "status", "problem"),
    [
        (
            "Deployment",
            {"replicas": 2},
            {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2},
            None,
        ),
        (
            "Deployment",
            {"replicas": 2},
            {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2},
            "generation 2 not observed yet",
        ),
        (
            "Deployment",
            {"replicas": 2},
            {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2},
            "3 in total",
        ),  # old pod left
        (
            "Deployment",
            {"replicas": 1},
            {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0, "availableReplicas": 0},
            "0/1 available",
        ),
        (
            "StatefulSet",
            {"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}},
            {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3},
            None,
        ),  # only the pods at or above the partition are updated
        (
            "StatefulSet",
            {"replicas": 3},
            {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 3},
            "1/3 updated above partition 0",
        ),
        (
            "StatefulSet",
            {"replicas": 1},
            {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0},
            "0/1 ready",
        ),
        (
            "StatefulSet",
            {"replicas": 1},
            {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1},
            None,
        ),  # availableReplicas not reported
        (
            "DaemonSet",
            {},
            {
                "observedGeneration": 2,
                "desiredNumberScheduled": 3,
                "updatedNumberScheduled": 3,
                "numberReady": 3,
                "numberAvailable": 3,
            },
            None,
        ),
        (
            "DaemonSet",
            {},
            {
                "observedGeneration": 2,
                "desiredNumberScheduled": 3,
                "updatedNumberScheduled": 3,
                "numberReady": 2,
                "numberAvailable": 2,
                "numberUnavailable": 1,
            },
            "1 unavailable",
        ),
        (
            "DaemonSet",
            {},
            {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3},
            "not observed",
        ),
        ("Job", {}, {"conditions": [{"type": "Complete", "status": "True"}]}, None),
        ("Job", {}, {"active": 1}, "not complete yet"),
        (
            "Job",
            {},
            {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]},
            "failed: BackoffLimitExceeded",
        ),
    ],
)
def test_each_kind_is_healthy_by_its_own_rules(
    kind: str, spec: dict[str, Any], status: dict[str, Any], problem: str | None
) -> None:
    state = workload_state(obj(kind, spec, status))
    if problem is None:
        assert state.problem is None
    else:
        assert state.problem is not None and problem in state.problem


def test_a_failed_job_and_a_deployment_past_its_deadline_report_failure() -> None:
    job = WorkloadState(
        "Job",
        "db-backup",
        conditions=(__import__("strategies.model").model.Condition("Failed", "True", "BackoffLimitExceeded"),),
    )
    assert job.failed and "BackoffLimitExceeded" in job.failed
    dep = workload_state(
        obj(
            "Deployment",
            {"replicas": 1},
            {
                "observedGeneration": 2,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
            },
        )
    )
    assert dep.failed == "ProgressDeadlineExceeded"


# --- several workloads in a rolling release ---------------------------------------------------------


def with_workloads(r, never_ready: str | None = None):  # type: ignore[no-untyped-def]
    """catalog's release plus a Recreate database Deployment `db` (never Ready when asked) and a Job."""

    def add(rendered):  # type: ignore[no-untyped-def]
        objs = copy.deepcopy(list(rendered.objects))
        dep = next(o for o in objs if o["kind"] == "Deployment")
        db = copy.deepcopy(dep)
        db["metadata"]["name"] = "db"
        db["spec"]["replicas"] = 1
        db["spec"]["strategy"] = {"type": "Recreate"}
        for labels in (db["spec"]["selector"]["matchLabels"], db["spec"]["template"]["metadata"]["labels"]):
            labels["app.kubernetes.io/component"] = "db"  # its own pods, not the web tier's
        if never_ready == "db":
            db["spec"]["template"]["metadata"]["labels"]["lab.rollout.dev/fault"] = "never-ready"
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "db-backup",
                "namespace": dep["metadata"].get("namespace"),
                "labels": dict(dep["metadata"]["labels"]),
            },
            "spec": {
                "template": {
                    "metadata": {"labels": dict(dep["spec"]["template"]["metadata"]["labels"])},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "b", "image": "x"}]},
                }
            },
        }
        objs += [db, job]
        return replace(rendered, objects=tuple(one_shot(objs, rendered.identity.number)))

    return replace(r, release=add(r.release), previous=add(r.previous) if r.previous else None)


def test_rolling_applies_every_workload_and_honours_a_recreate_strategy() -> None:
    r = with_workloads(rollout("catalog"))
    want = {(o["kind"], o["metadata"]["name"]): o for o in desired(r, r.release)}
    number = r.release.identity.number
    assert set(want) >= {("Deployment", "catalog"), ("Deployment", "db"), ("Job", f"db-backup-{number}")}
    assert want[("Deployment", "db")]["spec"]["strategy"] == {"type": "Recreate"}
    assert want[("Deployment", "catalog")]["spec"]["strategy"]["type"] == "RollingUpdate"
    assert want[("Job", f"db-backup-{number}")]["spec"]["ttlSecondsAfterFinished"] == 3600


def test_the_region_does_not_pass_while_a_second_workload_is_not_ready_and_fails_naming_it() -> None:
    r = with_workloads(rollout("catalog"), never_ready="db")
    cluster = FakeCluster()
    step = decide(r, StrategyStatus(), snapshot([]), T0)
    cluster.execute(r, step.actions)
    status = step.status
    for minutes in range(0, 20):
        snap = cluster.observe(r)
        for o in cluster.objects.values():  # the fake plays no Job controller: the Job completes
            if o["kind"] == "Job":
                o["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        snap = cluster.observe(r)
        step = decide(r, status, snap, T0 + timedelta(minutes=minutes))
        cluster.execute(r, step.actions)
        status = step.status
        assert status.phase is not Phase.SUCCEEDED
        if status.phase is not Phase.PROGRESSING:
            break
    assert status.phase is Phase.ROLLING_BACK and status.reason == "ProgressDeadlineExceeded"
    assert "Deployment db made no progress" in status.message and "0/1 available" in status.message


def test_every_workload_healthy_passes_and_a_second_release_never_patches_the_job() -> None:
    first = with_workloads(rollout("catalog", first=True))
    cluster = FakeCluster()

    def complete_jobs(_: Any) -> None:
        for o in cluster.objects.values():
            if o["kind"] == "Job":
                o["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}

    assert run_until_settled(cluster, first, on_pass=complete_jobs).phase is Phase.SUCCEEDED
    second = with_workloads(rollout("catalog"))
    job_writes = lambda: [ref.name for op, ref in cluster.writes if ref.kind == "Job"]  # noqa: E731
    before = job_writes()
    assert run_until_settled(cluster, second, on_pass=complete_jobs).phase is Phase.SUCCEEDED
    new = [n for n in job_writes() if n not in before]
    assert new == [f"db-backup-{second.release.identity.number}"]  # a new Job, the old one untouched


# --- Jobs and immutable fields ------------------------------------------------------------------------


def test_one_shot_names_each_release_job_and_keeps_a_set_ttl() -> None:
    job = {"kind": "Job", "metadata": {"name": "x" * 60}, "spec": {"ttlSecondsAfterFinished": 5}}
    out = one_shot([job, {"kind": "ConfigMap", "metadata": {"name": "c"}}], "abcdef012345")
    assert out[0]["metadata"]["name"].endswith("-abcdef012345") and len(out[0]["metadata"]["name"]) <= 63
    assert out[0]["spec"]["ttlSecondsAfterFinished"] == 5 and out[1]["metadata"]["name"] == "c"
    assert one_shot(out, "abcdef012345")[0]["metadata"]["name"] == out[0]["metadata"]["name"]  # idempotent


def test_an_immutable_field_answer_is_permanent_and_names_the_field_and_the_fix() -> None:
    error = classify(
        422,
        "Invalid",
        'Job.batch "db-backup" is invalid: spec.template: Invalid value: ... field is immutable',
        causes=({"field": "spec.template", "message": "field is immutable"},),
    )
    assert isinstance(error, PermanentError) and error.reason == "ImmutableField"
    assert "Immutable field spec.template" in str(error) and "Fix:" in str(error)


# --- the traffic workload (one rule for validate and the controller) --------------------------------


def plan(kind: str, **strategy: Any) -> Plan:
    base = repo().apps["checkout" if kind == "canary" else "search"].plan
    return base.model_copy(update={"strategy": base.strategy.model_copy(update=strategy)})


def deps(*names: str) -> list[dict[str, Any]]:
    return [{"kind": "Deployment", "metadata": {"name": n}} for n in names] + [
        {"kind": "Service", "metadata": {"name": "checkout"}, "spec": {"ports": [{"port": 80}]}}
    ]


def test_the_traffic_workload_defaults_to_the_only_deployment_or_the_one_named_after_the_app() -> None:
    p = plan("canary")
    assert traffic_workload("checkout", p, deps("web")) == "web"
    assert traffic_workload("checkout", p, deps("checkout", "db")) == "checkout"
    assert traffic_workload("checkout", p, deps("web", "db")) is None
    problems = workload_problems("checkout", p, deps("web", "db"))
    assert problems and problems[0][0] == "strategy.trafficWorkload"
    assert "set strategy.trafficWorkload" in problems[0][2]
    named = plan("canary", traffic_workload="web")
    assert traffic_workload("checkout", named, deps("web", "db")) == "web"
    assert workload_problems("checkout", named, deps("web", "db")) == []
    missing = workload_problems("checkout", plan("canary", traffic_workload="api"), deps("web", "db"))
    assert "names Deployment 'api', which the manifests do not render" in missing[0][1]
    assert workload_problems("catalog", repo().apps["catalog"].plan, deps("web", "db")) == []  # rolling


def test_a_canary_whose_traffic_workload_is_not_named_after_the_app() -> None:
    r = rollout("checkout")

    def rename(rendered):  # type: ignore[no-untyped-def]
        objs = copy.deepcopy(list(rendered.objects))
        for o in objs:
            if o["kind"] == "Deployment":
                o["metadata"]["name"] = "web"
        return replace(rendered, objects=tuple(objs))

    r = replace(
        r,
        release=rename(r.release),
        previous=rename(r.previous),
        canary_release=rename(r.canary_release),
        traffic_workload="web",
    )
    status = run_until_settled(FakeCluster(), r, stop=lambda s: s.step >= 1)
    assert status.phase is Phase.PROGRESSING


# --- a deadline reported before the step began is the failed step's, not this one's ----------------


@pytest.mark.parametrize(
    ("reported", "fails"),
    [
        (T0 - timedelta(minutes=3), False),  # kept from the release that failed: the rollback waits
        (T0 + timedelta(seconds=5), True),  # reported during this step: it fails at once
        (None, True),  # no time given: trust the condition
    ],
)
def test_a_progress_deadline_reported_before_the_step_began_does_not_fail_it(reported: Any, fails: bool) -> None:
    from config.times import format_time
    from strategies.engine import Ctx, await_workloads
    from strategies.manifests import ANNOTATION_APPLIED

    condition: dict[str, Any] = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    if reported is not None:
        condition["lastUpdateTime"] = format_time(reported)
    want = obj("Deployment", {"replicas": 1, "strategy": {"type": "Recreate"}}, {})
    want["metadata"]["annotations"] = {ANNOTATION_APPLIED: "h1"}
    seen = copy.deepcopy(want)
    seen["status"] = {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 0, "conditions": [condition]}
    status = StrategyStatus(phase=Phase.ROLLING_BACK, step_started_at=T0)
    ctx = Ctx(rollout("catalog"), status, snapshot([seen]), T0 + timedelta(seconds=10))
    result = await_workloads(ctx, [want], timedelta(minutes=10), "restore")
    assert result is not None
    assert (result.kind == "fail") is fails, result

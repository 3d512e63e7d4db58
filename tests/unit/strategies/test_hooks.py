"""Issue 12 item 3, issue 13 item 5: hook Jobs run at a release's phases in each region
(pre-upgrade, post-promote, pre-rollback), each created once, waited for, failed by a Failed
condition or a timeout with the Job's name, under the plan's failure policy; hooks are never part
of the strategy's ordinary apply; Helm's hook annotation maps onto the same phases."""

from __future__ import annotations

import copy
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from config.errors import InvalidRepository
from config.hooks import (
    ANNOTATION_HOOK,
    ANNOTATION_HOOK_DELETE,
    ANNOTATION_HOOK_TIMEOUT,
    ANNOTATION_HOOK_WEIGHT,
    BEFORE_HOOK_CREATION,
    HELM_HOOK,
    HELM_HOOK_DELETE,
    HELM_HOOK_WEIGHT,
    HOOK_FAILED,
    HOOK_SUCCEEDED,
    hook_of,
    hook_problems,
    is_hook,
)
from config.loader import load_repository
from config.schema import HookPolicy
from strategies import decide, hooks
from strategies.manifests import ref_of
from strategies.model import Apply, Delete, Event, Phase, RegionRollout, Snapshot, StrategyStatus
from strategies.observe import snapshot
from strategies.rolling import desired

from .helpers import EXAMPLE, T0, rollout

BACKUP = "db-backup"


def job(name: str = BACKUP, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "catalog", "labels": {"app.kubernetes.io/name": "catalog"}}
        | ({"annotations": dict(annotations)} if annotations else {}),
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x@sha256:1"}]}}
        },
    }


def with_hooks(r: RegionRollout, *objs: dict[str, Any], **policy: Any) -> RegionRollout:
    release = replace(r.release, hooks=tuple(objs))
    return replace(r, release=release, hook_policy=HookPolicy.model_validate(policy))


def settled(objs: list[dict[str, Any]], jobs: dict[str, str] | None = None) -> Snapshot:
    """A cluster holding `objs` as applied, every workload healthy, and the named Jobs with the
    given state (`running`, `complete`, `failed`)."""
    raw = []
    for obj in objs:
        o = copy.deepcopy(obj)
        o["metadata"]["generation"] = 1
        n = int((o.get("spec") or {}).get("replicas", 1))
        if o["kind"] == "Deployment":
            o["status"] = {
                "observedGeneration": 1,
                "replicas": n,
                "updatedReplicas": n,
                "readyReplicas": n,
                "availableReplicas": n,
            }
        if o["kind"] == "Job":
            state = (jobs or {}).get(o["metadata"]["name"], "complete")
            cond = {
                "complete": [{"type": "Complete", "status": "True"}],
                "failed": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "boom"}],
                "running": [],
            }[state]
            o["status"] = {"conditions": cond}
        raw.append(o)
    return snapshot(raw)


def hook_jobs(r: RegionRollout, phase: str) -> list[dict[str, Any]]:
    return [j.obj for j in hooks.jobs(r.release, phase, r.hook_policy.timeout)]


def applied(decision: Any) -> list[str]:
    return [o["metadata"]["name"] for a in decision.actions if isinstance(a, Apply) for o in a.objects]


def warnings(decision: Any) -> list[Event]:
    return [a for a in decision.actions if isinstance(a, Event) and a.type == "Warning"]


# --- annotations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "phases"),
    [
        ({ANNOTATION_HOOK: "pre-upgrade,pre-rollback"}, ("pre-upgrade", "pre-rollback")),
        ({ANNOTATION_HOOK: " post-promote "}, ("post-promote",)),
        ({HELM_HOOK: "pre-install,pre-upgrade"}, ("pre-upgrade",)),
        ({HELM_HOOK: "post-install,post-upgrade"}, ("post-promote",)),
        ({HELM_HOOK: "pre-upgrade,pre-rollback"}, ("pre-upgrade", "pre-rollback")),
        ({HELM_HOOK: "test"}, ()),  # a hook of no phase: left out, never applied
        ({HELM_HOOK: "post-delete,post-rollback"}, ()),
        ({ANNOTATION_HOOK: "post-promote", HELM_HOOK: "pre-upgrade"}, ("post-promote",)),  # ours wins
    ],
)
def test_annotations_map_onto_phases(annotations: dict[str, str], phases: tuple[str, ...]) -> None:
    obj = job(**annotations)
    spec = hook_of(obj)
    assert is_hook(obj) and spec is not None
    assert spec.phases == phases
    assert hook_problems([obj]) == []


def test_a_plain_job_is_no_hook() -> None:
    assert not is_hook(job()) and hook_of(job()) is None


@pytest.mark.parametrize(
    ("obj", "words"),
    [
        (job(**{ANNOTATION_HOOK: "pre-upgrade,post-upgrade"}), ["unknown hook phase 'post-upgrade'", "pre-upgrade"]),
        (job(**{HELM_HOOK: "pre-instal"}), ["unknown hook phase 'pre-instal'", "helm.sh/hook"]),
        (job(**{ANNOTATION_HOOK: ""}), ["(empty)"]),
        (
            job(**{ANNOTATION_HOOK: "pre-upgrade", ANNOTATION_HOOK_TIMEOUT: "5"}),
            ["bad hook timeout", "is not a duration"],
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c", "annotations": {HELM_HOOK: "pre-install"}},
            },
            ["a hook must be a Job, not a ConfigMap", "ConfigMap/c"],
        ),
    ],
)
def test_refused_hooks_say_what_and_how(obj: dict[str, Any], words: list[str]) -> None:
    problems = hook_problems([obj])
    assert problems, obj
    text = " ".join(" ".join(p) for p in problems)
    assert all(w in text for w in words), text
    assert all(fix for _, _, fix in problems)


def test_hook_timeout_annotation() -> None:
    spec = hook_of(job(**{ANNOTATION_HOOK: "pre-upgrade", ANNOTATION_HOOK_TIMEOUT: "90s"}))
    assert spec is not None and spec.timeout == timedelta(seconds=90)


# --- hooks never join the ordinary apply -------------------------------------------------------


def test_split_moves_hooks_out_of_the_applied_objects() -> None:
    r = rollout("catalog")
    hook = job(**{ANNOTATION_HOOK: "pre-upgrade"})
    plain = job("migrate")
    mixed = replace(r.release, objects=(*r.release.objects, hook, plain))
    out = hooks.split(mixed)
    assert out.hooks == (hook,)
    names = [o["metadata"]["name"] for o in desired(r, out)]
    assert "migrate" in names and BACKUP not in names
    assert hooks.split(r.release) is r.release  # no hooks: unchanged


def test_job_names_carry_release_and_phase() -> None:
    r = with_hooks(rollout("catalog"), job(**{ANNOTATION_HOOK: "pre-upgrade,pre-rollback"}))
    n = r.release_number
    assert [o["metadata"]["name"] for o in hook_jobs(r, "pre-upgrade")] == [f"{BACKUP}-{n}-pre-upgrade"]
    assert [o["metadata"]["name"] for o in hook_jobs(r, "pre-rollback")] == [f"{BACKUP}-{n}-pre-rollback"]
    assert hook_jobs(r, "post-promote") == []
    long = hooks.job_name("x" * 80, n, "pre-rollback")
    assert len(long) <= 63 and long.endswith(f"-{n}-pre-rollback")
    spec = hook_jobs(r, "pre-upgrade")[0]["spec"]
    assert spec["activeDeadlineSeconds"] == 300 and spec["ttlSecondsAfterFinished"] == 3600


# --- pre-upgrade --------------------------------------------------------------------------------


def test_pre_upgrade_runs_before_the_first_write_and_once() -> None:
    r = with_hooks(rollout("catalog"), job(**{ANNOTATION_HOOK: "pre-upgrade"}))
    [hook] = hook_jobs(r, "pre-upgrade")
    live = desired(r, r.previous) if r.previous else []
    # 1: only the hook Job is created; nothing of the release is written
    d = decide(r, StrategyStatus(), settled(live), T0)
    assert applied(d) == [hook["metadata"]["name"]]
    assert d.status.step_name == "pre-upgrade hook"
    # 2: running -> wait, no write (created once)
    d = decide(r, d.status, settled([*live, hook], {hook["metadata"]["name"]: "running"}), T0 + timedelta(seconds=5))
    assert d.writes == () and d.status.phase is Phase.PROGRESSING and d.status.step == 0
    # 3: complete -> the strategy's first write
    d = decide(r, d.status, settled([*live, hook]), T0 + timedelta(seconds=10))
    assert d.status.step == 1 and d.status.step_name == "apply"
    assert hook["metadata"]["name"] not in applied(d)
    assert any(o["kind"] == "Deployment" for a in d.actions if isinstance(a, Apply) for o in a.objects)


def test_pre_upgrade_failure_fails_the_region_naming_the_job() -> None:
    r = with_hooks(rollout("catalog"), job(**{ANNOTATION_HOOK: "pre-upgrade"}))
    [hook] = hook_jobs(r, "pre-upgrade")
    name = hook["metadata"]["name"]
    live = desired(r, r.previous) if r.previous else []
    status = decide(r, StrategyStatus(), settled(live), T0).status
    d = decide(r, status, settled([*live, hook], {name: "failed"}), T0 + timedelta(seconds=5))
    assert d.status.phase is Phase.ROLLING_BACK and d.status.reason == "HookFailed"
    assert name in d.status.message and "BackoffLimitExceeded" in d.status.message


def test_pre_upgrade_timeout_fails_with_the_job_name() -> None:
    r = with_hooks(
        rollout("catalog", first=True), job(**{ANNOTATION_HOOK: "pre-upgrade", ANNOTATION_HOOK_TIMEOUT: "1m"})
    )
    [hook] = hook_jobs(r, "pre-upgrade")
    name = hook["metadata"]["name"]
    status = decide(r, StrategyStatus(), settled([]), T0).status
    running = settled([hook], {name: "running"})
    assert decide(r, status, running, T0 + timedelta(seconds=59)).status.phase is Phase.PROGRESSING
    d = decide(r, status, running, T0 + timedelta(seconds=61))
    assert d.status.phase is Phase.FAILED  # a first release: nothing to roll back to
    assert d.status.reason == "HookTimeout" and name in d.status.message and "60s" in d.status.message


# --- post-promote -------------------------------------------------------------------------------


def _promoted(r: RegionRollout) -> StrategyStatus:
    """The status after the strategy's last step (the post-promote hook's turn)."""
    release = desired(r, r.release)
    status = decide(r, StrategyStatus(), settled(release), T0).status
    assert status.step_name == "post-promote hook", status
    return status


def test_post_promote_runs_after_the_strategy_and_succeeds() -> None:
    r = with_hooks(rollout("catalog"), job(**{ANNOTATION_HOOK: "post-promote"}))
    [hook] = hook_jobs(r, "post-promote")
    status = _promoted(r)
    release = desired(r, r.release)
    d = decide(r, status, settled(release), T0)
    assert applied(d) == [hook["metadata"]["name"]]
    d = decide(r, d.status, settled([*release, hook]), T0 + timedelta(seconds=3))
    assert d.status.phase in (Phase.PROGRESSING, Phase.SUCCEEDED) and d.status.step > status.step
    assert "StepCompleted" in [a.reason for a in d.actions if isinstance(a, Event)]


@pytest.mark.parametrize(("policy", "phase"), [("fail", Phase.ROLLING_BACK), ("continue", Phase.PROGRESSING)])
def test_post_promote_failure_follows_the_plan(policy: str, phase: Phase) -> None:
    r = with_hooks(rollout("catalog"), job(**{ANNOTATION_HOOK: "post-promote"}), postPromoteFailure=policy)
    [hook] = hook_jobs(r, "post-promote")
    status = _promoted(r)
    d = decide(r, status, settled([*desired(r, r.release), hook], {hook["metadata"]["name"]: "failed"}), T0)
    assert d.status.phase is phase
    assert hook["metadata"]["name"] in d.status.message
    if policy == "continue":  # reported, and the release goes on past the hook
        assert [w.reason for w in warnings(d)] == ["HookFailed"] and d.status.step > status.step


# --- pre-rollback -------------------------------------------------------------------------------


def _rolling_back(r: RegionRollout) -> StrategyStatus:
    return StrategyStatus().to(Phase.PROGRESSING, T0).to(Phase.ROLLING_BACK, T0, reason="X", message="it broke")


def test_pre_rollback_runs_before_the_restore() -> None:
    r = with_hooks(rollout("catalog"), job(**{ANNOTATION_HOOK: "pre-rollback"}))
    [hook] = hook_jobs(r, "pre-rollback")
    name = hook["metadata"]["name"]
    release = desired(r, r.release)
    d = decide(r, _rolling_back(r), settled(release), T0)
    assert applied(d) == [name] and d.status.step_name == "pre-rollback hook"
    d = decide(r, d.status, settled([*release, hook], {name: "running"}), T0 + timedelta(seconds=2))
    assert d.writes == ()
    d = decide(r, d.status, settled([*release, hook]), T0 + timedelta(seconds=4))
    assert d.status.step_name == "restore" and d.writes  # the restore starts
    assert name not in applied(d)


def test_a_failed_pre_rollback_hook_is_reported_and_the_rollback_goes_on_by_default() -> None:
    r = with_hooks(rollout("catalog"), job(**{ANNOTATION_HOOK: "pre-rollback"}))
    [hook] = hook_jobs(r, "pre-rollback")
    name = hook["metadata"]["name"]
    d = decide(r, _rolling_back(r), settled([*desired(r, r.release), hook], {name: "failed"}), T0)
    assert d.status.phase is Phase.ROLLING_BACK and d.status.step == 1  # on to the restore
    assert name in d.status.message and "it broke" in d.status.message and "rollback went on" in d.status.message
    [warning] = warnings(d)
    assert warning.reason == "HookFailed" and name in warning.message


def test_a_blocking_pre_rollback_hook_ends_the_region_failed() -> None:
    r = with_hooks(rollout("catalog"), job(**{ANNOTATION_HOOK: "pre-rollback"}), preRollbackFailure="block")
    [hook] = hook_jobs(r, "pre-rollback")
    name = hook["metadata"]["name"]
    d = decide(r, _rolling_back(r), settled([*desired(r, r.release), hook], {name: "failed"}), T0)
    assert d.status.phase is Phase.FAILED and d.status.reason == "HookFailed" and name in d.status.message
    assert d.writes == ()  # nothing restored, traffic left as the rollback found it (drained)


def test_pre_rollback_of_the_release_rolled_back_not_the_pre_upgrade_job() -> None:
    r = with_hooks(rollout("catalog"), job(**{ANNOTATION_HOOK: "pre-upgrade,pre-rollback"}))
    [pre] = hook_jobs(r, "pre-upgrade")
    [back] = hook_jobs(r, "pre-rollback")
    # the pre-upgrade Job of the same release exists and completed: the rollback still runs its own
    d = decide(r, _rolling_back(r), settled([*desired(r, r.release), pre]), T0)
    assert applied(d) == [back["metadata"]["name"]]
    assert ref_of(pre) != ref_of(back)


def test_no_hooks_no_extra_steps() -> None:
    r = rollout("catalog")
    forward, rollback = hooks.around(r, [], [])
    assert forward == [] and rollback == []
    first = with_hooks(rollout("catalog", first=True), job(**{ANNOTATION_HOOK: "pre-rollback"}))
    assert hooks.around(first, [], None) == ([], None)  # nothing to roll back to: no pre-rollback step


# --- weights and delete policies ---------------------------------------------------------------


def test_weights_and_delete_policies_are_read_from_either_annotation() -> None:
    plain = hook_of(job(**{ANNOTATION_HOOK: "pre-upgrade"}))
    assert plain is not None and plain.weight == 0 and plain.delete_policy == {BEFORE_HOOK_CREATION}
    helm = hook_of(job(**{HELM_HOOK: "pre-upgrade", HELM_HOOK_WEIGHT: "-5", HELM_HOOK_DELETE: "hook-succeeded"}))
    assert helm is not None and helm.weight == -5 and helm.delete_policy == {HOOK_SUCCEEDED}
    both = job(**{ANNOTATION_HOOK: "pre-upgrade", ANNOTATION_HOOK_WEIGHT: "3", HELM_HOOK_WEIGHT: "9"})
    both["metadata"]["annotations"][ANNOTATION_HOOK_DELETE] = "before-hook-creation, hook-failed"
    ours = hook_of(both)
    assert ours is not None and ours.weight == 3 and ours.delete_policy == {BEFORE_HOOK_CREATION, HOOK_FAILED}
    assert hook_problems([both]) == []


@pytest.mark.parametrize(
    ("annotations", "words"),
    [
        ({HELM_HOOK_WEIGHT: "first"}, ["helm.sh/hook-weight", "bad hook weight 'first'", "integer"]),
        ({ANNOTATION_HOOK_WEIGHT: "1.5"}, ["rollout.dev/hook-weight", "bad hook weight '1.5'"]),
        ({HELM_HOOK_DELETE: "hook-succeeded,always"}, ["helm.sh/hook-delete-policy", "'always'", "hook-failed"]),
        ({ANNOTATION_HOOK_DELETE: ""}, ["rollout.dev/hook-delete-policy", "(empty)"]),
    ],
)
def test_bad_weights_and_delete_policies_are_refused(annotations: dict[str, str], words: list[str]) -> None:
    problems = hook_problems([job(**{ANNOTATION_HOOK: "pre-upgrade", **annotations})])
    text = " ".join(" ".join(p) for p in problems)
    assert len(problems) == 1 and all(w in text for w in words), text


def weighted(name: str, weight: str | None = None, **annotations: str) -> dict[str, Any]:
    notes = {ANNOTATION_HOOK: "pre-upgrade", **annotations}
    if weight is not None:
        notes[HELM_HOOK_WEIGHT] = weight
    return job(name, **notes)


def test_a_phases_hooks_run_lower_weight_first_ties_by_name() -> None:
    r = with_hooks(
        rollout("catalog"), weighted("zz", "5"), weighted("aa", "5"), weighted("mid"), weighted("first", "-10")
    )
    n = r.release_number
    assert [o["metadata"]["name"] for o in hook_jobs(r, "pre-upgrade")] == [
        f"{x}-{n}-pre-upgrade" for x in ("first", "mid", "aa", "zz")
    ]


def test_each_hook_starts_once_the_one_before_it_completed() -> None:
    r = with_hooks(rollout("catalog"), weighted("later", "2"), weighted("sooner", "1"))
    first, second = hook_jobs(r, "pre-upgrade")
    a, b = first["metadata"]["name"], second["metadata"]["name"]
    live = desired(r, r.previous) if r.previous else []
    d = decide(r, StrategyStatus(), settled(live), T0)
    assert applied(d) == [a] and "sooner" in a  # only the first
    d = decide(r, d.status, settled([*live, first], {a: "running"}), T0 + timedelta(seconds=5))
    assert d.writes == ()  # the second waits while the first runs
    d = decide(r, d.status, settled([*live, first]), T0 + timedelta(seconds=10))
    assert applied(d) == [b] and d.status.step == 0  # the first completed: the second starts
    d = decide(r, d.status, settled([*live, first, second], {b: "running"}), T0 + timedelta(seconds=15))
    assert d.writes == ()
    d = decide(r, d.status, settled([*live, first, second]), T0 + timedelta(seconds=20))
    assert d.status.step_name == "apply" and a not in applied(d) and b not in applied(d)


def test_each_hooks_timeout_counts_from_its_own_start() -> None:
    r = with_hooks(
        rollout("catalog"),
        weighted("one", "1", **{ANNOTATION_HOOK_TIMEOUT: "1m"}),
        weighted("two", "2", **{ANNOTATION_HOOK_TIMEOUT: "1m"}),
    )
    first, second = hook_jobs(r, "pre-upgrade")
    live = desired(r, r.previous) if r.previous else []
    status = decide(r, StrategyStatus(), settled(live), T0).status
    status = decide(r, status, settled([*live, first]), T0 + timedelta(seconds=50)).status  # second created
    running = settled([*live, first, second], {second["metadata"]["name"]: "running"})
    assert decide(r, status, running, T0 + timedelta(seconds=100)).status.phase is Phase.PROGRESSING
    d = decide(r, status, running, T0 + timedelta(seconds=111))
    assert d.status.reason == "HookTimeout" and second["metadata"]["name"] in d.status.message


def deletes(decision: Any) -> list[tuple[str, str | None]]:
    return [(a.ref.name, a.propagation) for a in decision.actions if isinstance(a, Delete)]


def test_hook_succeeded_deletes_the_job_once_complete_and_never_runs_it_again() -> None:
    r = with_hooks(
        rollout("catalog"), weighted("gone", "1", **{HELM_HOOK_DELETE: "hook-succeeded"}), weighted("kept", "2")
    )
    first, second = hook_jobs(r, "pre-upgrade")
    a, b = first["metadata"]["name"], second["metadata"]["name"]
    live = desired(r, r.previous) if r.previous else []
    status = decide(r, StrategyStatus(), settled(live), T0).status
    d = decide(r, status, settled([*live, first]), T0 + timedelta(seconds=5))
    assert deletes(d) == [(a, "Background")] and applied(d) == [b]
    d = decide(r, d.status, settled([*live, second], {b: "running"}), T0 + timedelta(seconds=10))
    assert d.writes == ()  # the deleted first hook is not created again
    d = decide(r, d.status, settled([*live, second]), T0 + timedelta(seconds=15))
    assert deletes(d) == [] and d.status.step_name == "apply"  # `kept` has the default policy


def test_hook_failed_deletes_the_failed_job_and_still_fails_the_region() -> None:
    r = with_hooks(rollout("catalog"), weighted("flaky", **{HELM_HOOK_DELETE: "hook-failed"}))
    [hook] = hook_jobs(r, "pre-upgrade")
    name = hook["metadata"]["name"]
    live = desired(r, r.previous) if r.previous else []
    status = decide(r, StrategyStatus(), settled(live), T0).status
    d = decide(r, status, settled([*live, hook], {name: "failed"}), T0 + timedelta(seconds=5))
    assert d.status.phase is Phase.ROLLING_BACK and d.status.reason == "HookFailed" and name in d.status.message
    assert deletes(d) == [(name, "Background")]
    kept = with_hooks(rollout("catalog"), weighted("flaky", **{HELM_HOOK_DELETE: "hook-succeeded"}))
    d = decide(kept, status, settled([*live, hook], {name: "failed"}), T0 + timedelta(seconds=5))
    assert d.status.reason == "HookFailed" and deletes(d) == []  # a failed Job is kept to look at


def test_before_hook_creation_deletes_the_previous_releases_job_of_the_same_hook() -> None:
    for policy, expect_delete in ((None, True), ("hook-succeeded", False)):
        notes = {} if policy is None else {HELM_HOOK_DELETE: policy}
        r = with_hooks(rollout("catalog"), weighted(BACKUP, **notes), weighted("other"))
        assert r.previous is not None
        r = replace(r, previous=replace(r.previous, hooks=r.release.hooks))
        [old, old_other] = [j.obj for j in hooks.jobs(r.previous, "pre-upgrade", r.hook_policy.timeout)]
        assert {hooks.job_name(BACKUP, r.previous.identity.number, "pre-upgrade")} <= {
            old["metadata"]["name"],
            old_other["metadata"]["name"],
        }
        assert {ref_of(old), ref_of(old_other)} <= set(hooks.refs(r))  # observed, so the step sees them
        [new, _] = hook_jobs(r, "pre-upgrade")
        live = desired(r, r.previous)
        d = decide(r, StrategyStatus(), settled([*live, old, old_other]), T0)
        assert applied(d) == [new["metadata"]["name"]]
        assert deletes(d) == ([(old["metadata"]["name"], "Background")] if expect_delete else []), policy


# --- the guestbook example (issue 12 item 7) ---------------------------------------------------


def test_the_guestbook_backup_is_a_hook_and_each_workload_keeps_its_strategy() -> None:
    r = rollout("guestbook")
    assert [o["metadata"]["name"] for o in r.release.hooks] == [BACKUP]
    applied_names = {o["metadata"]["name"] for o in desired(r, r.release)}
    assert applied_names == {"gb-web", "gb-mysql", "guestbook"}  # Deployments and Services, no Job
    [mysql] = [o for o in desired(r, r.release) if o["kind"] == "Deployment" and o["metadata"]["name"] == "gb-mysql"]
    assert mysql["spec"]["strategy"] == {"type": "Recreate"}
    n = r.release_number
    assert [o["metadata"]["name"] for o in hook_jobs(r, "pre-upgrade")] == [f"{BACKUP}-{n}-pre-upgrade"]
    assert [o["metadata"]["name"] for o in hook_jobs(r, "pre-rollback")] == [f"{BACKUP}-{n}-pre-rollback"]
    assert hook_jobs(r, "pre-upgrade")[0]["spec"]["activeDeadlineSeconds"] == 300  # the hook's own 5m
    assert r.hook_policy.timeout == timedelta(minutes=10)
    forward, rollback = hooks.around(r, [], [])
    assert [s.name for s in forward] == ["pre-upgrade hook"]
    assert rollback is not None and [s.name for s in rollback] == ["pre-rollback hook"]


def test_validate_names_file_field_and_fix_for_bad_hooks(tmp_path: Path) -> None:
    """`rollout validate` (load_repository) refuses an unknown phase, a non-Job hook and bad
    timeouts, in the manifests and in the plan, each with its file, field and fix."""
    shutil.copytree(EXAMPLE / "regions", tmp_path / "regions")
    app = tmp_path / "apps" / "guestbook"
    shutil.copytree(EXAMPLE / "apps" / "guestbook", app)
    backup = app / "manifests" / "backup.yaml"
    backup.write_text(
        backup.read_text()
        .replace("pre-upgrade,pre-rollback", "pre-upgrade,post-upgrade")
        .replace("hook-timeout: 5m", "hook-timeout: soon")
    )
    (app / "manifests" / "config.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seed\n  annotations: {rollout.dev/hook: pre-upgrade}\n"
        "data: {a: b}\n"
    )
    with pytest.raises(InvalidRepository) as invalid:
        load_repository(tmp_path)
    found = {(i.file, i.field): i for i in invalid.value.issues}
    unknown = found[("apps/guestbook/manifests", "Job/db-backup metadata.annotations.rollout.dev/hook")]
    assert "unknown hook phase 'post-upgrade'" in unknown.problem and "pre-upgrade, post-promote" in unknown.fix
    timeout = found[("apps/guestbook/manifests", "Job/db-backup metadata.annotations.rollout.dev/hook-timeout")]
    assert "'soon' is not a duration" in timeout.problem
    not_a_job = found[("apps/guestbook/manifests", "ConfigMap/seed metadata.annotations.rollout.dev/hook")]
    assert "a hook must be a Job" in not_a_job.problem
    plan = app / "rollout.yaml"  # the plan's settings (checked before anything renders)
    plan.write_text(plan.read_text().replace("timeout: 10m", "timeout: 10").replace("continue #", "later #"))
    with pytest.raises(InvalidRepository) as invalid:
        load_repository(tmp_path)
    found = {(i.file, i.field): i for i in invalid.value.issues}
    assert ("apps/guestbook/rollout.yaml", "hooks.preRollbackFailure") in found
    plan_timeout = found[("apps/guestbook/rollout.yaml", "hooks.timeout")]
    assert "no unit" in plan_timeout.problem and plan_timeout.fix

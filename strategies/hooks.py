"""Release hooks: Jobs run at a release's phases in each region (pure; config/hooks.py reads the
annotations).

- **pre-upgrade**: the first forward step, before the strategy's first write in the region; a
  failed or timed-out hook fails the region (the usual drain and rollback follow).
- **post-promote**: the last forward step, after the strategy's last one; a failure fails the
  region (so the release rolls back) unless the plan says `hooks.postPromoteFailure: continue`.
- **pre-rollback**: the first rollback step, before anything is restored (a database backup,
  say); by default a failure is reported loudly (Warning Event, status message) and the rollback
  goes on: a backup failing at 3 a.m. must not hold a rollback. With
  `hooks.preRollbackFailure: block` the region ends Failed with the reason, traffic left drained.

The hooks of a phase are the release's own (a rollback of release 7 to release 6 runs release 7's
pre-rollback hooks). Each runs as its own Job, named `<name>-<release>-<phase>` (at most 63
characters), so a phase's Job is never another phase's or another release's: it is created once
(never re-applied once it exists: a Job's template is immutable), and the step waits until every
Job of the phase is Complete; a Failed condition or the timeout (the hook's
`rollout.dev/hook-timeout`, else the plan's `hooks.timeout`, counted from the Job's creation and
also set as the Job's activeDeadlineSeconds) fails it, naming the Job.

The Jobs of one phase run one after the other, lower weight first, ties by name (config/hooks.py):
each is created once the one before it completed; how far the phase got is the status' progress
marker (`hook <i>`), so a Job deleted by its hook-succeeded policy is never created again. The
delete policies (before-hook-creation: the same hook's Job of the previous release, before this
one is created; hook-succeeded; hook-failed) delete in the background. Finished Jobs are otherwise
cleaned by ttlSecondsAfterFinished (one hour unless the manifest sets it).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from config.hooks import (
    BEFORE_HOOK_CREATION,
    HOOK_SUCCEEDED,
    LABEL_HOOK_PHASE,
    POST_PROMOTE,
    PRE_ROLLBACK,
    PRE_UPGRADE,
    Hook,
    hook_of,
    is_hook,
)
from config.hooks import HOOK_FAILED as HOOK_FAILED_POLICY
from config.render import Rendered
from strategies import steps as engine
from strategies.manifests import Obj, ref_of, stamped
from strategies.model import Apply, Delete, Event, ObjectRef, RegionRollout, StrategyStatus
from strategies.steps import Ctx, Step, StepResult

HOOK_TTL_SECONDS = 3600
HOOK_FAILED = "HookFailed"
HOOK_TIMEOUT = "HookTimeout"
WAIT_HOOK = 2.0


def split(rendered: Rendered) -> Rendered:
    """`rendered` with its hook objects moved from `objects` to `hooks`: the one place where hooks
    leave the objects the strategies apply (strategies.driver.Renderer)."""
    hooks = tuple(o for o in rendered.objects if is_hook(o))
    if not hooks:
        return rendered
    return replace(rendered, objects=tuple(o for o in rendered.objects if not is_hook(o)), hooks=rendered.hooks + hooks)


def job_name(name: str, number: str, phase: str) -> str:
    suffix = f"-{number}-{phase}"
    return f"{name[: 63 - len(suffix)].rstrip('-.')}{suffix}"


@dataclass(frozen=True)
class HookJob:
    """One hook as the Job that runs it at one phase."""

    obj: Obj  # as applied: named for release and phase, stamped
    timeout: timedelta
    hook: Hook
    source: str  # the hook's name in the manifests

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def ref(self) -> ObjectRef:
        return ref_of(self.obj)


def jobs(rendered: Rendered, phase: str, default_timeout: timedelta) -> list[HookJob]:
    """The Jobs `rendered` runs at `phase`, as applied (named for release and phase), each with
    its timeout, in the order they run: lower weight first, ties by name."""
    out = []
    for hook in rendered.hooks:
        spec = hook_of(hook)
        if spec is None or phase not in spec.phases or hook.get("kind") != "Job":
            continue
        timeout = spec.timeout or default_timeout
        obj = copy.deepcopy(hook)
        meta = obj.setdefault("metadata", {})
        source = str(meta["name"])
        meta["name"] = job_name(source, rendered.identity.number, phase)
        meta.setdefault("labels", {})[LABEL_HOOK_PHASE] = phase
        job = obj.setdefault("spec", {})
        job.setdefault("ttlSecondsAfterFinished", HOOK_TTL_SECONDS)
        job.setdefault("activeDeadlineSeconds", max(1, int(timeout.total_seconds())))
        out.append(HookJob(stamped(obj), timeout, spec, source))
    return sorted(out, key=lambda j: (j.hook.weight, j.name))


def refs(rollout: RegionRollout) -> list[ObjectRef]:
    """Every hook Job the release may run in the region, and the previous release's (the ones a
    before-hook-creation policy deletes): what the cluster observes for them."""
    timeout = rollout.hook_policy.timeout
    releases = [r for r in (rollout.release, rollout.previous) if r is not None]
    return [
        j.ref for r in releases for phase in (PRE_UPGRADE, POST_PROMOTE, PRE_ROLLBACK) for j in jobs(r, phase, timeout)
    ]


def step(rollout: RegionRollout, phase: str) -> Step | None:
    """The step running the release's `phase` hooks one after the other, or None when it has none."""
    todo = jobs(rollout.release, phase, rollout.hook_policy.timeout)
    if not todo:
        return None
    policy = rollout.hook_policy
    blocking = {
        PRE_UPGRADE: True,
        POST_PROMOTE: policy.post_promote_failure == "fail",
        PRE_ROLLBACK: policy.pre_rollback_failure == "block",
    }[phase]
    earlier = {}  # the same hook's Job of the previous release (before-hook-creation)
    if rollout.previous is not None:
        earlier = {j.source: j.ref for j in jobs(rollout.previous, phase, policy.timeout)}

    def run(ctx: Ctx) -> StepResult:
        outcome = _sequence(ctx, phase, todo, earlier)
        if outcome.kind != "fail" or blocking:
            return outcome
        message = f"{ctx.status.message}; " if ctx.status.message else ""
        went_on = "the rollback went on" if phase == PRE_ROLLBACK else "the release went on"
        warning = f"{outcome.message} ({went_on}: hooks.{_policy_field(phase)} is continue)"
        event = Event(rollout.workload, outcome.reason, warning, "Warning")
        return StepResult("done", (*outcome.actions, event), replace(ctx.status, message=f"{message}{warning}"))

    return Step(f"{phase} hook", run)


def _policy_field(phase: str) -> str:
    return "preRollbackFailure" if phase == PRE_ROLLBACK else "postPromoteFailure"


MARKER = "hook "  # StrategyStatus.progress_marker while a phase's hooks run: "hook <i>", i the running one


def position(status: StrategyStatus) -> int:
    """How many hooks of the step already completed (the status' progress marker)."""
    marker = status.progress_marker or ""
    return int(marker[len(MARKER) :]) if marker.startswith(MARKER) and marker[len(MARKER) :].isdigit() else 0


def _at(status: StrategyStatus, i: int, now: datetime) -> StrategyStatus:
    if status.progress_marker == f"{MARKER}{i}" and status.progress_since is not None:
        return status
    return replace(status, progress_marker=f"{MARKER}{i}", progress_since=now)


def _sequence(ctx: Ctx, phase: str, todo: Sequence[HookJob], earlier: Mapping[str, ObjectRef]) -> StepResult:
    """The phase's hooks in order, each created once the one before it completed: wait (creating
    the next, or while one runs), done when the last completed, fail on a failed or timed-out one,
    naming the Job. Deletions by the hooks' delete policies ride along."""
    status, deletes = ctx.status, []
    for i in range(position(status), len(todo)):
        job = todo[i]
        status = _at(status, i, ctx.now)
        state = ctx.snap.workload("Job", job.name)
        if state is None and not ctx.snap.exists(job.ref):
            old = earlier.get(job.source)
            if BEFORE_HOOK_CREATION in job.hook.delete_policy and old is not None and ctx.snap.exists(old):
                deletes.append(Delete(old, propagation="Background"))
            create = Apply((job.obj,), f"{phase} hook of release {ctx.rollout.release_number}")
            return engine.wait(*deletes, create, status=status, requeue=WAIT_HOOK)
        started = status.progress_since or ctx.now
        if state is not None and state.failed:
            failed = engine.fail(HOOK_FAILED, f"{phase} hook Job {job.name} {state.failed}")
            return _with(failed, [*deletes, *_delete_if(job, HOOK_FAILED_POLICY)])
        if state is not None and state.problem is None:
            deletes += _delete_if(job, HOOK_SUCCEEDED)
            continue
        if ctx.now - started >= job.timeout:
            seconds = int(job.timeout.total_seconds())
            timed_out = engine.fail(
                HOOK_TIMEOUT,
                f"{phase} hook Job {job.name} did not complete within {seconds}s "
                f"({state.problem if state else 'not observed'})",
            )
            return _with(timed_out, [*deletes, *_delete_if(job, HOOK_FAILED_POLICY)])
        return engine.wait(*deletes, status=status, requeue=WAIT_HOOK)
    return StepResult("done", tuple(deletes), status)


def _delete_if(job: HookJob, policy: str) -> list[Delete]:
    return [Delete(job.ref, propagation="Background")] if policy in job.hook.delete_policy else []


def _with(result: StepResult, actions: Sequence[Delete]) -> StepResult:
    return replace(result, actions=(*result.actions, *actions))


def around(
    rollout: RegionRollout, forward: list[Step], rollback: list[Step] | None
) -> tuple[list[Step], list[Step] | None]:
    """The strategy's steps with the release's hook steps placed before and after (engine.around)."""
    pre, post, pre_rollback = (step(rollout, p) for p in (PRE_UPGRADE, POST_PROMOTE, PRE_ROLLBACK))
    forward = [*([pre] if pre else []), *forward, *([post] if post else [])]
    if rollback is not None and pre_rollback is not None:
        rollback = [pre_rollback, *rollback]
    return forward, rollback

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
`rollout.dev/hook-timeout`, else the plan's `hooks.timeout`, counted from the step's start and
also set as the Job's activeDeadlineSeconds) fails it, naming the Job. The Jobs of one phase run
side by side. Finished ones are cleaned by ttlSecondsAfterFinished (one hour unless the manifest
sets it).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from config.hooks import POST_PROMOTE, PRE_ROLLBACK, PRE_UPGRADE, hook_of, is_hook
from config.render import Rendered
from strategies import steps as engine
from strategies.manifests import Obj, ref_of, stamped
from strategies.model import Apply, Event, ObjectRef, RegionRollout
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


def jobs(rendered: Rendered, phase: str, default_timeout: timedelta) -> list[tuple[Obj, timedelta]]:
    """The Jobs `rendered` runs at `phase`, as applied (named for release and phase), each with
    its timeout."""
    out = []
    for hook in rendered.hooks:
        spec = hook_of(hook)
        if spec is None or phase not in spec.phases or hook.get("kind") != "Job":
            continue
        timeout = spec.timeout or default_timeout
        obj = copy.deepcopy(hook)
        meta = obj.setdefault("metadata", {})
        meta["name"] = job_name(str(meta["name"]), rendered.identity.number, phase)
        meta.setdefault("labels", {})["rollout.dev/hook-phase"] = phase
        job = obj.setdefault("spec", {})
        job.setdefault("ttlSecondsAfterFinished", HOOK_TTL_SECONDS)
        job.setdefault("activeDeadlineSeconds", max(1, int(timeout.total_seconds())))
        out.append((stamped(obj), timeout))
    return out


def refs(rollout: RegionRollout) -> list[ObjectRef]:
    """Every hook Job the release may run in the region: what the cluster observes for them."""
    timeout = rollout.hook_policy.timeout
    return [
        ref_of(obj)
        for phase in (PRE_UPGRADE, POST_PROMOTE, PRE_ROLLBACK)
        for obj, _ in jobs(rollout.release, phase, timeout)
    ]


def step(rollout: RegionRollout, phase: str) -> Step | None:
    """The step running the release's `phase` hooks, or None when it has none."""
    todo = jobs(rollout.release, phase, rollout.hook_policy.timeout)
    if not todo:
        return None
    policy = rollout.hook_policy
    blocking = {
        PRE_UPGRADE: True,
        POST_PROMOTE: policy.post_promote_failure == "fail",
        PRE_ROLLBACK: policy.pre_rollback_failure == "block",
    }[phase]

    def run(ctx: Ctx) -> StepResult:
        missing = [obj for obj, _ in todo if not ctx.snap.exists(ref_of(obj))]
        if missing:
            return engine.wait(Apply(tuple(missing), f"{phase} hook of release {rollout.release_number}"))
        outcome = _outcome(ctx, phase, todo)
        if outcome is None:
            return engine.wait(requeue=WAIT_HOOK)
        if outcome.kind != "fail" or blocking:
            return outcome
        message = f"{ctx.status.message}; " if ctx.status.message else ""
        went_on = "the rollback went on" if phase == PRE_ROLLBACK else "the release went on"
        warning = f"{outcome.message} ({went_on}: hooks.{_policy_field(phase)} is continue)"
        event = Event(rollout.workload, outcome.reason, warning, "Warning")
        return StepResult("done", (event,), replace(ctx.status, message=f"{message}{warning}"))

    return Step(f"{phase} hook", run)


def _policy_field(phase: str) -> str:
    return "preRollbackFailure" if phase == PRE_ROLLBACK else "postPromoteFailure"


def _outcome(ctx: Ctx, phase: str, todo: Sequence[tuple[Obj, timedelta]]) -> StepResult | None:
    """done when every Job completed, fail on the first failed or timed-out one, None to wait."""
    started = ctx.status.step_started_at or ctx.now
    pending = False
    for obj, timeout in todo:
        name = obj["metadata"]["name"]
        state = ctx.snap.workload("Job", name)
        if state is not None and state.failed:
            return engine.fail(HOOK_FAILED, f"{phase} hook Job {name} {state.failed}")
        if state is not None and state.problem is None:
            continue
        if ctx.now - started >= timeout:
            seconds = int(timeout.total_seconds())
            return engine.fail(
                HOOK_TIMEOUT,
                f"{phase} hook Job {name} did not complete within {seconds}s "
                f"({state.problem if state else 'not observed'})",
            )
        pending = True
    return None if pending else engine.done()


def around(
    rollout: RegionRollout, forward: list[Step], rollback: list[Step] | None
) -> tuple[list[Step], list[Step] | None]:
    """The strategy's steps with the release's hook steps placed before and after (engine.around)."""
    pre, post, pre_rollback = (step(rollout, p) for p in (PRE_UPGRADE, POST_PROMOTE, PRE_ROLLBACK))
    forward = [*([pre] if pre else []), *forward, *([post] if post else [])]
    if rollback is not None and pre_rollback is not None:
        rollback = [pre_rollback, *rollback]
    return forward, rollback

"""The step engine shared by the three strategies: commands, phases, steps, events. No IO.

A strategy is two ordered lists of steps: forward (to the new release) and rollback (back to the
previous one). A step looks at the snapshot and says: wait (with the writes that bring the cluster
closer), done, pause or fail. `StrategyStatus.step` records where we are, so a restarted controller
resumes at the same step; each step compares desired with observed state, so re-running one that
is already in place writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from regions.analysis.model import Verdict
from strategies import hooks, prune
from strategies.manifests import Obj, hash_of, ref_of
from strategies.model import (
    TRANSITIONS,
    WORKLOAD_KINDS,
    Action,
    Apply,
    Decision,
    DeploymentState,
    Event,
    Phase,
    RegionRollout,
    Snapshot,
    StrategyStatus,
    WorkloadState,
)

# the step vocabulary lives in strategies.steps (hooks.py builds steps too), re-exported here
from strategies.steps import WAIT_ANALYSIS as WAIT_ANALYSIS
from strategies.steps import WAIT_READY as WAIT_READY
from strategies.steps import Ctx as Ctx
from strategies.steps import Step as Step
from strategies.steps import StepResult as StepResult
from strategies.steps import done as done
from strategies.steps import fail as fail
from strategies.steps import pause as pause
from strategies.steps import wait as wait


def analysis_step(name: str, checks: Sequence[str], hold: Callable[[Ctx], tuple[Action, ...]]) -> Step:
    """Wait for the analysis verdict in the snapshot; `hold` keeps the cluster as the step found it."""

    def run(ctx: Ctx) -> StepResult:
        actions = hold(ctx)
        if actions:
            return wait(*actions)
        verdict = ctx.snap.analysis
        if verdict is None:
            return wait(requeue=WAIT_ANALYSIS)
        if verdict is Verdict.SUCCESS:
            return done()
        if verdict is Verdict.FAILURE:
            return fail("AnalysisFailed", f"analysis {', '.join(checks) or '(all checks)'} failed")
        return pause(
            f"Analysis{verdict.value.capitalize()}",
            f"analysis was {verdict.value}; promote to go on or abort to roll back",
        )

    return Step(name, run, tuple(checks))


def pause_step(name: str, duration: timedelta | None, hold: Callable[[Ctx], tuple[Action, ...]]) -> Step:
    """A timed pause (skipped by a promote), or one that waits for a responder's promote."""

    def run(ctx: Ctx) -> StepResult:
        actions = hold(ctx)
        if actions:
            return wait(*actions)
        if ctx.snap.commands.promote:
            return done()
        if duration is None:
            return pause("Pause", "paused until promoted")
        started = ctx.status.step_started_at or ctx.now
        left = (started + duration - ctx.now).total_seconds()
        return done() if left <= 0 else wait(requeue=left)

    return Step(name, run)


# --- helpers used by the strategies' steps -------------------------------------------------------


def changed(desired: Sequence[Obj], snap: Snapshot) -> list[Obj]:
    """Desired objects whose applied hash differs from the cluster's (missing counts as different)."""
    return [o for o in desired if snap.applied_hash(ref_of(o)) != hash_of(o)]


def converge(desired: Sequence[Obj], snap: Snapshot, reason: str) -> tuple[Action, ...]:
    todo = changed(desired, snap)
    return (Apply(tuple(todo), reason),) if todo else ()


def await_rollout(ctx: Ctx, want: Obj, deadline: timedelta, what: str) -> StepResult | None:
    """None when Deployment `want` is applied and fully rolled out; else wait, or fail on deadline.

    The deadline counts time without progress (as Kubernetes' progressDeadlineSeconds does); the
    Deployment's own ProgressDeadlineExceeded condition fails it too.
    """
    name = want["metadata"]["name"]
    dep: DeploymentState | None = ctx.snap.deployment(name)
    if dep is None or dep.applied_hash != hash_of(want):
        return wait()  # the apply has not shown up yet
    if dep.rolled_out:
        return None
    if dep.deadline_exceeded and not _stale_deadline(dep, ctx):
        return fail(
            "ProgressDeadlineExceeded",
            f"{what}: Deployment {name} made no progress within {_human(deadline)} "
            f"({dep.available}/{dep.spec_replicas} available)",
        )
    status = ctx.status
    if status.progress_marker != dep.progress_marker or status.progress_since is None:
        return wait(status=replace(status, progress_marker=dep.progress_marker, progress_since=ctx.now))
    if ctx.now - status.progress_since >= deadline:
        return fail(
            "ProgressDeadlineExceeded",
            f"{what}: Deployment {name} made no progress for {_human(deadline)} "
            f"({dep.available}/{dep.spec_replicas} available, {dep.updated} updated)",
        )
    return wait()


def await_workloads(ctx: Ctx, desired: Sequence[Obj], deadline: timedelta, what: str) -> StepResult | None:
    """None when every workload among `desired` (Deployments, StatefulSets, DaemonSets, Jobs) is
    applied and healthy by its kind's rules (WorkloadState.problem); else wait, or fail naming the
    first one that reports a failure or made no progress for `deadline` (progress of any of them
    restarts the clock, as progressDeadlineSeconds does for one Deployment)."""
    states = []
    for obj in desired:
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        state = ctx.snap.workload(obj["kind"], obj["metadata"]["name"])
        if state is None or state.applied_hash != hash_of(obj):
            return wait()  # the apply has not shown up yet
        states.append(state)
    unhealthy = [w for w in states if w.problem is not None]
    if not unhealthy:
        return None
    for w in unhealthy:
        if w.failed and not _stale_deadline(w, ctx):
            return fail(
                "ProgressDeadlineExceeded" if w.kind != "Job" else "JobFailed",
                f"{what}: {w.kind} {w.name} {w.failed} ({w.problem})",
            )
    marker = " ".join(w.progress_marker for w in states)
    status = ctx.status
    if status.progress_marker != marker or status.progress_since is None:
        return wait(status=replace(status, progress_marker=marker, progress_since=ctx.now))
    if ctx.now - status.progress_since >= deadline:
        first = unhealthy[0]
        return fail(
            "ProgressDeadlineExceeded",
            f"{what}: {first.kind} {first.name} made no progress for {_human(deadline)} ({first.problem})",
        )
    return wait()


def _stale_deadline(workload: DeploymentState | WorkloadState, ctx: Ctx) -> bool:
    """A ProgressDeadlineExceeded reported before this step began belongs to the step that failed:
    Kubernetes keeps the condition until the Deployment progresses again, so a rollback to a
    ReplicaSet that exists already (a Recreate database, say) would otherwise fail at once. Such a
    condition is left to this step's own no-progress clock above."""
    cond = workload.condition("Progressing")
    return cond is not None and cond.reported_before(ctx.status.step_started_at)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# --- the release's own steps around a strategy ----------------------------------------------------


def around(
    rollout: RegionRollout, forward: list[Step], rollback: list[Step] | None
) -> tuple[list[Step], list[Step] | None]:
    """The steps every strategy shares, placed around its own: the one place where a release's
    phase steps (hooks before and after the strategy, pruning after it) join the strategy's
    forward and rollback lists, so the decider and `pending_analysis` count steps alike."""
    forward, rollback = hooks.around(rollout, forward, rollback)
    # pruning last: only a release that passed here prunes; a rollback, once the previous release
    # is restored, removes what only the rolled-back release added
    return [*forward, prune_step()], None if rollback is None else [*rollback, prune_step()]


def prune_step() -> Step:
    """The release's last forward step: delete what it no longer renders; and the last rollback
    step: delete what the restored release does not render (strategies/prune.py)."""

    def run(ctx: Ctx) -> StepResult:
        back = ctx.status.phase is Phase.ROLLING_BACK
        out = prune.decide(ctx.rollout, ctx.snap.inventory, rolling_back=back)
        status = None
        if out.kind == "done" and out.message:  # a rollback's refused prune: said in the status
            status = replace(ctx.status, message=f"{ctx.status.message}; {out.message}".lstrip("; "))
        return StepResult(out.kind, out.actions, status, reason=out.reason, message=out.message, requeue=0.0)

    return Step(prune.PRUNE_STEP, run)


# --- the engine ---------------------------------------------------------------------------------


def run(ctx: Ctx, forward: Sequence[Step], rollback: Sequence[Step] | None, workload: str) -> Decision:
    """One decision: apply commands, then run steps of the current phase until one is not done.

    `rollback` is None when there is nothing to roll back to (a first release): failures then end
    in Failed, leaving the cluster as it is for a responder.
    """
    status, snap, now = ctx.status, ctx.snap, ctx.now  # a promote counts once: see _promote_consumed
    events: list[Action] = []

    def event(reason: str, message: str, warning: bool = False) -> None:
        events.append(Event(workload, reason, message, "Warning" if warning else "Normal"))

    if snap.commands.abort and status.phase not in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
        status = status.to(Phase.ROLLING_BACK, now, reason="Aborted", message=snap.commands.abort)
        event("RollbackStarted", f"rollback requested: {snap.commands.abort}", warning=True)
    if status.phase is Phase.PENDING:
        status = status.to(Phase.PROGRESSING, now, reason="Started", message="rollout started")
        status = replace(status, step=0)
        event("RolloutStarted", f"release {ctx.rollout.release_number} started ({ctx.rollout.kind})")
    if status.phase is Phase.PAUSED:
        if not snap.commands.promote:
            return Decision(tuple(events), status)
        status = status.to(Phase.PROGRESSING, now, reason="Promoted", message="promoted by a responder")
        event("Promoted", f"step {status.step} ({status.step_name}) promoted by a responder")
        status = status.next_step(now)
        snap = _promote_consumed(snap)
    if status.phase not in (Phase.PROGRESSING, Phase.ROLLING_BACK):
        return Decision(tuple(events), status)

    if status.phase is Phase.ROLLING_BACK and rollback is None:
        # a first release in this region: there is no earlier release to restore
        status = status.to(
            Phase.ROLLED_BACK,
            now,
            message=f"{status.message}; no previous release in this "
            "region, nothing to restore: the release's objects are left for a responder",
        )
        event("RolledBack", status.message, warning=True)
        return Decision((*events,), status)
    steps = forward if status.phase is Phase.PROGRESSING else (rollback or ())
    actions: list[Action] = []
    for _ in range(len(steps) + 1):
        if status.step >= len(steps):
            if status.phase is Phase.PROGRESSING:
                status = status.to(
                    Phase.SUCCEEDED, now, reason="Succeeded", message=f"release {ctx.rollout.release_number} is live"
                )
                event("RolloutSucceeded", status.message)
            else:
                status = status.to(
                    Phase.ROLLED_BACK,
                    now,  # the reason stays: why we rolled back
                    message=f"previous release restored ({status.message})",
                )
                event("RolledBack", status.message, warning=True)
            return Decision((*actions, *events), status)
        step = steps[status.step]
        if status.step_name != step.name:
            status = replace(status, step_name=step.name)
        out = step.run(Ctx(ctx.rollout, status, snap, now))
        status = out.status or status
        if out.kind == "wait":
            return Decision((*actions, *out.actions, *events), status, out.requeue)
        if out.kind == "done":
            event("StepCompleted", f"{status.phase.value} step {status.step} ({step.name}) completed")
            status = status.next_step(now)
            snap = _promote_consumed(snap)  # one promote moves one step
            if out.actions:  # the world changes: look again before the next step
                return Decision((*actions, *out.actions, *events), status, 0.0)
            continue
        if out.kind == "pause":
            status = status.to(Phase.PAUSED, now, reason=out.reason, message=out.message)
            event("Paused", f"step {status.step} ({step.name}): {out.message}", warning=out.reason != "Pause")
            return Decision((*actions, *events), status)
        # fail (its actions, a failed hook Job's deletion say, still happen)
        if status.phase is Phase.PROGRESSING and rollback is not None:
            status = status.to(Phase.ROLLING_BACK, now, reason=out.reason, message=out.message)
            event("RollbackStarted", f"step {step.name} failed: {out.message}", warning=True)
            return Decision((*actions, *out.actions, *events), status, 0.0)
        status = status.to(Phase.FAILED, now, reason=out.reason, message=out.message)
        event("Failed", f"{step.name}: {out.message}", warning=True)
        return Decision((*actions, *out.actions, *events), status)
    raise AssertionError("step engine did not settle")  # pragma: no cover


def _promote_consumed(snap: Snapshot) -> Snapshot:
    if not snap.commands.promote:
        return snap
    return replace(snap, commands=replace(snap.commands, promote=False))


def fail_permanently(
    status: StrategyStatus, reason: str, message: str, now: datetime, can_roll_back: bool
) -> StrategyStatus:
    """What a permanent error from the executor does to the status (forbidden, invalid...)."""
    if status.phase in (Phase.PROGRESSING, Phase.PAUSED, Phase.PENDING) and can_roll_back:
        return status.to(Phase.ROLLING_BACK, now, reason=reason, message=message)
    if status.phase is Phase.FAILED:
        return status
    if Phase.FAILED not in TRANSITIONS[status.phase]:  # settled already (Succeeded, RolledBack): say why
        return replace(status, reason=reason, message=message)
    return status.to(Phase.FAILED, now, reason=reason, message=message)

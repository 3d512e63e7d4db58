"""One region step, written once: render -> observe -> decide -> execute, with one error policy.

Used by the release reconciler (one step per pass for every driven region), the drill (its
rollback and roll-forward steps) and the tests. The error policy (STYLE 7):

- transient (`TemporaryError`: the region's API server unreachable, 429, 5xx, conflicts; the
  cluster adapter has already retried each call with backoff): nothing is recorded, the status
  stays as it was and the caller retries the step after `Driven.retry_after`, a backoff that grows
  with the number of failures in a row;
- permanent (`PermanentError`: forbidden, invalid, a field owned by another manager): the step
  fails at once with the error's message: in the status (rollback, or Failed without a release to
  return to), as a Warning Event on the workload and as one log line, never retried as it is.

`Renderer` renders a region's release (both tracks for a canary plan, and the release a
rollback returns to) from each release's own pinned commit, once per input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

import structlog

from config.identity import ReleaseIdentity
from config.policies import traffic_workload, workload_problems
from config.render import Rendered, RenderFailed, render
from config.repository import Repository
from regions.analysis.model import Verdict
from strategies import check, decide, hooks, pending_analysis, prune
from strategies.cluster import Cluster
from strategies.engine import fail_permanently
from strategies.errors import Backoff, PermanentError, TemporaryError
from strategies.manifests import ManifestError, one_shot
from strategies.model import (
    AnalysisRequest,
    Commands,
    Decision,
    Event,
    Phase,
    RegionRollout,
    Snapshot,
    StrategyStatus,
)

AnalysisHook = Callable[[AnalysisRequest], Verdict | None]
RETRY = Backoff(initial=1.0, factor=2.0, maximum=30.0)
RENDER_FAILED = "RenderFailed"
BUILD_STEP = "build"  # the step name of a release that could not be built (nothing of it applied)
log = structlog.get_logger("strategies.driver")


@dataclass(frozen=True)
class ReleaseAt:
    """A release of an app: the pinned commit it renders from and its version."""

    commit: str
    version: str


class Renderer:
    """Renders releases for one region, cached by (commit, app, region, version, track)."""

    def __init__(self, repository: Callable[[str], Repository], cache_size: int = 256) -> None:
        self.repository = repository
        self._render = lru_cache(maxsize=cache_size)(self._render_uncached)

    def rendered(self, commit: str, app: str, region: str, version: str, track: str = "stable") -> Rendered:
        return self._render(commit, app, region, version, track)

    def rollout(self, app: str, region: str, release: ReleaseAt, rollback_to: ReleaseAt | None) -> RegionRollout:
        """`release` of `app` in `region` under its own plan's strategy; a rollback returns to
        `rollback_to` (None: a first release, nothing to return to). A release that does not render,
        or renders without what its strategy needs, raises PermanentError (RenderFailed,
        InvalidManifests): the same answer on every try, so the region fails once with it."""
        try:
            built = self._rollout(app, region, release, rollback_to)
        except RenderFailed as exc:
            raise PermanentError(
                f"release {release.version} ({release.commit[:12]}) does not render in {region}: {exc}",
                reason=RENDER_FAILED,
            ) from None
        check(built)
        return built

    def _rollout(self, app: str, region: str, release: ReleaseAt, rollback_to: ReleaseAt | None) -> RegionRollout:
        plan = self.repository(release.commit).apps[app].plan
        strategy = plan.strategy.rolling or plan.strategy.blue_green or plan.strategy.canary
        assert strategy is not None  # the schema requires exactly one
        stable = self.rendered(release.commit, app, region, release.version, "stable")
        canary = (
            self.rendered(release.commit, app, region, release.version, "canary")
            if plan.strategy.canary is not None
            else None
        )
        previous = (
            None
            if rollback_to is None
            else self.rendered(rollback_to.commit, app, region, rollback_to.version, "stable")
        )
        problems = [
            f"{problem} (rollout.yaml {field}; fix: {fix})"
            for rendered in (stable, canary)
            if rendered
            for field, problem, fix in workload_problems(app, plan, rendered.objects)
        ]
        if problems:
            raise ManifestError(f"release {stable.identity.number} in {region}: {'; '.join(dict.fromkeys(problems))}")
        return RegionRollout(
            app=app,
            namespace=plan.target_namespace,
            region=region,
            strategy=strategy,
            release=stable,
            previous=previous,
            canary_release=canary,
            traffic_workload=traffic_workload(app, plan, stable.objects),
            prune=plan.prune,
            hook_policy=plan.hooks,
        )

    def _render_uncached(self, commit: str, app: str, region: str, version: str, track: str) -> Rendered:
        rendered = render(self.repository(commit), app, region, ReleaseIdentity(commit, version, track))
        rendered = hooks.split(rendered)  # hook Jobs run at their phases, never with the release
        # Jobs are immutable once created: each release gets its own (manifests.one_shot)
        return replace(rendered, objects=tuple(one_shot(rendered.objects, rendered.identity.number)))


@dataclass(frozen=True)
class Driven:
    """What one region step did."""

    status: StrategyStatus  # what to store: the decided status, a permanent failure, or unchanged
    decision: Decision | None = None  # None when the cluster could not be observed
    snapshot: Snapshot | None = None
    writes: int = 0
    executed: bool = False  # the decision's actions were carried out (may_write)
    requeue_after: float | None = None  # seconds; None when settled
    error: str = ""
    transient: bool = False  # the step did not happen; retry after `retry_after`
    retry_after: float = 0.0


def drive(
    cluster: Cluster,
    rollout: RegionRollout | Callable[[], RegionRollout],
    status: StrategyStatus,
    now: datetime,
    *,
    analysis: AnalysisHook | None = None,
    commands: Commands | None = None,
    may_write: bool = True,
    failures: int = 0,
    retry: Backoff = RETRY,
    logger: Any = None,
) -> Driven:
    """One step of `rollout`'s strategy in its region. `failures`: transient failures in a row
    before this one (for the backoff). `rollout` may be given as the function that builds it
    (renders the release, `Renderer.rollout`): a release that cannot be built fails the step by
    the same error policy (`unbuildable`), never raises."""
    if callable(rollout):
        try:
            rollout = rollout()
        except TemporaryError as exc:
            delay = retry.delay(failures)
            (logger or log).warning("region step not done; will retry", error=str(exc), retry_in=round(delay, 1))
            return Driven(status, requeue_after=delay, error=str(exc), transient=True, retry_after=delay)
        except PermanentError as exc:
            return unbuildable(status, exc, now, logger=logger)
    logger = (logger or log).bind(
        app=rollout.app, region=rollout.region, release=rollout.release_number, strategy=rollout.kind
    )
    decision: Decision | None = None
    snap: Snapshot | None = None
    try:
        snap = cluster.observe(rollout, commands=commands)
        listed = cluster.inventory(rollout) if prune.wants_inventory(status.phase, status.step_name) else None
        snap = replace(snap, inventory=listed)  # the app's objects: listed at the prune step only
        request = pending_analysis(rollout, status, snap)
        if request is not None and analysis is not None:
            snap = replace(snap, analysis=analysis(request))
        decision = decide(rollout, status, snap, now)
        if (
            snap.inventory is None
            and not decision.writes
            and prune.wants_inventory(decision.status.phase, decision.status.step_name)
        ):
            # the strategy's last step completed in this pass: list now and decide again, so the prune
            # step runs in the same pass instead of the next one
            snap = replace(snap, inventory=cluster.inventory(rollout))
            decision = decide(rollout, status, snap, now)
        new = decision.status
        logger = logger.bind(phase=new.phase.value, step=new.step, step_name=new.step_name)
        if not may_write:
            return Driven(new, decision, snap, requeue_after=decision.requeue_after)
        writes = cluster.execute(rollout, decision.actions, logger=logger)
    except TemporaryError as exc:
        delay = retry.delay(failures)
        logger.warning("region step not done; will retry", error=str(exc), retry_in=round(delay, 1))
        return Driven(status, decision, snap, requeue_after=delay, error=str(exc), transient=True, retry_after=delay)
    except PermanentError as exc:
        at = decision.status if decision is not None else status
        if prune.wants_inventory(at.phase, at.step_name):
            # the release passed this region (or the rollback restored the previous one): a prune the
            # region refuses (a delete or list forbidden, another app's object) is reported, it does
            # not roll back
            failed = prune.refused_by_region(at, str(exc), now)
        else:
            # The writes that failed belong to the decided status: a failing rollback ends Failed.
            base = decision.status if decision is not None and decision.status.phase is Phase.ROLLING_BACK else status
            failed = fail_permanently(base, exc.reason, str(exc), now, rollout.previous is not None)
        logger.error("region step failed", reason=exc.reason, error=str(exc), phase=failed.phase.value)
        if may_write:
            with contextlib.suppress(TemporaryError, PermanentError):
                cluster.execute(rollout, (Event(_workload(rollout, failed), exc.reason, str(exc), "Warning"),))
        return Driven(failed, decision, snap, requeue_after=None if failed.settled else 0.0, error=str(exc))
    if new.phase != status.phase or new.step != status.step:
        logger.info("status", reason=new.reason, message=new.message, weight=new.weight)
    return Driven(new, decision, snap, writes, True, decision.requeue_after)


def unbuildable(status: StrategyStatus, exc: PermanentError, now: datetime, *, logger: Any = None) -> Driven:
    """The step of a release that cannot be built in the region (it does not render, or renders
    without what its strategy needs). Building comes before any write, and renders are
    deterministic, so nothing of this release was ever applied in the region: going forward the
    strategy fails at once with the message (the release then follows its rollback policy); a
    rollback has nothing to restore and ends RolledBack. One log line, no traceback."""
    if status.phase is Phase.ROLLING_BACK and status.step_name == BUILD_STEP:
        new = status.to(
            Phase.ROLLED_BACK,
            now,
            message=f"{status.message or exc}; nothing of this release was "
            "applied in this region (it could not be built): nothing to restore",
        )
    elif status.phase is Phase.ROLLING_BACK:  # it was built before: what it applied cannot be undone now
        new = status.to(Phase.FAILED, now, reason=exc.reason, message=f"rollback not possible: {exc}")
    elif status.phase is Phase.PENDING:  # the strategy never started: nothing applied
        new = replace(status.to(Phase.FAILED, now, reason=exc.reason, message=str(exc)), step_name=BUILD_STEP)
    elif status.phase in (Phase.PROGRESSING, Phase.PAUSED):
        new = status.to(Phase.FAILED, now, reason=exc.reason, message=str(exc))
    else:
        return Driven(status, error=str(exc))
    if new.phase is Phase.ROLLED_BACK:
        (logger or log).info("region rolled back: the release was never applied here", reason=exc.reason)
    else:
        (logger or log).error("region step failed", reason=exc.reason, error=str(exc), phase=new.phase.value)
    return Driven(new, error=str(exc))


def _workload(rollout: RegionRollout, status: StrategyStatus) -> str:
    if rollout.kind == "blueGreen" and status.new_color:
        return f"{rollout.app}-{status.new_color}"
    return rollout.app

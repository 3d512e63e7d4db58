"""Rolling update: apply the release's Deployment with the plan's surge bounds and watch it finish."""

from __future__ import annotations

from datetime import datetime

from config.render import Rendered
from config.schema import RollingStrategy
from strategies import engine, manifests
from strategies.engine import Ctx, Step, StepResult
from strategies.manifests import Obj
from strategies.model import Decision, RegionRollout, Snapshot, StrategyStatus


def desired(rollout: RegionRollout, rendered: Rendered) -> list[Obj]:
    spec = rollout.strategy
    assert isinstance(spec, RollingStrategy)
    dep = manifests.deployment(rendered, rollout.app,
                               rolling={"maxSurge": spec.max_surge, "maxUnavailable": spec.max_unavailable},
                               progress_deadline=spec.progress_deadline)
    return [*manifests.others(rendered, rollout.app), manifests.service(rendered, rollout.app), dep]


def _apply_and_wait(rendered: Rendered, what: str) -> Step:
    def run(ctx: Ctx) -> StepResult:
        want = desired(ctx.rollout, rendered)
        actions = engine.converge(want, ctx.snap, f"{what} {rendered.identity.number}")
        if actions:
            return engine.wait(*actions)
        spec = ctx.rollout.strategy
        assert isinstance(spec, RollingStrategy)
        return engine.await_rollout(ctx, want[-1], spec.progress_deadline, what) or engine.done()
    return Step("apply" if what == "roll out" else "restore", run)


def decide(rollout: RegionRollout, status: StrategyStatus, snapshot: Snapshot, now: datetime) -> Decision:
    forward = [_apply_and_wait(rollout.release, "roll out")]
    rollback = [_apply_and_wait(rollout.previous, "restore")] if rollout.previous else None
    return engine.run(Ctx(rollout, status, snapshot, now), forward, rollback, rollout.app)

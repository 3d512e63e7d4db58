"""Rolling update: apply every object of the release, each workload rolled by its own controller,
and wait until every workload is healthy by its kind's rules (engine.await_workloads).

Deployments take the plan's surge bounds and progress deadline, except those whose manifest sets
its own `strategy` (a `Recreate` database stays Recreate); StatefulSets, DaemonSets and Jobs are
applied as rendered (Jobs once per release, see manifests.one_shot).
"""

from __future__ import annotations

from datetime import datetime

from config.render import Rendered
from config.schema import RollingStrategy
from strategies import engine, manifests
from strategies.engine import Ctx, Step, StepResult
from strategies.manifests import Obj
from strategies.model import WORKLOAD_KINDS, Decision, RegionRollout, Snapshot, StrategyStatus


def desired(rollout: RegionRollout, rendered: Rendered) -> list[Obj]:
    """Every object of `rendered`: configuration first, workloads last (they start with it in place)."""
    spec = rollout.strategy
    assert isinstance(spec, RollingStrategy)
    rest: list[Obj] = []
    workloads: list[Obj] = []
    for obj in rendered.objects:
        name = obj["metadata"]["name"]
        if obj.get("kind") == "Deployment":
            own = bool((obj.get("spec") or {}).get("strategy")) and name != rollout.app
            workloads.append(
                manifests.deployment(
                    rendered,
                    name,
                    progress_deadline=spec.progress_deadline,
                    rolling=None if own else {"maxSurge": spec.max_surge, "maxUnavailable": spec.max_unavailable},
                )
            )
        elif obj.get("kind") in WORKLOAD_KINDS:
            workloads.append(manifests.stamped(obj))
        else:
            rest.append(manifests.stamped(obj))
    return rest + workloads


def _apply_and_wait(rendered: Rendered, what: str) -> Step:
    def run(ctx: Ctx) -> StepResult:
        want = desired(ctx.rollout, rendered)
        actions = engine.converge(want, ctx.snap, f"{what} {rendered.identity.number}")
        if actions:
            return engine.wait(*actions)
        spec = ctx.rollout.strategy
        assert isinstance(spec, RollingStrategy)
        return engine.await_workloads(ctx, want, spec.progress_deadline, what) or engine.done()

    return Step("apply" if what == "roll out" else "restore", run)


def decide(rollout: RegionRollout, status: StrategyStatus, snapshot: Snapshot, now: datetime) -> Decision:
    forward, rollback = engine.around(
        rollout,
        [_apply_and_wait(rollout.release, "roll out")],
        [_apply_and_wait(rollout.previous, "restore")] if rollout.previous else None,
    )
    return engine.run(Ctx(rollout, status, snapshot, now), forward, rollback, rollout.app)

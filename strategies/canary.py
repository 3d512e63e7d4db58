"""Canary: stable `<app>` and canary `<app>-canary` workloads, traffic shifted step by step.

Forward steps are the plan's steps followed by the promotion: setWeight 100, the stable Deployment
takes the new release, traffic returns to the (now new) stable track, the canary scales to zero.
Rollback: weight 0 at once, the stable track re-applied from the previous release, canary to zero.
A first release (nothing to compare with) goes straight to the stable track.
"""

from __future__ import annotations

from datetime import datetime

from config.render import Rendered
from config.schema import CanaryStrategy
from strategies import engine, manifests
from strategies.engine import Ctx, Step, StepResult
from strategies.manifests import Obj
from strategies.model import (
    Action,
    Apply,
    Decision,
    RegionRollout,
    Scale,
    SetWeights,
    Snapshot,
    StrategyStatus,
)
from strategies.routers import TrafficRouter, canary_service, router_for, stable_service


class _Canary:
    def __init__(self, rollout: RegionRollout):
        spec = rollout.strategy
        assert isinstance(spec, CanaryStrategy)
        self.r, self.spec, self.app = rollout, spec, rollout.app
        self.router: TrafficRouter = router_for(spec.traffic_router)
        self.total = manifests.total_replicas(rollout.release, rollout.workload)
        self.canary_rendered = rollout.canary_release or rollout.release

    # --- desired objects ---------------------------------------------------------------------

    def stable_dep(self, source: Rendered, replicas: int) -> Obj:
        return manifests.deployment(
            source, self.r.workload, replicas=replicas, progress_deadline=self.spec.progress_deadline
        )

    def canary_dep(self, replicas: int) -> Obj:
        return manifests.deployment(
            self.canary_rendered,
            self.r.workload,
            name=f"{self.app}-canary",
            replicas=replicas,
            extra_labels=manifests.track_labels("canary"),
            progress_deadline=self.spec.progress_deadline,
        )

    def deployments(self, source: Rendered, weight: int) -> list[Obj]:
        stable, canary = self.router.replicas(self.total, weight)
        return [self.stable_dep(source, stable), self.canary_dep(canary)]

    def base(self, source: Rendered, others_from: Rendered | None = None) -> list[Obj]:
        """Everything but the Deployments and the route: other objects (the new release's, unless
        `others_from` says which: a rollback restores the previous release's) and the three Services."""
        return [
            *manifests.others(others_from or self.r.release, self.app, self.r.workload),
            manifests.service(source, self.app),
            manifests.service(
                source, self.app, name=stable_service(self.app), extra_selector=manifests.track_labels("stable")
            ),
            manifests.service(
                self.canary_rendered,
                self.app,
                name=canary_service(self.app),
                extra_selector=manifests.track_labels("canary"),
            ),
        ]

    def route(self, weight: int) -> list[Obj]:
        return self.router.objects(self.r.release, self.app, self.r.gateway, weight)

    def set_weights(self, weight: int, objects: list[Obj]) -> SetWeights:
        return SetWeights(self.router.name, weight, tuple(objects))

    def scale_actions(self, desired: list[Obj], snap: Snapshot, reason: str) -> tuple[Action, ...]:
        todo = engine.changed(desired, snap)
        out: list[Action] = []
        for obj in todo:
            if obj["kind"] == "Deployment" and snap.deployment(obj["metadata"]["name"]) is not None:
                out.append(Scale(obj["metadata"]["name"], int(obj["spec"]["replicas"]), obj))
            else:
                out.append(Apply((obj,), reason))
        return tuple(out)

    def hold(self, source: Rendered):  # type: ignore[no-untyped-def]
        """Keep the cluster as the previous steps left it (no write when it already is)."""

        def run(ctx: Ctx) -> tuple[Action, ...]:
            weight = ctx.status.weight
            objs = self.base(source) + self.deployments(source, weight) + self.route(weight)
            return engine.converge(objs, ctx.snap, f"hold weight {weight}%")

        return run

    # --- steps -------------------------------------------------------------------------------

    def set_weight(self, weight: int, source: Rendered, name: str | None = None) -> Step:
        def run(ctx: Ctx) -> StepResult:
            snap, what = ctx.snap, f"setWeight {weight}"
            route = self.route(weight)
            observed = self.router.observed_weight(snap, self.app) if route else None
            current = observed if observed is not None else ctx.status.weight
            high = max(weight, current) if route else weight
            # 1. size the workloads for the larger of the old and new weight, wait until Ready
            sized = self.deployments(source, high)
            actions = engine.converge(self.base(source), snap, what) + self.scale_actions(sized, snap, what)
            if actions:
                return engine.wait(*(self._as_weights(weight, actions) if not route else actions))
            for dep in self._awaited(sized):
                out = engine.await_rollout(ctx, dep, self.spec.progress_deadline, what)
                if out is not None:
                    return out
            # 2. move the traffic
            if engine.changed(route, snap):
                return engine.wait(self.set_weights(weight, engine.changed(route, snap)))
            # 3. shrink what the lower weight no longer needs
            final = self.deployments(source, weight)
            actions = self.scale_actions(final, snap, what)
            if actions:
                return engine.wait(*actions)
            for dep in self._awaited(final):
                out = engine.await_rollout(ctx, dep, self.spec.progress_deadline, what)
                if out is not None:
                    return out
            return engine.done(status=_with_weight(ctx.status, weight))

        return Step(name or f"setWeight {weight}", run)

    def _awaited(self, deps: list[Obj]) -> list[Obj]:
        # with a real router the stable track keeps its size: only the canary needs watching
        return deps if self.router.name == "replicas" else deps[1:]

    def _as_weights(self, weight: int, actions: tuple[Action, ...]) -> tuple[Action, ...]:
        """With the replica router, resizing the workloads *is* setting the weight."""
        objs: list[Obj] = []
        rest: list[Action] = []
        for a in actions:
            if isinstance(a, Scale):
                objs.append(a.object)
            else:
                rest.append(a)
        return (*rest, self.set_weights(weight, objs)) if objs else tuple(rest)

    def promote_stable(self) -> Step:
        def run(ctx: Ctx) -> StepResult:
            new = self.r.release
            stable = self.stable_dep(new, self.total)
            objs = self.base(new) + [stable]
            actions = engine.converge(objs, ctx.snap, f"promote {new.identity.number} to stable")
            if actions:
                return engine.wait(*actions)
            return (
                engine.await_rollout(ctx, stable, self.spec.progress_deadline, "promote stable")
                or engine.await_workloads(ctx, objs, self.spec.progress_deadline, "promote stable")
                or engine.done()
            )

        return Step("promoteStable", run)

    def shift_to_stable(self, name: str) -> Step:
        def run(ctx: Ctx) -> StepResult:
            route = self.route(0)
            todo = engine.changed(route, ctx.snap)
            if todo:
                return engine.wait(self.set_weights(0, todo))
            return engine.done(status=_with_weight(ctx.status, 0))

        return Step(name, run)

    def scale_down_canary(self, source: Rendered, stable_replicas: int | None = None) -> Step:
        def run(ctx: Ctx) -> StepResult:
            canary = self.canary_dep(0)
            objs = [canary]
            if self.router.name == "replicas":
                stable = self.total if stable_replicas is None else stable_replicas
                objs.insert(0, self.stable_dep(source, stable))
            actions = self.scale_actions(objs, ctx.snap, "scale down canary")
            if actions:
                return engine.wait(*actions)
            for dep in objs:
                out = engine.await_rollout(ctx, dep, self.spec.progress_deadline, "scale down canary")
                if out is not None:
                    return out
            return engine.done(status=_with_weight(ctx.status, 0))

        return Step("scaleDownCanary", run)

    def restore_stable(self, previous: Rendered) -> Step:
        def run(ctx: Ctx) -> StepResult:
            stable = self.stable_dep(previous, self.total)
            objs = self.base(previous, others_from=previous) + [stable]  # what pruning removed comes back
            actions = engine.converge(objs, ctx.snap, f"restore {previous.identity.number}")
            if actions:
                return engine.wait(*actions)
            return (
                engine.await_rollout(ctx, stable, self.spec.progress_deadline, "restore stable")
                or engine.await_workloads(ctx, objs, self.spec.progress_deadline, "restore stable")
                or engine.done()
            )

        return Step("restoreStable", run)

    # --- step lists --------------------------------------------------------------------------

    def forward(self) -> list[Step]:
        previous = self.r.previous
        if previous is None:
            return [self.first_release()]
        steps: list[Step] = []
        for i, s in enumerate(self.spec.steps):
            if s.set_weight is not None:
                steps.append(self.set_weight(s.set_weight, previous))
            elif s.pause is not None:
                steps.append(engine.pause_step(f"pause#{i}", s.pause.duration, self.hold(previous)))
            elif s.analysis is not None:
                steps.append(engine.analysis_step(f"analysis#{i}", s.analysis.checks, self.hold(previous)))
        steps.append(self.set_weight(100, previous, name="setWeight 100 (promotion)"))
        steps.append(self.promote_stable())
        steps.append(self.shift_to_stable("shiftToStable"))
        steps.append(self.scale_down_canary(self.r.release))
        return steps

    def rollback(self) -> list[Step] | None:
        previous = self.r.previous
        if previous is None:
            return None
        abort = Step("abortTraffic", self._abort_traffic(previous))
        return [abort, self.restore_stable(previous), self.scale_down_canary(previous)]

    def _abort_traffic(self, previous: Rendered):  # type: ignore[no-untyped-def]
        def run(ctx: Ctx) -> StepResult:
            route = self.route(0)
            if route:
                todo = engine.changed(route, ctx.snap)
                if todo:
                    return engine.wait(self.set_weights(0, todo))
                return engine.done(_with_weight(ctx.status, 0))
            # replica routing: the canary leaves at once, the stable track takes its full size
            objs = self.deployments(previous, 0)
            actions = self.scale_actions(objs, ctx.snap, "abort")
            if actions:
                return engine.wait(*self._as_weights(0, actions))
            return engine.done(_with_weight(ctx.status, 0))

        return run

    def first_release(self) -> Step:
        def run(ctx: Ctx) -> StepResult:
            new = self.r.release
            stable = self.stable_dep(new, self.total)
            objs = [*manifests.others(new, self.app, self.r.workload), manifests.service(new, self.app), stable]
            actions = engine.converge(objs, ctx.snap, f"first release {new.identity.number}")
            if actions:
                return engine.wait(*actions)
            return (
                engine.await_rollout(ctx, stable, self.spec.progress_deadline, "first release")
                or engine.await_workloads(ctx, objs, self.spec.progress_deadline, "first release")
                or engine.done()
            )

        return Step("firstRelease", run)


def _with_weight(status: StrategyStatus, weight: int) -> StrategyStatus:
    from dataclasses import replace

    return replace(status, weight=weight)


def steps(rollout: RegionRollout) -> tuple[list[Step], list[Step] | None]:
    c = _Canary(rollout)
    return engine.around(rollout, c.forward(), c.rollback())


def decide(rollout: RegionRollout, status: StrategyStatus, snapshot: Snapshot, now: datetime) -> Decision:
    forward, rollback = steps(rollout)
    return engine.run(Ctx(rollout, status, snapshot, now), forward, rollback, rollout.app)

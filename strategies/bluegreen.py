"""Blue/green: two colours of the workload, Service `<app>` selects the active one.

Forward: the new colour is deployed at full size (preview Service `<app>-preview` on it), optionally
analysed and held for a responder's promote, then Service `<app>` is switched to it; the old colour
is kept for the plan's scale-down delay so that a rollback is an instant switch back, then scaled
to zero. Rollback: the previous release is re-applied to the old colour (a no-op while it still
runs), Service `<app>` switches back, the new colour scales to zero. The colour Service `<app>`
selects is never scaled down or deleted.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from config.identity import LABEL_COLOR
from config.render import Rendered
from config.schema import BlueGreenStrategy
from strategies import engine, manifests
from strategies.engine import Ctx, Step, StepResult
from strategies.manifests import Obj
from strategies.model import Action, Decision, Phase, RegionRollout, Scale, Snapshot, StrategyStatus

COLORS = ("blue", "green")


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def observed_active(snap: Snapshot, app: str) -> str | None:
    svc = snap.service(app)
    color = svc.selector_map.get(LABEL_COLOR) if svc else None
    return color if color in COLORS else None


def choose_colors(status: StrategyStatus, snap: Snapshot, app: str) -> StrategyStatus:
    """Fix the colours once, when the rollout starts: the new colour is the one not serving."""
    if status.new_color is not None:
        return status
    active = observed_active(snap, app)
    return replace(status, active_color=active, new_color=other(active) if active else "blue")


class _BlueGreen:
    def __init__(self, rollout: RegionRollout, status: StrategyStatus):
        spec = rollout.strategy
        assert isinstance(spec, BlueGreenStrategy)
        assert status.new_color is not None
        self.r, self.spec, self.app = rollout, spec, rollout.app
        self.new, self.old = status.new_color, status.active_color
        self.total = manifests.total_replicas(rollout.release, rollout.workload)

    def dep(self, source: Rendered, color: str, replicas: int) -> Obj:
        return manifests.deployment(
            source,
            self.r.workload,
            name=f"{self.app}-{color}",
            replicas=replicas,
            extra_labels=manifests.color_labels(color),
            progress_deadline=self.spec.progress_deadline,
        )

    def active_service(self, source: Rendered, color: str) -> Obj:
        return manifests.service(source, self.app, extra_selector=manifests.color_labels(color))

    def preview_service(self) -> list[Obj]:
        if not self.spec.preview_service:
            return []
        return [
            manifests.service(
                self.r.release, self.app, name=f"{self.app}-preview", extra_selector=manifests.color_labels(self.new)
            )
        ]

    def new_colour_objects(self) -> list[Obj]:
        return [
            *manifests.others(self.r.release, self.app, self.r.workload),
            *self.preview_service(),
            self.dep(self.r.release, self.new, self.total),
        ]

    def hold(self, ctx: Ctx) -> tuple[Action, ...]:
        return engine.converge(self.new_colour_objects(), ctx.snap, "hold new colour")

    # --- forward -----------------------------------------------------------------------------

    def deploy_new(self) -> Step:
        def run(ctx: Ctx) -> StepResult:
            objs = self.new_colour_objects()
            actions = engine.converge(objs, ctx.snap, f"deploy {self.new}")
            if actions:
                return engine.wait(*actions)
            return (
                engine.await_rollout(ctx, objs[-1], self.spec.progress_deadline, f"deploy {self.new}")
                or engine.await_workloads(ctx, objs, self.spec.progress_deadline, f"deploy {self.new}")
                or engine.done()
            )

        return Step(f"deploy {self.new}", run)

    def switch(self, source: Rendered, to: str, name: str) -> Step:
        def run(ctx: Ctx) -> StepResult:
            actions = engine.converge([self.active_service(source, to)], ctx.snap, f"switch to {to}")
            if actions:
                return engine.wait(*actions)
            status = ctx.status
            if status.phase is Phase.PROGRESSING and status.switched_at is None:
                status = replace(status, switched_at=ctx.now)
            return engine.done(status)

        return Step(name, run)

    def scale_down(self, source: Rendered, color: str, delay: bool, name: str) -> Step:
        def run(ctx: Ctx) -> StepResult:
            if observed_active(ctx.snap, self.app) == color:
                return engine.fail("ActiveColour", f"refusing to scale down {color}: Service {self.app} selects it")
            if delay and not ctx.snap.commands.promote:
                since = ctx.status.switched_at or ctx.status.step_started_at or ctx.now
                left = (since + self.spec.scale_down_delay - ctx.now).total_seconds()
                if left > 0:
                    return engine.wait(requeue=left)
            if ctx.snap.deployment(f"{self.app}-{color}") is None:
                return engine.done()
            want = self.dep(source, color, 0)
            todo = engine.changed([want], ctx.snap)
            if todo:
                return engine.wait(Scale(want["metadata"]["name"], 0, want))
            return engine.done()

        return Step(name, run)

    def forward(self) -> list[Step]:
        steps = [self.deploy_new()]
        if self.spec.pre_promotion_analysis:
            steps.append(engine.analysis_step("prePromotionAnalysis", self.spec.pre_promotion_analysis, self.hold))
        if not self.spec.auto_promotion:
            steps.append(engine.pause_step("awaitPromotion", None, self.hold))
        steps.append(self.switch(self.r.release, self.new, f"switch to {self.new}"))
        if self.old is not None and self.r.previous is not None:
            steps.append(self.scale_down(self.r.previous, self.old, True, f"scale down {self.old}"))
        return steps

    # --- rollback ----------------------------------------------------------------------------

    def restore_old(self, previous: Rendered, old: str) -> Step:
        def run(ctx: Ctx) -> StepResult:
            objs = [*manifests.others(previous, self.app, self.r.workload), self.dep(previous, old, self.total)]
            actions = engine.converge(objs, ctx.snap, f"restore {previous.identity.number} on {old}")
            if actions:
                return engine.wait(*actions)
            return (
                engine.await_rollout(ctx, objs[-1], self.spec.progress_deadline, f"restore {old}")
                or engine.await_workloads(ctx, objs, self.spec.progress_deadline, f"restore {old}")
                or engine.done()
            )

        return Step(f"restore {old}", run)

    def rollback(self) -> list[Step] | None:
        previous, old = self.r.previous, self.old
        if previous is None or old is None:
            return None
        return [
            self.restore_old(previous, old),
            self.switch(previous, old, f"switch back to {old}"),
            self.scale_down(self.r.release, self.new, False, f"scale down {self.new}"),
        ]


def decide(rollout: RegionRollout, status: StrategyStatus, snapshot: Snapshot, now: datetime) -> Decision:
    status = choose_colors(status, snapshot, rollout.app)
    bg = _BlueGreen(rollout, status)
    forward, rollback = engine.around(rollout, bg.forward(), bg.rollback())
    return engine.run(Ctx(rollout, status, snapshot, now), forward, rollback, f"{rollout.app}-{status.new_color}")


def steps(rollout: RegionRollout, status: StrategyStatus, snapshot: Snapshot) -> list[Step]:
    bg = _BlueGreen(rollout, choose_colors(status, snapshot, rollout.app))
    return engine.around(rollout, bg.forward(), bg.rollback())[0]

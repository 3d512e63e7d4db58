"""One reconcile pass of one release: gather, decide, act, write status once.

1. Gather: for every region the release touches, drive its strategy one step (the strategies'
   own observe/decide/execute), poll the smoke window's checks, measure a drain.
2. Decide: `rollout.orchestrator.decide` (pure) on what was gathered.
3. Act: start strategies, begin rollbacks, set global weights, notify.
4. Write the status once, guarded by the resourceVersion it was decided from; nothing changed,
   nothing written.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from config.defaults import DEFAULT_CHECKS
from config.freezes import Freeze
from config.repository import AppSource, Repository
from config.schema import Check
from config.times import format_time, parse_time
from regions.analysis import (
    AnalysisRun,
    Analyzer,
    MetricsProvider,
    Target,
    Verdict,
    poll,
    select_checks,
    verdict_text,
)
from regions.analysis.rate import DEFAULT_DRAIN_QUERY, request_rate
from regions.traffic import GlobalTraffic
from rollout import metrics
from rollout.failures import permanent_reason
from rollout.notify import EventSink, Notice, Webhooks, targets, wave_of
from rollout.orchestrator import (
    Action,
    BeginRollback,
    Dependency,
    Dependent,
    Notify,
    Policy,
    RegionView,
    ReleaseView,
    Request,
    SetRegionWeight,
    StartStrategy,
    decide,
)
from rollout.release import RegionPhase, RegionStatus, ReleasePhase, ReleaseStatus
from rollout.store import ReleaseStore, StatusConflict, StoredRelease
from rollout.throttle import throttled
from rollout.workers import sized
from rollout.workspace import Workspace
from strategies.cluster import KubernetesCluster
from strategies.driver import ReleaseAt, Renderer, drive
from strategies.errors import TemporaryError
from strategies.model import AnalysisRequest, Commands, RegionRollout, StrategyStatus
from strategies.model import Phase as StrategyPhase

log = structlog.get_logger("rollout.reconciler")
ACTIVE = frozenset({ReleasePhase.PENDING, ReleasePhase.PROGRESSING, ReleasePhase.PAUSED, ReleasePhase.ROLLING_BACK})
DRIVEN = frozenset({RegionPhase.PROGRESSING, RegionPhase.ROLLING_BACK})


class ClusterPool:
    """One adapter per region context, created on first use (once, whichever worker asks first),
    its connection pool sized for the reconcile workers that share it."""

    def __init__(
        self, kubeconfig: str | None, connections: int = 10, watch: bool = False, limit: tuple[float, int] = (0.0, 1)
    ):
        self._kubeconfig = kubeconfig
        self._connections = connections
        self._watch = watch  # region watches (`--region-watches`)
        self._limit = limit  # (qps, burst) per region cluster (rollout/throttle.py); qps 0: none
        self._clusters: dict[str, KubernetesCluster] = {}
        self._lock = threading.Lock()

    def get(self, context: str) -> KubernetesCluster:
        with self._lock:
            if context not in self._clusters:
                cluster = KubernetesCluster(self._kubeconfig, context, watch=self._watch)
                sized(cluster.api_client, self._connections)
                metrics.instrument(throttled(cluster.api_client, context, *self._limit), context)
                self._clusters[context] = cluster
            return self._clusters[context]


@dataclasses.dataclass
class Pass:
    """What one reconcile pass of one release works on."""

    stored: StoredRelease
    app: AppSource
    status: ReleaseStatus
    now: datetime
    previous: tuple[str, str] | None
    requests: tuple[Request, ...]


class ReleaseReconciler:
    def __init__(
        self,
        workspace: Workspace,
        store: ReleaseStore,
        clusters: ClusterPool,
        traffic: GlobalTraffic,
        metrics_provider: MetricsProvider | None,
        sinks: Sequence[EventSink],
        may_write: Callable[[], bool],
        drain_query: str = DEFAULT_DRAIN_QUERY,
        analysis_window: timedelta | None = None,
    ):
        self.workspace = workspace
        self.store = store
        self.clusters = clusters
        self.traffic = traffic
        self.metrics = metrics_provider
        self.sinks = sinks
        self.may_write = may_write
        self.drain_query = drain_query
        self.analysis_window = analysis_window
        self.renderer = Renderer(workspace.repository)
        self.freezes: tuple[Freeze, ...] = ()  # set by the controller each pass (freezes.yaml + `rollout freeze`)
        # every app's releases as the release index holds them (set by the controller each pass): a
        # release group's dependencies are read from here, never with an API call of their own
        self.releases_by_app: Mapping[str, Sequence[StoredRelease]] = {}

    # --- entry point ---------------------------------------------------------------------------

    def reconcile(
        self, stored: StoredRelease, siblings: Sequence[StoredRelease], requests: Sequence[Request], now: datetime
    ) -> StoredRelease:
        """One pass; returns the stored release after the pass (unchanged when nothing was written)."""
        phase = ReleasePhase(stored.status.phase)
        if phase not in ACTIVE and not requests:
            return stored
        with metrics.RECONCILE.labels(stored.spec.app).time():
            try:
                repo = self.workspace.repository(stored.spec.commit)
                app = repo.apps[stored.spec.app]
            except Exception as exc:
                reason = permanent_reason(exc, stored.spec.app, stored.spec.commit)
                if reason is None:
                    raise  # transient: the caller retries with backoff
                return self._unbuildable(stored, reason, now)
            private = ReleaseStatus.from_dict(stored.status.to_dict())  # a copy this pass may mutate
            work = Pass(stored, app, private, now, self._previous(stored, siblings), tuple(requests))
            self._retarget(work, siblings)
            views = self._gather(work, repo)
            view = ReleaseView(
                stored.spec,
                work.status,
                _policy(app),
                views,
                work.requests,
                self._blocker(stored, siblings),
                work.previous,
                self.freezes,
                self._dependencies(app, work.status),
                self._dependents(stored, work.status, repo),
            )
            status, actions = decide(view, now)
            work.status = status
            self._prepare(work, actions)
            self._restore_before_recording(work, actions)
            written, ok = self._write(stored, work.status)
            if ok:  # intent recorded first: a crash from here on is resumed, never repeated
                self._perform(work, actions)
            return written

    def _unbuildable(self, stored: StoredRelease, reason: str, now: datetime) -> StoredRelease:
        """A release whose commit can never be loaded: Failed once, with the message in its status,
        one Warning Event and one log line; a Failed release is not reconciled again and blocks no
        other release of the app. A release already rolling back keeps its phase (its regions must
        still be restored) and carries the message."""
        status = unbuildable_status(stored.status, reason, now)
        if status is None:
            return stored  # said already
        written, ok = self._write(stored, status)
        if not ok:
            return written
        log.warning("release cannot be built", release=stored.name, phase=status.phase, error=reason)
        notice = Notice(
            event="failed",
            app=stored.spec.app,
            release=stored.name,
            version=stored.spec.version,
            reason=reason,
            owner="",  # the plan is at the commit that cannot be read
            contact="",
            playbook="",
            warning=True,
        )
        for sink in self.sinks:
            sink.emit(notice, now)
        return written

    # --- what the drill uses (rollout.drill.DrillHost) -----------------------------------------

    def repository(self, commit: str) -> Repository:
        return self.workspace.repository(commit)

    def region_cluster(self, repo: Repository, region: str) -> KubernetesCluster:
        return self.clusters.get(repo.regions[region].cluster)

    def region_rollout(self, app: str, region: str, release: ReleaseAt, rollback_to: ReleaseAt | None) -> RegionRollout:
        return self.renderer.rollout(app, region, release, rollback_to)

    def request_rate(self, app: str, region: str, now: datetime) -> float | None:
        """`app`'s request rate in `region` (the drain query), None when not measurable."""
        return request_rate(self.metrics, self.drain_query, app, region, now)

    def region_weight(self, app: str, region: str) -> int | None:
        return self.traffic.weights(app).get(region)

    def set_region_weight(self, app: str, region: str, weight: int) -> None:
        self.traffic.set_weights(app, {region: weight})

    # --- gather --------------------------------------------------------------------------------

    def _gather(self, work: Pass, repo: Any) -> dict[str, RegionView]:
        views: dict[str, RegionView] = {}
        promote = any(r.action == "promote" for r in work.requests)
        self._ensure_weights(work)
        if ReleasePhase(work.status.phase) == ReleasePhase.PAUSED and not work.requests:
            return views  # a paused release does not move
        for name, region in work.status.regions.items():
            phase = RegionPhase(region.phase)
            try:
                if phase in DRIVEN or (phase == RegionPhase.WAITING and region.strategy):
                    views[name] = self._drive(work, repo, name, region, promote)
                elif phase == RegionPhase.WAITING:
                    views[name] = RegionView(reachable=self._reachable(repo, name))
                elif phase == RegionPhase.SMOKE:
                    views[name] = self._smoke(work, name, region)
                elif phase == RegionPhase.DRAINING:
                    views[name] = RegionView(drain_moved=self._drain_moved(work, name, region))
                elif phase == RegionPhase.PENDING:
                    views[name] = RegionView(reachable=True)
            except TemporaryError as exc:
                region.message = f"cluster unreachable: {exc}"
                views[name] = RegionView(reachable=False)
        return views

    def _rollout(self, work: Pass, region: str) -> RegionRollout:
        spec, status = work.stored.spec, work.status
        previous = (
            ReleaseAt(status.previous_commit, status.previous_version)
            if status.previous_commit and status.previous_version
            else None
        )
        return self.renderer.rollout(spec.app, region, ReleaseAt(spec.commit, spec.version), previous)

    def _drive(self, work: Pass, repo: Any, name: str, region: RegionStatus, promote: bool) -> RegionView:
        """Drive the region's strategy one step (strategies.driver: observe, decide, execute)."""
        status = StrategyStatus.from_dict(region.strategy) if region.strategy else StrategyStatus()

        def analysis(request: AnalysisRequest) -> Verdict | None:
            return self._step_analysis(work, name, region, request.step, request.checks)

        # built inside the driver: a release that does not render (or lacks what its strategy needs)
        # fails the region once with its message, by the driver's one error policy
        step = drive(
            self.clusters.get(repo.regions[name].cluster),
            lambda: self._rollout(work, name),
            status,
            work.now,
            analysis=analysis,
            commands=Commands(promote=promote),
            may_write=self.may_write(),
            logger=log,
        )
        if step.transient:
            region.message = f"cluster unreachable: {step.error}"
            return RegionView(reachable=False)
        new = step.status
        if step.executed or step.error:
            if (new.step_name, new.phase) != (status.step_name, status.phase) and new.step_name:
                work.status.record(work.now, "step", f"{new.phase.value} {new.step_name} (weight {new.weight}%)", name)
            region.strategy = new.to_dict()
            region.weight = new.weight
        reason = ": ".join(part for part in (new.reason, new.message) if part)
        return RegionView(reachable=True, strategy_phase=new.phase, strategy_reason=reason)

    def _reachable(self, repo: Any, name: str) -> bool:
        try:
            self.clusters.get(repo.regions[name].cluster).core.get_api_resources(_request_timeout=5)
            return True
        except Exception:  # noqa: BLE001 - any failure to reach the cluster means "wait"
            return False

    def _analyzer(self, work: Pass, region: str, track: str, baseline_at: datetime | None) -> Analyzer | None:
        if self.metrics is None:
            return None
        spec = work.stored.spec
        target = Target(
            app=spec.app,
            region=region,
            release=spec.commit[:12],
            version=spec.version,
            stable_version=work.status.previous_version or spec.version,
            namespace=work.app.plan.target_namespace,
            track=track,
            baseline_at=baseline_at,
        )
        return Analyzer(
            self.metrics, target, min_requests=work.app.plan.analysis.min_requests, window=self.analysis_window
        )

    def _checks(self, work: Pass, names: Sequence[str] = ()) -> list[Check]:
        """The checks to run. An app's first release has no earlier version to compare with, so
        checks against a baseline are left out; its smoke window is bake time plus absolute checks."""
        checks = select_checks(work.app.plan.analysis, names, DEFAULT_CHECKS)
        if work.status.previous_commit is None:
            checks = [c for c in checks if c.baseline_query is None]
        return checks

    def _step_analysis(
        self, work: Pass, name: str, region: RegionStatus, step: int, names: Sequence[str]
    ) -> Verdict | None:
        analyzer = self._analyzer(work, name, "canary", None)
        if analyzer is None:
            return Verdict.INCONCLUSIVE  # no metrics never promotes
        key = f"step-{step}"
        checks = self._checks(work, names)
        if not checks:
            region.analysis[key] = {
                "outcome": verdict_text(Verdict.SUCCESS),
                "reason": "first release: nothing to compare with",
            }
            return Verdict.SUCCESS
        run = AnalysisRun.from_status(region.analysis[key]) if key in region.analysis else AnalysisRun(work.now)
        run, state = poll(analyzer, checks, run, work.now)
        region.analysis[key] = {**run.to_status(), "outcome": verdict_text(state.outcome), "reason": state.reason}
        return state.outcome

    def _smoke(self, work: Pass, name: str, region: RegionStatus) -> RegionView:
        started = parse_time(region.smoke_started_at)
        assert started is not None  # a SMOKE region always has its start recorded
        baseline_at = parse_time(region.started_at)
        analyzer = self._analyzer(work, name, "stable", baseline_at)
        if analyzer is None:
            return RegionView(smoke=Verdict.INCONCLUSIVE, smoke_reason="no metrics provider configured")
        ends = started + timedelta(seconds=region.smoke_seconds or 0)
        saved = region.analysis.get("smoke")
        run = (
            AnalysisRun.from_status(saved)
            if saved and parse_time(saved.get("startedAt")) == started
            else AnalysisRun(started, ends)
        )
        checks = self._checks(work)
        if not checks:
            verdict = Verdict.SUCCESS if work.now >= ends else None
            region.analysis["smoke"] = {
                "startedAt": format_time(started),
                "endsAt": format_time(ends),
                "outcome": verdict_text(verdict),
                "reason": "first release: nothing to compare with; bake time only",
            }
            return RegionView(smoke=verdict, smoke_reason="bake time only")
        run, state = poll(analyzer, checks, run, work.now)
        region.analysis["smoke"] = {**run.to_status(), "outcome": verdict_text(state.outcome), "reason": state.reason}
        if state.done:
            metrics.VERDICTS.labels(work.stored.spec.app, name, verdict_text(state.outcome)).inc()
        return RegionView(smoke=state.outcome, smoke_reason=state.reason)

    def _drain_moved(self, work: Pass, name: str, region: RegionStatus) -> float | None:
        before = region.analysis.get("drainBaselineRate")
        now_rate = self.request_rate(work.stored.spec.app, name, work.now)
        if not before or now_rate is None:
            return None
        return max(0.0, 1.0 - now_rate / float(before))

    # --- act -----------------------------------------------------------------------------------

    def _prepare(self, work: Pass, actions: Sequence[Action]) -> None:
        """The part of the actions that belongs in the status written next."""
        for action in actions:
            if isinstance(action, StartStrategy):
                work.status.regions[action.region].strategy = {}  # driven from the next pass on
            elif isinstance(action, BeginRollback):
                region = work.status.regions[action.region]
                current = StrategyStatus.from_dict(region.strategy) if region.strategy else StrategyStatus()
                if current.phase not in (StrategyPhase.ROLLING_BACK, StrategyPhase.ROLLED_BACK):
                    region.strategy = current.to(
                        StrategyPhase.ROLLING_BACK, work.now, reason=action.reason[:200]
                    ).to_dict()
            elif isinstance(action, SetRegionWeight) and action.weight == 0:
                # before the drain: what "moved" is measured against
                rate = self.request_rate(work.stored.spec.app, action.region, work.now)
                if rate:
                    work.status.regions[action.region].analysis["drainBaselineRate"] = rate

    def _restore_before_recording(self, work: Pass, actions: Sequence[Action]) -> None:
        """Traffic back in a region before its restore is recorded, unlike every other effect: the
        record can end the release (RolledBack), a finished release is never reconciled again, and
        a crash between the record and the effect left the region drained for good (seen in the
        kill -9 test). Restoring twice is harmless; a crash before the record redoes the decision."""
        restores = {a.region: a.weight for a in actions if isinstance(a, SetRegionWeight) and a.weight > 0}
        if restores and self.may_write():
            self.traffic.set_weights(work.stored.spec.app, restores)

    def _perform(self, work: Pass, actions: Sequence[Action]) -> None:
        """Effects outside the Release, after its status recorded them (restores: before)."""
        spec = work.stored.spec
        for action in actions:
            if isinstance(action, SetRegionWeight) and action.weight == 0:
                self.traffic.set_weights(spec.app, {action.region: action.weight})
            elif isinstance(action, BeginRollback):
                metrics.ROLLBACKS.labels(spec.app, action.region).inc()
            elif isinstance(action, Notify):
                self._notify(work, action)

    def _ensure_weights(self, work: Pass) -> None:
        """Level-triggered drain: whatever happened between passes, a drained region stays at 0 until
        its restore is recorded, and a restored one is back at 100."""
        desired = {d.region: (100 if d.restored_at else 0) for d in work.status.drains}
        if desired and self.may_write():
            self.traffic.set_weights(work.stored.spec.app, desired)

    def _notify(self, work: Pass, action: Notify) -> None:
        plan = work.app.plan
        notice = Notice(
            event=action.event,
            app=work.stored.spec.app,
            release=work.stored.name,
            version=work.stored.spec.version,
            reason=action.reason,
            owner=plan.owner.team,
            contact=plan.owner.contact,
            playbook=plan.playbook,
            region=action.region,
            warning=action.warning,
            wave=wave_of(work.stored.spec.waves, action.region, work.status.current_wave),
        )
        log.info(
            "release event", kind=action.event, release=work.stored.name, region=action.region, reason=action.reason
        )
        for sink in self.sinks:
            sink.emit(notice, work.now)
        Webhooks(targets(plan.notifications)).emit(notice, work.now)
        if action.event == "drained":
            drain = next((d for d in reversed(work.status.drains) if d.region == action.region), None)
            if drain is not None and drain.seconds is not None:
                metrics.DRAINS.labels(work.stored.spec.app, action.region).observe(drain.seconds)

    # --- write ---------------------------------------------------------------------------------

    def _write(self, stored: StoredRelease, status: ReleaseStatus) -> tuple[StoredRelease, bool]:
        """(the stored release after the write, whether the decided status is now recorded)."""
        if not self.may_write():
            return stored, False
        if status.to_dict() == stored.status.to_dict():
            return stored, True
        try:
            return self.store.write_status(stored, status), True
        except StatusConflict:
            log.info("release changed while deciding; will re-read", release=stored.name)
            return stored, False

    # --- helpers -------------------------------------------------------------------------------

    def _dependencies(self, app: AppSource, status: ReleaseStatus) -> tuple[Dependency, ...]:
        """The releases of the apps `app` depends on (its plan's dependsOn at the release's commit)
        that are in flight, or that rolled back since this release started: where each goes and where
        it passed. A rollback that cannot go on (`wedged`) holds no region."""
        began = parse_time(status.started_at)
        out = []
        for name in app.plan.depends_on:
            for release in self.releases_by_app.get(name, ()):
                phase = ReleasePhase(release.status.phase)
                ended = parse_time(release.status.completed_at)
                if phase not in ACTIVE and not (
                    phase == ReleasePhase.ROLLED_BACK and began and ended and ended >= began
                ):
                    continue
                out.append(
                    Dependency(
                        name,
                        release.spec.version,
                        release.name,
                        frozenset() if wedged(release) else frozenset(r for w in release.spec.waves for r in w.regions),
                        frozenset(
                            n
                            for n, r in release.status.regions.items()
                            if RegionPhase(r.phase) == RegionPhase.SUCCEEDED
                        ),
                        release.status.phase,
                        release.status.started_at,
                        release.status.completed_at,
                    )
                )
        return tuple(out)

    def _dependents(self, stored: StoredRelease, status: ReleaseStatus, repo: Repository) -> tuple[Dependent, ...]:
        """The in-flight releases of apps depending on this release's app (by their own plan, at
        their own commit) that started regions while this release was in flight: when it rolls back,
        they roll back first in those regions (`Dependent.regions`: where they have not yet). Looked
        for only when an app depends on this one at this release's commit (no scan without groups)."""
        began = parse_time(status.started_at)
        if began is None or ReleasePhase(status.phase) not in ACTIVE:
            return ()
        if not any(stored.spec.app in a.plan.depends_on for a in repo.apps.values()):
            return ()
        out = []
        for app, releases in self.releases_by_app.items():
            for release in releases:
                phase = ReleasePhase(release.status.phase)
                if app == stored.spec.app or phase not in ACTIVE or wedged(release):
                    continue
                left = frozenset(
                    n
                    for n, r in release.status.regions.items()
                    if (at := parse_time(r.started_at)) is not None
                    and at >= began
                    and RegionPhase(r.phase) != RegionPhase.ROLLED_BACK
                )
                if left and stored.spec.app in self._depends_on(release):
                    out.append(Dependent(app, release.spec.version, release.name, left))
        return tuple(out)

    def _depends_on(self, release: StoredRelease) -> list[str]:
        try:
            return list(self.workspace.repository(release.spec.commit).apps[release.spec.app].plan.depends_on)
        except Exception:  # noqa: BLE001 - a release that cannot be loaded fails on its own; it depends on nothing here
            return []

    @staticmethod
    def _retarget(work: Pass, siblings: Sequence[StoredRelease]) -> None:
        """`rollback --to R`: R's commit and version become what the rollback returns to."""
        for request in work.requests:
            if request.action == "rollback" and request.to_release:
                target = next((r for r in siblings if r.name == request.to_release), None)
                if target is not None:
                    work.status.previous_commit, work.status.previous_version = target.spec.commit, target.spec.version

    @staticmethod
    def _previous(stored: StoredRelease, siblings: Sequence[StoredRelease]) -> tuple[str, str] | None:
        if stored.status.previous_commit and stored.status.previous_version:
            return stored.status.previous_commit, stored.status.previous_version
        good = [r for r in siblings if r.name != stored.name and r.status.phase == ReleasePhase.SUCCEEDED]
        return (good[-1].spec.commit, good[-1].spec.version) if good else None

    @staticmethod
    def _blocker(stored: StoredRelease, siblings: Sequence[StoredRelease]) -> str | None:
        """Another release of the app still moving (progressing, paused, rolling back): this one
        waits for it. A release whose rollback cannot go on (`wedged`) does not block the next one:
        only a responder can help it, and the next release is usually the fix."""
        busy = [
            r.name
            for r in siblings
            if r.name != stored.name
            and ReleasePhase(r.status.phase)
            in (ReleasePhase.PROGRESSING, ReleasePhase.PAUSED, ReleasePhase.ROLLING_BACK)
            and not wedged(r)
        ]
        return busy[0] if busy else None


def unbuildable_status(current: ReleaseStatus, reason: str, now: datetime) -> ReleaseStatus | None:
    """The status of a release that can never be built (`rollout.failures.permanent_reason`), or None
    when it already says so. Regions the release touched keep what it applied until the app's next
    release (not blocked by this one) replaces it; the message names them."""
    status = ReleaseStatus.from_dict(current.to_dict())
    phase = ReleasePhase(status.phase)
    if phase in (ReleasePhase.PENDING, ReleasePhase.PROGRESSING, ReleasePhase.PAUSED):
        touched = sorted(n for n, r in status.regions.items() if RegionPhase(r.phase) != RegionPhase.PENDING)
        status.move(ReleasePhase.FAILED)
        status.completed_at = format_time(now)
        status.message = reason + (
            f" (regions {', '.join(touched)} keep what it applied until the app's next release)" if touched else ""
        )
        status.record(now, "failed", reason)
        return status
    if phase == ReleasePhase.ROLLING_BACK and not status.message.startswith(reason):
        status.message = reason
        status.record(now, "failed", reason)
        return status
    return None


def wedged(release: StoredRelease) -> str | None:
    """The region whose rollback cannot go on (its strategy ended Failed while rolling back: the
    previous release could not be restored there), or None."""
    if ReleasePhase(release.status.phase) != ReleasePhase.ROLLING_BACK:
        return None
    for name, region in release.status.regions.items():
        strategy = StrategyStatus.from_dict(region.strategy) if region.strategy else None
        if (
            RegionPhase(region.phase) == RegionPhase.ROLLING_BACK
            and strategy is not None
            and strategy.phase is StrategyPhase.FAILED
        ):
            return name
    return None


def _policy(app: AppSource) -> Policy:
    rollback = app.plan.rollback
    on_inconclusive = "fail" if any(c.on_inconclusive == "fail" for c in app.plan.analysis.checks) else "pause"
    return Policy(
        drain_first=rollback.drain_first,
        drain_percent=rollback.drain_target.percent,
        drain_within_seconds=rollback.drain_target.within.total_seconds(),
        quarantine=rollback.quarantine,
        revert_commit=rollback.revert_commit,
        on_inconclusive=on_inconclusive,
    )

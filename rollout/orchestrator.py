"""The promotion state machine for one release, as a pure function.

`decide(view, now)` takes everything gathered for a release (its spec and status, what each region's
strategy reached this pass, smoke-window outcomes, drain progress, responders' requests) and returns
the new status plus the actions for the executor. It never reads the world. Order of the steps is
fixed, as in Argo Rollouts' reconcile: requests, failures, rollback sequence, then forward progress.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from config.freezes import Freeze, active_freezes, frozen_until
from config.times import format_time, parse_time
from regions.analysis.model import Verdict
from rollout import approvals
from rollout.release import (
    DrainRecord,
    RegionPhase,
    RegionStatus,
    ReleasePhase,
    ReleaseSpec,
    ReleaseStatus,
    RevertRecord,
)
from strategies.model import Phase as StrategyPhase

# A strategy may abort on its own (a canary's failed analysis step puts its weight to 0 at once and
# restores the stable track); for the release that is a failure of the region all the same.
IN_FLIGHT = frozenset({ReleasePhase.PENDING, ReleasePhase.PROGRESSING, ReleasePhase.PAUSED, ReleasePhase.ROLLING_BACK})
STRATEGY_GAVE_UP = frozenset({StrategyPhase.FAILED, StrategyPhase.ROLLING_BACK, StrategyPhase.ROLLED_BACK})
TOUCHED = frozenset(
    {
        RegionPhase.PROGRESSING,
        RegionPhase.SMOKE,
        RegionPhase.SUCCEEDED,
        RegionPhase.FAILED,
        RegionPhase.DRAINING,
        RegionPhase.ROLLING_BACK,
        RegionPhase.ROLLED_BACK,
    }
)


@dataclass(frozen=True)
class Policy:
    drain_first: bool = True
    drain_percent: float = 99.0
    drain_within_seconds: float = 60.0
    quarantine: bool = True
    revert_commit: bool = False
    on_inconclusive: str = "pause"  # or "fail"


@dataclass(frozen=True)
class RegionView:
    """What this pass learnt about one region."""

    reachable: bool = True
    strategy_phase: StrategyPhase | None = None  # after this pass's strategy step; None: not started
    strategy_reason: str = ""
    smoke: Verdict | None = None  # the smoke window's verdict; None: none yet (SMOKE regions only)
    smoke_reason: str = ""
    drain_moved: float | None = None  # fraction of the region's traffic moved away (DRAINING only)


@dataclass(frozen=True)
class Request:
    """A responder's action (ReleaseAction), already authorised by RBAC."""

    action: str  # rollback | abort | pause | resume | promote | override-freeze | approve | refuse
    reason: str
    by: str
    region: str | None = None
    full: bool = False
    to_release: str | None = None  # rollback: return to this release instead of the one before
    wave: str | None = None  # approve | refuse: the wave whose gate it is for
    groups: tuple[str, ...] = ()  # the requester's groups, as the admission policy checked them


@dataclass(frozen=True)
class Dependency:
    """A release in flight (not finished) of an app this release's app `dependsOn` (release groups,
    config/groups.py), as the release index holds it: where it goes and where it passed."""

    app: str
    version: str
    release: str
    regions: frozenset[str]  # every region of its waves
    passed: frozenset[str] = frozenset()  # regions where it passed (promoted, smoke window passed)
    phase: str = ReleasePhase.PROGRESSING.value  # RollingBack / RolledBack: this release follows it back
    started_at: str | None = None
    completed_at: str | None = None

    def holds(self, region: str) -> bool:
        return ReleasePhase(self.phase) in IN_FLIGHT and region in self.regions and region not in self.passed

    def wait_text(self, region: str) -> str:
        return f"waiting for {self.app} {self.version} to pass in {region}"

    def rolled_back_during(self, status: ReleaseStatus) -> list[str]:
        """The regions `status` (a dependent's release) started while this release was in flight,
        when this one rolls (or rolled) back: the dependent's rollback follows. Empty otherwise."""
        if ReleasePhase(self.phase) not in (ReleasePhase.ROLLING_BACK, ReleasePhase.ROLLED_BACK):
            return []
        began, ended = parse_time(self.started_at), parse_time(self.completed_at)
        if began is None:
            return []
        return sorted(
            name
            for name, region in status.regions.items()
            if (at := parse_time(region.started_at)) is not None and at >= began and (ended is None or at <= ended)
        )


@dataclass(frozen=True)
class Dependent:
    """A release in flight of an app that depends on this release's app, that started regions while
    this release was in flight: when this release rolls back, that one rolls back first, region by
    region (reverse dependency order). `regions`: where it has not rolled back yet."""

    app: str
    version: str
    release: str
    regions: frozenset[str]

    def wait_text(self, region: str) -> str:
        return f"waiting for {self.app} {self.version} to pass in {region}"


@dataclass(frozen=True)
class ReleaseView:
    spec: ReleaseSpec
    status: ReleaseStatus
    policy: Policy
    regions: Mapping[str, RegionView]
    requests: tuple[Request, ...] = ()
    blocked_by: str | None = None  # another release of the app still active
    previous: tuple[str, str] | None = None  # (commit, version) live before this release started
    # Every freeze known (freezes.yaml at the last good commit, and responders' `rollout freeze`):
    # while one covers the app in a region, no region starts; in-flight ones finish, rollbacks run.
    freezes: tuple[Freeze, ...] = ()
    # The in-flight releases of the apps this one depends on: a region where one of them has not
    # passed yet does not start (rollbacks, drains and restores never wait for them).
    dependencies: tuple[Dependency, ...] = ()
    # When this release rolls back: the dependents' releases that roll back before it, per region.
    dependents: tuple[Dependent, ...] = ()


@dataclass(frozen=True)
class StartStrategy:
    region: str


@dataclass(frozen=True)
class BeginRollback:
    region: str
    reason: str


@dataclass(frozen=True)
class SetRegionWeight:
    region: str
    weight: int


@dataclass(frozen=True)
class Notify:
    # started | promoted | failed | drained | rolledBack | paused | succeeded | frozen | freezeOverride
    # | awaitingApproval | waitingForDependency
    event: str
    reason: str
    region: str | None = None
    warning: bool = False


Action = StartStrategy | BeginRollback | SetRegionWeight | Notify


@dataclass
class Draft:
    """The status and actions decided so far in one `decide` (a private copy of the status)."""

    status: ReleaseStatus
    actions: list[Action] = field(default_factory=list)
    skip_smoke: set[str] = field(default_factory=set)
    held: dict[str, list[Freeze]] = field(default_factory=dict)  # regions a freeze kept from starting
    awaiting: approvals.Closed | None = None  # the approval gate that kept a wave from starting
    waiting: dict[str, list[str]] = field(default_factory=dict)  # regions a dependency kept from starting


def decide(view: ReleaseView, now: datetime) -> tuple[ReleaseStatus, list[Action]]:
    out = Draft(copy.deepcopy(view.status))
    for request in view.requests:
        _apply_request(view, out, request, now)
    _follow_dependency_back(view, out, now)
    phase = ReleasePhase(out.status.phase)
    if phase == ReleasePhase.PENDING:
        _start(view, out, now)
    elif phase == ReleasePhase.PROGRESSING:
        _progress(view, out, now)
    elif phase == ReleasePhase.ROLLING_BACK:
        _roll_back(view, out, now)
    if ReleasePhase(out.status.phase) in (ReleasePhase.PENDING, ReleasePhase.PROGRESSING):
        _say_frozen(view, out, now)
        _say_awaiting(out, now)
        _say_waiting(out, now)
    elif ReleasePhase(out.status.phase) != ReleasePhase.PAUSED:
        out.status.frozen = ""  # rolling back or done: no freeze holds it any more
        out.status.awaiting_approval = {}  # nor any approval gate (rollbacks never wait for one)
        _say_waiting(out, now)  # nor a dependency
    return out.status, out.actions


# --- requests -------------------------------------------------------------------------------


def _apply_request(view: ReleaseView, out: Draft, request: Request, now: datetime) -> None:
    status = out.status
    phase = ReleasePhase(status.phase)
    status.record(now, request.action, request.reason, request.region, by=request.by)
    if request.action == "pause" and phase in (ReleasePhase.PENDING, ReleasePhase.PROGRESSING):
        status.move(ReleasePhase.PAUSED)
        out.actions.append(Notify("paused", f"paused by {request.by}: {request.reason}"))
    elif request.action == "resume" and phase == ReleasePhase.PAUSED:
        status.move(ReleasePhase.PROGRESSING if status.started_at else ReleasePhase.PENDING)
        for region in status.regions.values():
            if RegionPhase(region.phase) == RegionPhase.SMOKE and region.message.startswith("inconclusive"):
                region.smoke_started_at = format_time(now)  # judge on fresh evidence, not the empty window
                region.message = ""
    elif request.action == "promote" and phase in (ReleasePhase.PROGRESSING, ReleasePhase.PAUSED):
        _promote(view, out, request, now)
    elif request.action == "override-freeze" and phase in (
        ReleasePhase.PENDING,
        ReleasePhase.PROGRESSING,
        ReleasePhase.PAUSED,
    ):
        status.freeze_override = f"{request.by}: {request.reason}"
        out.actions.append(
            Notify("freezeOverride", f"freezes overridden by {request.by}: {request.reason}", warning=True)
        )
    elif request.action in approvals.VERDICTS and phase in (
        ReleasePhase.PENDING,
        ReleasePhase.PROGRESSING,
        ReleasePhase.PAUSED,
    ):
        entry = approvals.record(
            view.spec, status, request.action, request.wave or "", request.by, request.groups, request.reason, now
        )
        status.audit[-1].reason += f" (wave {entry.wave}: {entry.note})"
    elif request.action in ("rollback", "abort") and phase in (
        ReleasePhase.PROGRESSING,
        ReleasePhase.PAUSED,
        ReleasePhase.SUCCEEDED,
    ):
        target = request.region or _last_started(status)
        _fail(view, out, target, f"{request.action} requested by {request.by}: {request.reason}", now)
    else:
        status.audit[-1].reason += f" (ignored: release is {phase.value})"


def _promote(view: ReleaseView, out: Draft, request: Request, now: datetime) -> None:
    status = out.status
    if ReleasePhase(status.phase) == ReleasePhase.PAUSED:
        status.move(ReleasePhase.PROGRESSING)
    if request.full:
        status.promote_full = True  # every remaining smoke window is skipped, and says so
    wave = _wave_regions(view.spec, status.current_wave)
    for name in wave if request.region is None else [request.region]:
        region = status.regions.get(name)
        if region and RegionPhase(region.phase) == RegionPhase.SMOKE:
            out.skip_smoke.add(name)


# --- forward --------------------------------------------------------------------------------


def _start(view: ReleaseView, out: Draft, now: datetime) -> None:
    if view.blocked_by:
        out.status.message = f"waiting for release {view.blocked_by} of the app to finish"
        return
    first = view.spec.waves[0].regions
    if _gate_holds(view, out, 0, now):
        return  # not started at all: _say_awaiting tells which gate and how many approvals it has
    if first and all(_freeze_holds(view, out, name, now) or _dependency_holds(view, out, name) for name in first):
        return  # not started at all: _say_frozen / _say_waiting tell why
    out.held.clear()
    out.waiting.clear()
    status = out.status
    status.move(ReleasePhase.PROGRESSING)
    status.started_at = format_time(now)
    if view.previous:
        status.previous_commit, status.previous_version = view.previous
    for index, wave in enumerate(view.spec.waves):
        for name in wave.regions:
            status.regions.setdefault(name, RegionStatus(wave=index))
    status.record(now, "start", f"release {view.spec.version} from commit {view.spec.commit[:12]}")
    out.actions.append(Notify("started", f"version {view.spec.version} starts with wave {view.spec.waves[0].name}"))
    _progress(view, out, now)


def _progress(view: ReleaseView, out: Draft, now: datetime) -> None:
    status = out.status
    failed = _first_failure(view, status)
    if failed:
        _fail(view, out, *failed, now)
        _roll_back(view, out, now)
        return
    wave = view.spec.waves[status.current_wave]
    for name in wave.regions:
        _advance_region(view, out, name, wave.smoke_seconds, now)
    if ReleasePhase(status.phase) != ReleasePhase.PROGRESSING:
        return
    active = [
        n
        for n in wave.regions
        if RegionPhase(status.regions[n].phase) in (RegionPhase.PROGRESSING, RegionPhase.SMOKE, RegionPhase.WAITING)
    ]
    for name in wave.regions:
        region = status.regions[name]
        if RegionPhase(region.phase) == RegionPhase.PENDING and len(active) < wave.max_parallel:
            active.append(name)
            _start_region(view, out, name, now)
    if all(RegionPhase(status.regions[n].phase) == RegionPhase.SUCCEEDED for n in wave.regions):
        status.record(now, "wave-passed", f"wave {wave.name} passed its smoke window")
        if status.current_wave + 1 < len(view.spec.waves):
            status.current_wave += 1
            out.actions.append(
                Notify(
                    "promoted", f"wave {wave.name} passed; starting wave {view.spec.waves[status.current_wave].name}"
                )
            )
            _progress(view, out, now)
        else:
            status.move(ReleasePhase.SUCCEEDED)
            status.completed_at = format_time(now)
            status.message = "every wave passed"
            out.actions.append(Notify("succeeded", f"version {view.spec.version} is live in every region"))


def _start_region(view: ReleaseView, out: Draft, name: str, now: datetime) -> None:
    region = out.status.regions[name]
    if _gate_holds(view, out, region.wave, now):
        return  # stays Pending: its wave's approval gate is closed
    if _freeze_holds(view, out, name, now):
        return  # stays Pending: a new region never starts during a freeze
    if _dependency_holds(view, out, name):
        return  # stays Pending: a dependency's release has not passed this region yet
    if region.message.startswith("waiting for "):
        region.message = ""
    if not view.regions.get(name, RegionView()).reachable:
        region.move(RegionPhase.WAITING)
        region.message = "cluster unreachable; the wave waits for it"
        return
    region.move(RegionPhase.PROGRESSING)
    region.started_at = region.started_at or format_time(now)
    out.status.record(now, "region-start", "strategy started", name)
    out.actions.append(StartStrategy(name))


def _advance_region(view: ReleaseView, out: Draft, name: str, smoke_seconds: float, now: datetime) -> None:
    region = out.status.regions[name]
    seen = view.regions.get(name, RegionView())
    phase = RegionPhase(region.phase)
    if (
        phase == RegionPhase.WAITING
        and seen.reachable
        and seen.strategy_phase is None
        and _freeze_holds(view, out, name, now)
    ):
        region.message = "cluster reachable again; not started while frozen"
    elif (
        phase == RegionPhase.WAITING
        and seen.reachable
        and seen.strategy_phase is None
        and not region.strategy
        and _dependency_holds(view, out, name)
    ):
        region.message = "cluster reachable again; " + "; ".join(out.waiting[name])
    elif phase == RegionPhase.WAITING and seen.reachable:
        region.message = ""
        region.move(RegionPhase.PROGRESSING)
        if seen.strategy_phase is None:
            region.started_at = region.started_at or format_time(now)
            out.actions.append(StartStrategy(name))
    elif phase == RegionPhase.PROGRESSING and not seen.reachable:
        region.move(RegionPhase.WAITING)
        region.message = "cluster unreachable; the wave waits for it"
    elif phase == RegionPhase.PROGRESSING and seen.strategy_phase == StrategyPhase.SUCCEEDED:
        region.move(RegionPhase.SMOKE)
        region.smoke_started_at = format_time(now)
        region.smoke_seconds = smoke_seconds
        out.status.record(now, "smoke-start", f"fully on the release; smoke window {smoke_seconds:g}s", name)
    elif phase == RegionPhase.PROGRESSING and seen.strategy_phase == StrategyPhase.PAUSED:
        region.message = seen.strategy_reason or "strategy paused (waiting for promote)"
    elif phase == RegionPhase.SMOKE:
        _judge_smoke(view, out, name, now)


def _judge_smoke(view: ReleaseView, out: Draft, name: str, now: datetime) -> None:
    region = out.status.regions[name]
    seen = view.regions.get(name, RegionView())
    started = parse_time(region.smoke_started_at)
    assert started is not None
    elapsed = (now - started).total_seconds()
    skipped = name in out.skip_smoke or out.status.promote_full
    if not skipped and elapsed < (region.smoke_seconds or 0):
        return
    if not skipped and seen.smoke in (Verdict.INCONCLUSIVE, None) and (region.smoke_seconds or 0) > 0:
        reason = seen.smoke_reason or "the smoke window ended without enough evidence"
        if view.policy.on_inconclusive == "fail":
            _fail(view, out, name, f"inconclusive: {reason}", now)
            return
        region.message = f"inconclusive: {reason}"
        out.status.move(ReleasePhase.PAUSED)
        out.status.record(now, "pause", f"smoke window inconclusive: {reason}", name)
        out.actions.append(Notify("paused", f"smoke window inconclusive in {name}: {reason}", name, warning=True))
        return
    region.move(RegionPhase.SUCCEEDED)
    region.completed_at = format_time(now)
    why = "smoke window skipped by promote" if skipped else f"smoke window of {region.smoke_seconds:g}s passed"
    out.status.record(now, "region-passed", why, name)


def _first_failure(view: ReleaseView, status: ReleaseStatus) -> tuple[str, str] | None:
    for name, seen in view.regions.items():
        region = status.regions.get(name)
        if region is None:
            continue
        phase = RegionPhase(region.phase)
        if phase == RegionPhase.PROGRESSING and seen.strategy_phase in STRATEGY_GAVE_UP:
            return name, f"strategy failed: {seen.strategy_reason or 'no reason given'}"
        if phase == RegionPhase.SMOKE and seen.smoke == Verdict.FAILURE:
            return name, f"smoke check failed: {seen.smoke_reason or 'no reason given'}"
    return None


# --- freezes ----------------------------------------------------------------------------------


def _freeze_holds(view: ReleaseView, out: Draft, name: str, now: datetime) -> bool:
    """Whether a freeze keeps region `name` from starting now (noted in `out.held`)."""
    if out.status.freeze_override:
        return False
    active = active_freezes(view.freezes, view.spec.app, name, now)
    if active:
        out.held[name] = active
    return bool(active)


def _say_frozen(view: ReleaseView, out: Draft, now: datetime) -> None:
    """The release's status says which freeze holds it and until when; the Event and the audit
    entry come once per freeze (when the text changes), not once per pass."""
    status = out.status
    if not out.held:
        if status.frozen:
            status.record(now, "unfrozen", f"no freeze holds the release any more (was: {status.frozen})")
            if status.message == status.frozen:
                status.message = ""
            status.frozen = ""
        return
    freezes = list({f.name: f for fs in out.held.values() for f in fs}.values())
    until = frozen_until(freezes, now)
    text = (
        f"frozen in {', '.join(sorted(out.held))}: {'; '.join(f.describe(now) for f in freezes)}; "
        f"no new region starts until {format_time(until) if until else 'the freeze is lifted'}"
    )
    if _which(text) != _which(status.frozen):  # a freeze moving its end is not news
        status.record(now, "frozen", text)
        out.actions.append(Notify("frozen", text, warning=True))
    status.frozen = text
    if not status.message or status.message == status.frozen or status.message.startswith("frozen in "):
        status.message = text


def _which(frozen: str) -> str:
    return frozen.split(" until ")[0]


# --- release groups (dependsOn) ---------------------------------------------------------------


def _dependency_holds(view: ReleaseView, out: Draft, name: str) -> bool:
    """Whether a dependency's release in flight, not yet passed in region `name`, keeps the region
    from starting now (noted in `out.waiting`). Nobody needs to act: it is not a person's wait."""
    texts = [d.wait_text(name) for d in view.dependencies if d.holds(name)]
    if texts:
        out.waiting[name] = texts
        region = out.status.regions.get(name)
        if region is not None and RegionPhase(region.phase) == RegionPhase.PENDING:
            region.message = "; ".join(texts)
    return bool(texts)


def _say_waiting(out: Draft, now: datetime) -> None:
    """status.waitingFor and the message say which dependency the release waits for, where; one
    audit entry and one Event per wait (a dependency and a region), not one per pass."""
    status = out.status
    before = status.waiting_for
    clauses = sorted({text for texts in out.waiting.values() for text in texts})
    text = "; ".join(clauses)
    seen = set(before.split("; ")) if before else set()
    for region, texts in sorted(out.waiting.items()):
        for clause in texts:
            if clause not in seen:
                seen.add(clause)
                status.record(now, "waiting", clause, region)
                out.actions.append(Notify("waitingForDependency", clause, region))
    status.waiting_for = text
    if not status.message or (before and status.message == before):
        status.message = text


def _follow_dependency_back(view: ReleaseView, out: Draft, now: datetime) -> None:
    """A dependency's release rolls back (or rolled back) after this release started regions while
    it was in flight: this release rolls back too (its rollback comes first in each region: the
    dependency's waits for it, `_dependents_hold`). Quarantined by the plan's policy, as any rollback."""
    status = out.status
    if ReleasePhase(status.phase) not in (ReleasePhase.PROGRESSING, ReleasePhase.PAUSED):
        return
    for dependency in view.dependencies:
        regions = dependency.rolled_back_during(status)
        if regions:
            reason = (
                f"dependency {dependency.app} {dependency.version} rolled back; this release started "
                f"{', '.join(regions)} while it was in flight and rolls back with it"
            )
            _fail(view, out, None, reason, now)
            status.record(now, "failed", reason)
            out.actions.append(Notify("failed", reason, warning=True))
            return


def _dependents_hold(view: ReleaseView, out: Draft, name: str, now: datetime) -> bool:
    """Whether a dependent's release must roll back in region `name` before this release does
    (reverse dependency order); said once per region in its message and the audit."""
    waiting = [d for d in view.dependents if name in d.regions]
    if not waiting:
        return False
    region = out.status.regions[name]
    text = "rollback waits for " + ", ".join(f"{d.app} {d.version}" for d in waiting) + f" to roll back in {name} first"
    if region.message != text:
        region.message = text
        out.status.record(now, "rollback-waits", text, name)
    return True


# --- approval gates (rollout/approvals.py) ----------------------------------------------------


def _gate_holds(view: ReleaseView, out: Draft, index: int, now: datetime) -> bool:
    """Whether wave `index`'s approval gate keeps it from starting now (noted in `out.awaiting`);
    a gate with enough approvals opens here, once, with an audit entry."""
    spec, status = view.spec, out.status
    if index >= len(spec.waves) or spec.waves[index].approval is None or approvals.wave_started(spec, status, index):
        return False
    closed = approvals.closed_gate(spec, status, index, now)
    if closed is not None:
        out.awaiting = closed
        return True
    wave = spec.waves[index].name
    status.approved_waves.append(wave)
    who = sorted({a.by for a in status.approvals if a.wave == wave and a.counted and a.verdict == approvals.APPROVE})
    status.record(now, "approved", f"wave {wave} approved by {', '.join(who)}; its regions may start")
    return False


def _say_awaiting(out: Draft, now: datetime) -> None:
    """status.awaitingApproval and the message say which gate holds the release and how many
    approvals it has; the audit entry and the Event come once per gate, not once per pass."""
    status = out.status
    if out.awaiting is None:
        if status.awaiting_approval and status.message.startswith("awaiting approval for wave "):
            status.message = ""
        status.awaiting_approval = {}
        return
    text = out.awaiting.text()
    if status.awaiting_approval.get("wave") != out.awaiting.wave:
        status.record(now, "awaiting-approval", text)
        out.actions.append(Notify("awaitingApproval", text))
    status.awaiting_approval = out.awaiting.marker()
    if not status.message or status.message.startswith("awaiting approval for wave "):
        status.message = text


# --- failure, drain, rollback ---------------------------------------------------------------


def _fail(view: ReleaseView, out: Draft, region_name: str | None, reason: str, now: datetime) -> None:
    status = out.status
    status.move(ReleasePhase.ROLLING_BACK)
    status.message = reason
    if region_name is None:
        return
    status.failed_region = region_name
    region = status.regions[region_name]
    if RegionPhase(region.phase) in (RegionPhase.PROGRESSING, RegionPhase.SMOKE):
        region.move(RegionPhase.FAILED)
    region.message = reason
    started = parse_time(region.started_at)
    if started is not None:
        status.detect_seconds = round((now - started).total_seconds(), 3)
    status.record(now, "failed", reason, region_name)
    out.actions.append(Notify("failed", reason, region_name, warning=True))


def _roll_back(view: ReleaseView, out: Draft, now: datetime) -> None:
    status = out.status
    failed = status.failed_region
    if failed and not _handle_failed_region(view, out, failed, now):
        return
    for name in _rollback_order(status):
        region = status.regions[name]
        phase = RegionPhase(region.phase)
        seen = view.regions.get(name, RegionView())
        if phase == RegionPhase.ROLLED_BACK:
            continue
        if phase == RegionPhase.ROLLING_BACK:
            if seen.strategy_phase == StrategyPhase.ROLLED_BACK:
                _region_rolled_back(out, name, now)
                continue
            return  # one region at a time, in reverse order
        if not seen.reachable:
            region.message = "cluster unreachable; rollback waits for it"
            return
        if _dependents_hold(view, out, name, now):
            return  # reverse dependency order: the dependents roll back in this region first
        region.move(RegionPhase.ROLLING_BACK)
        out.actions.append(BeginRollback(name, status.message))
        status.record(now, "rollback-start", f"rolling back to {status.previous_version or 'nothing'}", name)
        return
    status.move(ReleasePhase.ROLLED_BACK)
    status.completed_at = format_time(now)
    status.quarantined = view.policy.quarantine
    status.record(
        now,
        "rolled-back",
        "every touched region is back on the previous release"
        + ("; release quarantined" if status.quarantined else ""),
    )
    if view.policy.revert_commit and status.revert is None:
        # recorded with the rollback; rollout/revert.py pushes it (the quarantine does not wait for it)
        status.revert = RevertRecord()
        status.record(now, "revert-commit", "a commit reverting the release's change will be pushed to Git")
    out.actions.append(Notify("rolledBack", status.message, failed, warning=True))


def _handle_failed_region(view: ReleaseView, out: Draft, name: str, now: datetime) -> bool:
    """Drain, roll back and restore the failed region. True once it is fully handled."""
    status = out.status
    region = status.regions[name]
    seen = view.regions.get(name, RegionView())
    phase = RegionPhase(region.phase)
    if phase in (
        RegionPhase.FAILED,
        RegionPhase.SUCCEEDED,
        RegionPhase.WAITING,
        RegionPhase.PROGRESSING,
        RegionPhase.SMOKE,
    ):
        if view.policy.drain_first:
            region.move(RegionPhase.DRAINING)
            status.drains.append(
                DrainRecord(
                    region=name,
                    started_at=format_time(now),
                    target_seconds=view.policy.drain_within_seconds,
                    target_percent=view.policy.drain_percent,
                )
            )
            status.record(
                now,
                "drain",
                f"weight 0 to stop the bleeding (target {view.policy.drain_percent:g}% "
                f"within {view.policy.drain_within_seconds:g}s)",
                name,
            )
            out.actions.append(SetRegionWeight(name, 0))
            return False
        if _dependents_hold(view, out, name, now):
            return False
        region.move(RegionPhase.ROLLING_BACK)
        out.actions.append(BeginRollback(name, status.message))
        status.record(now, "rollback-start", f"rolling back to {status.previous_version or 'nothing'}", name)
        return False
    if phase == RegionPhase.DRAINING:
        drain = _drain_of(status, name)
        if drain.completed_at is None:
            elapsed = (now - (parse_time(drain.started_at) or now)).total_seconds()
            reached = seen.drain_moved is not None and seen.drain_moved * 100 >= view.policy.drain_percent
            if not reached and elapsed < view.policy.drain_within_seconds:
                return False
            _drained(view, out, name, drain, seen.drain_moved, reached, elapsed, now)
        if _dependents_hold(view, out, name, now):
            return False  # drained (never delayed); its rollback follows the dependents' here
        region.move(RegionPhase.ROLLING_BACK)
        out.actions.append(BeginRollback(name, status.message))
        status.record(now, "rollback-start", f"rolling back to {status.previous_version or 'nothing'}", name)
        return False
    if phase == RegionPhase.ROLLING_BACK:
        if seen.strategy_phase != StrategyPhase.ROLLED_BACK:
            return False
        _region_rolled_back(out, name, now)
        return True
    return phase == RegionPhase.ROLLED_BACK


def _drained(
    view: ReleaseView,
    out: Draft,
    name: str,
    drain: DrainRecord,
    moved_share: float | None,
    reached: bool,
    elapsed: float,
    now: datetime,
) -> None:
    """The failed region's drain reached its target (or its time): recorded once."""
    drain.completed_at = format_time(now)
    drain.seconds = round(elapsed, 3)
    drain.met = reached and elapsed <= view.policy.drain_within_seconds
    moved = f"{moved_share * 100:.1f}%" if moved_share is not None else "unmeasured"
    out.status.record(
        now,
        "drained",
        f"{moved} of traffic moved in {elapsed:.1f}s ({'met' if drain.met else 'missed'} target)",
        name,
    )
    out.actions.append(Notify("drained", f"{moved} moved in {elapsed:.1f}s", name))


def _region_rolled_back(out: Draft, name: str, now: datetime) -> None:
    status = out.status
    status.regions[name].move(RegionPhase.ROLLED_BACK)
    status.regions[name].completed_at = format_time(now)
    status.record(now, "region-rolled-back", f"back on {status.previous_version or 'nothing'}", name)
    drain = next((d for d in status.drains if d.region == name and not d.restored_at), None)
    if drain is not None:
        drain.restored_at = format_time(now)
        status.record(now, "restore", "rollback healthy; traffic restored", name)
        out.actions.append(SetRegionWeight(name, 100))


def _drain_of(status: ReleaseStatus, name: str) -> DrainRecord:
    return next(d for d in reversed(status.drains) if d.region == name)


def _rollback_order(status: ReleaseStatus) -> list[str]:
    """Touched regions other than the failed one, most recently started first."""
    touched = [
        (_started(r), n)
        for n, r in status.regions.items()
        if RegionPhase(r.phase) in TOUCHED | {RegionPhase.WAITING} and n != status.failed_region and r.started_at
    ]
    return [n for _, n in sorted(touched, reverse=True)]


def _last_started(status: ReleaseStatus) -> str | None:
    """The region whose rollout started most recently (what a rollback without --region fails)."""
    touched = sorted((_started(r), n) for n, r in status.regions.items() if r.started_at)
    return touched[-1][1] if touched else None


def _started(region: RegionStatus) -> datetime:
    return parse_time(region.started_at) or datetime.min.replace(tzinfo=UTC)


def _wave_regions(spec: ReleaseSpec, index: int) -> tuple[str, ...]:
    return spec.waves[index].regions if index < len(spec.waves) else ()

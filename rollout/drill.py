"""`rollout drill APP --region R`: rehearse drain and rollback in one region, for real, and measure them.

A drill is a ReleaseAction with `spec.action: drill`. The controller advances it once per reconcile
tick until it is Done (every step met its target) or Failed; the action's status is the drill's
memory (level-triggered: a restarted controller resumes at the recorded step, with the recorded
start times, so the measured times include any outage).

The checklist, in order; every step records expected, observed, passed and seconds:

1. drain: R's global weight for the app goes to 0; expected: at least the plan's
   `rollback.drainTarget.percent` of R's request rate (the controller's `drain_query`, measured
   before the drain) has moved away within `drainTarget.within`.
2. rollback: R is rolled back to the release before the app's current one with the plan's own
   strategy rollback path (the one an automated rollback uses); expected: the strategy reaches
   RolledBack and R's serving Deployments carry the previous release, within the plan's
   `progressDeadline`.
3. roll forward: R returns to the current release through the same restore path with the current
   release as its target, not through the forward steps: the release already passed its analysis
   in R, and a drained region has no traffic to analyse. Expected: the current release is live in R
   again (reported as Succeeded) within `progressDeadline`.
4. restore: R's weight goes back to 100; expected: R's request rate is back to at least 90% of
   the pre-drill rate within `drainTarget.within`.

A step that misses its target is recorded as failed and the drill goes on, because steps 3 and 4
are also what puts the region back. Two exceptions: when step 3 fails, R is not known to run the
current release, so it is left drained (step 4 says so and how to restore it); and when a new
release of the app starts during the drill, the drill stops, restores R's weight and leaves R to
that release.

Refused (state Rejected, with the reason) before anything changes:
- the app has no release in this namespace, or R is not one of the app's regions;
- a release of the app is in progress (pending, progressing, paused, rolling back): a drill would
  fight it for R;
- there is no earlier release to roll back to, or R does not run the current release (the
  rehearsal must start from the known-good state it returns to);
- another drill of the app is running;
- R's tier is `high` and `spec.full` (`--force`) is not set: draining a high-traffic region moves a
  large share of users onto the other regions, which is a capacity test of its own and must be
  asked for explicitly. Canary, low and standard regions may be drilled; the CLI says that the
  drill acts for real.

Layout: the pure part (`plan_drill`, `advance`) decides from observations; `DrillRunner` gathers the
observations through the reconciler's adapters, drives the strategy one step per tick, writes the
status, then sets weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from config.times import format_time, parse_time
from rollout.release import ReleasePhase
from rollout.store import ACTIONS, GROUP, VERSION, StoredRelease
from strategies.driver import ReleaseAt, drive
from strategies.errors import TemporaryError
from strategies.model import Phase as StrategyPhase
from strategies.model import RegionRollout, Snapshot, StrategyStatus

log = structlog.get_logger("rollout.drill")

STEPS = ("drain", "rollback", "roll forward", "restore")
DRAIN, ROLLBACK, FORWARD, RESTORE = range(4)
RUNNING, DONE, FAILED, REJECTED = "Running", "Done", "Failed", "Rejected"
FINAL = frozenset({DONE, FAILED, REJECTED})
BUSY = frozenset({ReleasePhase.PENDING, ReleasePhase.PROGRESSING, ReleasePhase.PAUSED, ReleasePhase.ROLLING_BACK})
RESTORE_PERCENT = 90.0


# --- value types -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseRef:
    name: str
    commit: str
    version: str

    @property
    def number(self) -> str:
        return self.commit[:12]

    def label(self) -> str:
        return f"{self.version} ({self.number})"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "commit": self.commit, "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReleaseRef:
        return cls(str(data["name"]), str(data["commit"]), str(data["version"]))


@dataclass(frozen=True)
class ReleaseInfo:
    """What the drill needs to know of one release of the app."""

    ref: ReleaseRef
    phase: str
    created: str
    regions: tuple[str, ...] = ()
    previous: tuple[str, str] | None = None  # (commit, version) the release replaced
    region_phase: str | None = None  # its phase in the drilled region
    region_strategy: Mapping[str, Any] = field(default_factory=dict)  # its strategy status there

    @classmethod
    def of(cls, stored: StoredRelease, region: str) -> ReleaseInfo:
        status = stored.status
        previous = (status.previous_commit, status.previous_version) \
            if status.previous_commit and status.previous_version else None
        here = status.regions.get(region)
        return cls(ReleaseRef(stored.name, stored.spec.commit, stored.spec.version), status.phase, stored.created,
                   tuple(r for w in stored.spec.waves for r in w.regions), previous,
                   here.phase if here else None, dict(here.strategy) if here else {})


@dataclass(frozen=True)
class Targets:
    drain_percent: float
    drain_within_s: float
    deadline_s: float  # the strategy's progressDeadline: rollback and roll forward each
    restore_percent: float = RESTORE_PERCENT

    def to_dict(self) -> dict[str, float]:
        return {"drainPercent": self.drain_percent, "drainWithinSeconds": self.drain_within_s,
                "deadlineSeconds": self.deadline_s, "restorePercent": self.restore_percent}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Targets:
        return cls(float(data["drainPercent"]), float(data["drainWithinSeconds"]), float(data["deadlineSeconds"]),
                   float(data.get("restorePercent", RESTORE_PERCENT)))


@dataclass(frozen=True)
class Setup:
    """Observations for a drill seen for the first time (everything a refusal depends on)."""

    app: str
    region: str
    force: bool
    releases: tuple[ReleaseInfo, ...]  # the app's releases, oldest first
    tier: str | None = None  # R's tier in the current release's repository; None: unknown region
    targets: Targets | None = None  # from the current release's plan
    region_release: str | None = None  # release number R's serving Deployments carry
    other_drill: str | None = None  # another running drill of the app
    problem: str | None = None  # the region could not be looked at (unreachable, invalid repository)


@dataclass(frozen=True)
class Facts:
    """Fixed when the drill starts; kept in the status."""

    app: str
    region: str
    current: ReleaseRef
    previous: ReleaseRef
    targets: Targets
    region_strategy: Mapping[str, Any] = field(default_factory=dict)  # colours of a blue/green region

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.app, "region": self.region, "current": self.current.to_dict(),
                "previous": self.previous.to_dict(), "targets": self.targets.to_dict(),
                "regionStrategy": dict(self.region_strategy)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Facts:
        return cls(str(data["app"]), str(data["region"]), ReleaseRef.from_dict(data["current"]),
                   ReleaseRef.from_dict(data["previous"]), Targets.from_dict(data["targets"]),
                   dict(data.get("regionStrategy") or {}))


@dataclass(frozen=True)
class Item:
    step: str
    expected: str
    observed: str = ""
    passed: bool | None = None  # None: not concluded yet
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "expected": self.expected, "observed": self.observed}
        if self.passed is not None:
            out["passed"] = self.passed
        if self.seconds is not None:
            out["seconds"] = round(self.seconds, 1)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Item:
        seconds = data.get("seconds")
        return cls(str(data["step"]), str(data.get("expected", "")), str(data.get("observed", "")),
                   data.get("passed"), float(seconds) if seconds is not None else None)


@dataclass(frozen=True)
class DrillState:
    state: str = ""  # "" (not seen yet) | Running | Done | Failed | Rejected
    message: str = ""
    step: int = DRAIN
    started_at: datetime | None = None
    step_started_at: datetime | None = None
    finished_at: datetime | None = None
    baseline_rate: float | None = None  # R's request rate before the drain
    strategy: Mapping[str, Any] = field(default_factory=dict)  # the strategy status of step 2 or 3
    facts: Facts | None = None
    checklist: tuple[Item, ...] = ()
    left_drained: bool = False

    @property
    def passed(self) -> bool:
        return self.state == DONE

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "message": self.message,
                               "checklist": [i.to_dict() for i in self.checklist]}
        for key, value in (("startedAt", self.started_at), ("finishedAt", self.finished_at)):
            if value is not None:
                out[key] = format_time(value)
        drill: dict[str, Any] = {"step": self.step, "strategy": dict(self.strategy), "leftDrained": self.left_drained}
        if self.step_started_at is not None:
            drill["stepStartedAt"] = format_time(self.step_started_at)
        if self.baseline_rate is not None:
            drill["baselineRate"] = self.baseline_rate
        if self.facts is not None:
            drill["facts"] = self.facts.to_dict()
        if self.facts is not None or self.state == RUNNING:
            out["drill"] = drill
        return out

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> DrillState:
        status = status or {}
        drill = status.get("drill") or {}
        step_started = drill.get("stepStartedAt")
        return cls(state=str(status.get("state") or ""), message=str(status.get("message") or ""),
                   step=int(drill.get("step", DRAIN)), started_at=parse_time(status.get("startedAt")),
                   step_started_at=parse_time(step_started),
                   finished_at=parse_time(status.get("finishedAt")),
                   baseline_rate=drill.get("baselineRate"), strategy=dict(drill.get("strategy") or {}),
                   facts=Facts.from_dict(drill["facts"]) if drill.get("facts") else None,
                   checklist=tuple(Item.from_dict(i) for i in status.get("checklist") or []),
                   left_drained=bool(drill.get("leftDrained", False)))


@dataclass(frozen=True)
class Observations:
    """What the runner saw this tick (only what the current step needs is filled in)."""

    setup: Setup | None = None  # first tick only
    rate: float | None = None  # R's request rate now; None: not measured
    weight: int | None = None  # R's global weight now
    strategy: Mapping[str, Any] | None = None  # the strategy status after this tick's step (steps 2-3)
    region_release: str | None = None  # release number(s) on R's serving Deployments
    interrupted_by: str | None = None  # a release of the app that became active during the drill


@dataclass(frozen=True)
class SetWeight:
    region: str
    weight: int


# --- pure decisions ----------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """Without None values (the API server drops them; a stored status must compare equal)."""
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def current_and_previous(releases: Sequence[ReleaseInfo]) -> tuple[ReleaseInfo, ReleaseRef] | None:
    """The app's live release (its newest Succeeded one) and the release it replaced."""
    ordered = sorted(releases, key=lambda r: (r.created, r.ref.name))
    good = [r for r in ordered if r.phase == ReleasePhase.SUCCEEDED.value]
    if not good:
        return None
    current = good[-1]
    if current.previous is not None:
        commit, version = current.previous
        name = next((r.ref.name for r in ordered if r.ref.commit == commit), f"{current.ref.name.rsplit('-', 1)[0]}"
                    f"-{commit[:12]}")
        return current, ReleaseRef(name, commit, version)
    earlier = [r for r in good[:-1] if r.ref.commit != current.ref.commit]
    return (current, earlier[-1].ref) if earlier else None


def plan_drill(setup: Setup) -> Facts | str:
    """The facts the drill works from, or why it is refused."""
    app, region = setup.app, setup.region
    if not setup.releases:
        return f"unknown app {app!r}: no release of it exists"
    busy = [r.ref.name for r in setup.releases if r.phase in {p.value for p in BUSY}]
    if busy:
        return f"release {busy[0]} of {app} is in progress: drill when no release is rolling out"
    picked = current_and_previous(setup.releases)
    if picked is None:
        return f"{app} has no earlier release to roll back to: a drill needs a previous release"
    current, previous = picked
    if region not in current.regions or setup.tier is None:
        known = ", ".join(current.regions) or "none"
        return f"{region!r} is not a region of {app} (its regions: {known})"
    if setup.other_drill:
        return f"drill {setup.other_drill} of {app} is still running: one drill per app at a time"
    if setup.tier == "high" and not setup.force:
        return (f"{region} is a high-traffic region: draining it moves a large share of users onto the other "
                f"regions; pass --force to drill it anyway")
    if setup.problem:
        return f"cannot drill {region}: {setup.problem}"
    if current.region_phase != "Succeeded":
        return f"{current.ref.name} is not live in {region} (phase {current.region_phase}): nothing to rehearse"
    if setup.region_release != current.ref.number:
        return (f"{region} does not run the current release {current.ref.label()} "
                f"(its Deployments carry {setup.region_release or 'nothing'}): drill from a known-good state")
    if setup.targets is None:
        return f"the plan of {current.ref.name} could not be read"
    return Facts(app, region, current.ref, previous, setup.targets, dict(current.region_strategy))


def checklist(facts: Facts) -> tuple[Item, ...]:
    t, region = facts.targets, facts.region
    return (
        Item(STEPS[DRAIN], f"weight 0; >= {t.drain_percent:g}% of {region}'s traffic moved within "
                           f"{t.drain_within_s:g}s"),
        Item(STEPS[ROLLBACK], f"RolledBack to {facts.previous.label()} within {t.deadline_s:g}s"),
        Item(STEPS[FORWARD], f"Succeeded: {facts.current.label()} live again within {t.deadline_s:g}s"),
        Item(STEPS[RESTORE], f"weight 100; traffic back to >= {t.restore_percent:g}% of the pre-drill rate "
                             f"within {t.drain_within_s:g}s"),
    )


def rollback_start(facts: Facts, now: datetime) -> dict[str, Any]:
    """Step 2: the current release's own status in R, turned to rolling back (keeps blue/green colours)."""
    recorded = StrategyStatus.from_dict(facts.region_strategy) if facts.region_strategy else StrategyStatus()
    base = replace(recorded, phase=StrategyPhase.SUCCEEDED, step=0, finished_at=None)
    return _clean(base.to(StrategyPhase.ROLLING_BACK, now, reason="Drill",
                          message="drill: rollback rehearsal").to_dict())


def forward_start(facts: Facts, now: datetime) -> dict[str, Any]:
    """Step 3: a restore whose target is the current release; for blue/green the colours swap roles
    (the current release's colour is the one to restore, the previous one's is scaled down)."""
    recorded = StrategyStatus.from_dict(facts.region_strategy) if facts.region_strategy else StrategyStatus()
    base = StrategyStatus(phase=StrategyPhase.SUCCEEDED, active_color=recorded.new_color,
                          new_color=recorded.active_color)
    return _clean(base.to(StrategyPhase.ROLLING_BACK, now, reason="Drill", message="drill: roll forward").to_dict())


def advance(state: DrillState, obs: Observations, now: datetime) -> tuple[DrillState, list[SetWeight]]:
    """The drill's next state and the global weight to hold. Pure."""
    if state.state in FINAL:
        return state, []
    if not state.state:
        return _start(obs, now)
    assert state.facts is not None and state.step_started_at is not None
    facts = state.facts
    elapsed = (now - state.step_started_at).total_seconds()
    if obs.interrupted_by and state.step < RESTORE:
        reason = f"interrupted: release {obs.interrupted_by} started; {facts.region} is left to it"
        items = list(state.checklist)
        for i in range(state.step, RESTORE):
            items[i] = replace(items[i], observed=reason if i == state.step else "skipped", passed=False,
                               seconds=elapsed if i == state.step else None)
        state = replace(state, checklist=tuple(items), message=reason)
        return _enter(state, RESTORE, now)
    step = state.step
    if step == DRAIN:
        return _drain(state, obs, now, elapsed)
    if step in (ROLLBACK, FORWARD):
        return _strategy_step(state, obs, now, elapsed)
    return _restore(state, obs, now, elapsed)


def _start(obs: Observations, now: datetime) -> tuple[DrillState, list[SetWeight]]:
    assert obs.setup is not None, "a new drill needs its setup observations"
    planned = plan_drill(obs.setup)
    if isinstance(planned, str):
        return DrillState(state=REJECTED, message=planned, finished_at=now), []
    baseline = obs.rate if obs.rate and obs.rate > 0 else None
    state = DrillState(state=RUNNING, message=f"draining {planned.region}", step=DRAIN, started_at=now,
                       step_started_at=now, baseline_rate=baseline, facts=planned, checklist=checklist(planned))
    return state, [SetWeight(planned.region, 0)]


def _conclude(state: DrillState, passed: bool, observed: str, seconds: float) -> DrillState:
    items = list(state.checklist)
    items[state.step] = replace(items[state.step], observed=observed, passed=passed, seconds=seconds)
    return replace(state, checklist=tuple(items))


def _enter(state: DrillState, step: int, now: datetime) -> tuple[DrillState, list[SetWeight]]:
    assert state.facts is not None
    region = state.facts.region
    if step == ROLLBACK:
        return replace(state, step=step, step_started_at=now, strategy=rollback_start(state.facts, now),
                       message=f"rolling {region} back to {state.facts.previous.label()}"), [SetWeight(region, 0)]
    if step == FORWARD:
        return replace(state, step=step, step_started_at=now, strategy=forward_start(state.facts, now),
                       message=f"rolling {region} forward to {state.facts.current.label()}"), [SetWeight(region, 0)]
    if step == RESTORE:
        return replace(state, step=step, step_started_at=now, strategy={},
                       message=state.message if state.message.startswith("interrupted") else
                       f"restoring {region}'s traffic"), [SetWeight(region, 100)]
    return _finish(state, now)


def _finish(state: DrillState, now: datetime) -> tuple[DrillState, list[SetWeight]]:
    assert state.facts is not None
    ok = all(i.passed for i in state.checklist)
    parts = [f"{i.step} {i.seconds:.1f}s" if i.seconds is not None else f"{i.step} -" for i in state.checklist]
    failed = [f"{i.step}: {i.observed}" for i in state.checklist if not i.passed]
    message = (f"drill passed: {', '.join(parts)}" if ok else f"drill failed: {'; '.join(failed)}")
    weight = 0 if state.left_drained else 100
    return replace(state, state=DONE if ok else FAILED, step=len(STEPS), message=message, finished_at=now,
                   strategy={}), [SetWeight(state.facts.region, weight)]


def _drain(state: DrillState, obs: Observations, now: datetime,
           elapsed: float) -> tuple[DrillState, list[SetWeight]]:
    assert state.facts is not None
    t, region = state.facts.targets, state.facts.region
    hold = [SetWeight(region, 0)]
    if state.baseline_rate is None:
        state = _conclude(state, False, f"no request rate measured in {region} before the drain (no metrics or "
                                        f"no traffic): the drain cannot be measured", elapsed)
        return _enter(state, ROLLBACK, now)
    moved = None if obs.rate is None else max(0.0, 1.0 - obs.rate / state.baseline_rate)
    if moved is not None and moved * 100 >= t.drain_percent and obs.weight == 0:
        state = _conclude(state, elapsed <= t.drain_within_s,
                          f"weight 0; {moved:.1%} moved in {elapsed:.1f}s "
                          f"({state.baseline_rate:.0f} -> {obs.rate:.0f} req/s)", elapsed)
        return _enter(state, ROLLBACK, now)
    if elapsed > t.drain_within_s:
        seen = "request rate not measurable" if moved is None else f"only {moved:.1%} moved"
        state = _conclude(state, False, f"weight {obs.weight}; {seen} after {elapsed:.1f}s", elapsed)
        return _enter(state, ROLLBACK, now)
    return state, hold


def _strategy_step(state: DrillState, obs: Observations, now: datetime,
                   elapsed: float) -> tuple[DrillState, list[SetWeight]]:
    assert state.facts is not None
    facts, step = state.facts, state.step
    hold = [SetWeight(facts.region, 0)]
    strategy = _clean(dict(obs.strategy)) if obs.strategy is not None else dict(state.strategy)
    state = replace(state, strategy=strategy)
    phase = StrategyStatus.from_dict(strategy).phase if strategy else StrategyPhase.PENDING
    target = facts.previous if step == ROLLBACK else facts.current
    deadline = facts.targets.deadline_s
    if phase is StrategyPhase.ROLLED_BACK:
        on_target = obs.region_release == target.number
        shown = "RolledBack" if step == ROLLBACK else "Succeeded"
        where = f"Deployments on {target.label()}" if on_target else \
            f"but Deployments carry {obs.region_release or 'nothing'}, not {target.number}"
        state = _conclude(state, on_target and elapsed <= deadline, f"{shown} in {elapsed:.1f}s; {where}", elapsed)
    elif phase is StrategyPhase.FAILED:
        message = StrategyStatus.from_dict(strategy).message
        state = _conclude(state, False, f"strategy Failed after {elapsed:.1f}s: {message}", elapsed)
    elif elapsed > deadline:
        state = _conclude(state, False, f"still {phase.value} after {elapsed:.1f}s", elapsed)
    else:
        return state, hold
    if step == ROLLBACK:
        return _enter(state, FORWARD, now)
    if not state.checklist[FORWARD].passed:
        items = list(state.checklist)
        items[RESTORE] = replace(items[RESTORE], passed=False,
                                 observed=f"not restored: {facts.region} is not back on {facts.current.label()}; "
                                          f"left drained. After fixing it: rollout restore {facts.region}")
        return _finish(replace(state, checklist=tuple(items), left_drained=True), now)
    return _enter(state, RESTORE, now)


def _restore(state: DrillState, obs: Observations, now: datetime,
             elapsed: float) -> tuple[DrillState, list[SetWeight]]:
    assert state.facts is not None
    t, region = state.facts.targets, state.facts.region
    hold = [SetWeight(region, 100)]
    baseline = state.baseline_rate
    back = None if baseline is None or obs.rate is None else obs.rate / baseline
    if obs.weight == 100 and back is not None and back * 100 >= t.restore_percent:
        state = _conclude(state, elapsed <= t.drain_within_s,
                          f"weight 100; rate back to {back:.0%} of before in {elapsed:.1f}s "
                          f"({obs.rate:.0f} req/s)", elapsed)
        return _finish(state, now)
    if elapsed > t.drain_within_s or (baseline is None and obs.weight == 100):
        seen = "request rate not measurable" if back is None else f"rate only {back:.0%} of before"
        state = _conclude(state, False, f"weight {obs.weight}; {seen} after {elapsed:.1f}s", elapsed)
        return _finish(state, now)
    return state, hold


# --- IO: the controller side -------------------------------------------------------------------


def serving_release(snapshot: Snapshot) -> str | None:
    """The release number(s) on the Deployments that have replicas (comma-joined when mixed)."""
    numbers = sorted({d.release or "?" for d in snapshot.deployments if d.spec_replicas > 0})
    return ",".join(numbers) or None


class DrillRunner:
    """Advances drill ReleaseActions through the reconciler's adapters (clusters, traffic, metrics)."""

    def __init__(self, reconciler: Any, api_client: client.ApiClient, namespace: str,
                 list_actions: Callable[[], list[dict[str, Any]]]):
        self.r = reconciler
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.list_actions = list_actions

    def tick(self, action: dict[str, Any], releases: Sequence[StoredRelease], now: datetime) -> dict[str, Any] | None:
        """One step of one drill; returns the action as written (None: nothing written)."""
        name = action["metadata"]["name"]
        state = DrillState.from_status(action.get("status"))
        if state.state in FINAL:
            return None
        try:
            obs = self.observe(action, state, releases, now)
        except Exception:  # noqa: BLE001 - one drill's failure must not stop the controller
            log.exception("drill: observation failed; the step's deadline still runs", action=name)
            if not state.state:
                return None
            obs = Observations()  # nothing seen: the step waits, and fails at its deadline
        new, weights = advance(state, obs, now)
        if not self.r.may_write():
            return None
        written = action
        old = action.get("status") or {}
        status = _clean({**new.to_status(), "handledAt": old.get("handledAt") or format_time(now)})
        if status != old:
            # the whole status, guarded by the resourceVersion it was decided from (a JSON patch: the
            # controller's role may patch releaseactions/status, not update it)
            body = [{"op": "test", "path": "/metadata/resourceVersion", "value": action["metadata"]["resourceVersion"]},
                    {"op": "add", "path": "/status", "value": status}]
            try:
                written = cast(dict[str, Any], self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, self.namespace, ACTIONS, name, body, _content_type="application/json-patch+json"))
            except ApiException as exc:
                log.info("drill status not written; will re-read", action=name, status=exc.status)
                return None
            if new.state != state.state or new.step != state.step:
                log.info("drill", action=name, state=new.state, step=STEPS[min(new.step, len(STEPS) - 1)],
                         message=new.message)
        if new.facts is not None:  # after the status recorded the intent
            for w in weights:
                self.r.traffic.set_weights(new.facts.app, {w.region: w.weight})
        return written if written is not action else None

    # --- gather --------------------------------------------------------------------------------

    def observe(self, action: dict[str, Any], state: DrillState, releases: Sequence[StoredRelease],
                now: datetime) -> Observations:
        spec = action.get("spec") or {}
        app, region = str(spec.get("app") or ""), str(spec.get("region") or "")
        if not state.state:
            setup = self._setup(action, app, region, releases)
            rate = self._rate(app, region, now) if isinstance(plan_drill(setup), Facts) else None
            return Observations(setup=setup, rate=rate)
        assert state.facts is not None
        facts = state.facts
        busy = [r.name for r in releases if ReleasePhase(r.status.phase) in BUSY]
        interrupted = busy[0] if busy else None
        if state.step in (DRAIN, RESTORE):
            return Observations(rate=self._rate(app, region, now), weight=self.r.traffic.weights(app).get(region),
                                interrupted_by=interrupted)
        try:
            strategy, serving = self._drive(facts, state, now)
        except TemporaryError as exc:
            log.warning("drill: region unreachable; waiting", region=region, error=str(exc))
            return Observations(interrupted_by=interrupted)
        return Observations(strategy=strategy, region_release=serving, interrupted_by=interrupted)

    def _setup(self, action: dict[str, Any], app: str, region: str, releases: Sequence[StoredRelease]) -> Setup:
        spec = action.get("spec") or {}
        infos = tuple(ReleaseInfo.of(r, region) for r in sorted(releases, key=lambda r: (r.created, r.name)))
        others = [a["metadata"]["name"] for a in self.list_actions()
                  if a["metadata"]["name"] != action["metadata"]["name"]
                  and (a.get("spec") or {}).get("action") == "drill" and (a.get("spec") or {}).get("app") == app
                  and (a.get("status") or {}).get("state") == RUNNING]
        setup = Setup(app, region, bool(spec.get("full")), infos, other_drill=others[0] if others else None)
        picked = current_and_previous(infos)
        if picked is None:
            return setup
        current, previous = picked
        try:
            repo = self.r.workspace.repository(current.ref.commit)
            if region not in repo.regions or app not in repo.apps:
                return setup
            plan = repo.apps[app].plan
            chosen = plan.strategy.rolling or plan.strategy.blue_green or plan.strategy.canary
            targets = Targets(plan.rollback.drain_target.percent,
                              plan.rollback.drain_target.within.total_seconds(),
                              chosen.progress_deadline.total_seconds())
            setup = replace(setup, tier=repo.regions[region].tier.value, targets=targets)
            facts = Facts(app, region, current.ref, previous, targets, dict(current.region_strategy))
            rollout = self._rollout(facts, "rollback")
            snapshot = self.r.clusters.get(repo.regions[region].cluster).observe(rollout)
            return replace(setup, region_release=serving_release(snapshot))
        except TemporaryError as exc:
            return replace(setup, problem=f"its cluster is unreachable ({exc})")
        except Exception as exc:  # noqa: BLE001 - an invalid repository, a render error: refuse, say why
            return replace(setup, problem=f"{type(exc).__name__}: {exc}")

    def _rate(self, app: str, region: str, now: datetime) -> float | None:
        return cast(float | None, self.r.request_rate(app, region, now))

    # --- the strategy, one step per tick -------------------------------------------------------

    def _rollout(self, facts: Facts, which: str) -> RegionRollout:
        """Step 2 ("rollback"): the current release with the previous one as its rollback target, as the
        release itself would roll back. Step 3 ("forward"): the current release as its own rollback
        target, so that the restore path re-applies exactly what the release left in the region."""
        current = ReleaseAt(facts.current.commit, facts.current.version)
        target = current if which == "forward" else ReleaseAt(facts.previous.commit, facts.previous.version)
        return cast(RegionRollout, self.r.renderer.rollout(facts.app, facts.region, current, target))

    def _drive(self, facts: Facts, state: DrillState, now: datetime) -> tuple[dict[str, Any], str | None]:
        which = "rollback" if state.step == ROLLBACK else "forward"
        repo = self.r.workspace.repository(facts.current.commit)
        cluster = self.r.clusters.get(repo.regions[facts.region].cluster)
        rollout = self._rollout(facts, which)
        status = StrategyStatus.from_dict(state.strategy)
        step = drive(cluster, rollout, status, now, may_write=self.r.may_write(), logger=log.bind(drill=which))
        if step.transient:
            raise TemporaryError(step.error)
        return step.status.to_dict(), serving_release(step.snapshot) if step.snapshot is not None else None

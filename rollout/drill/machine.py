"""The drill's state machine, pure: from the recorded state and this tick's observations, the next
state and the global weight to hold (`advance`); the refusals (`plan_drill`). No IO, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from rollout.drill.model import (
    BUSY,
    DONE,
    DRAIN,
    FAILED,
    FINAL,
    FORWARD,
    REJECTED,
    RESTORE,
    ROLLBACK,
    RUNNING,
    STEPS,
    DrillState,
    Facts,
    Item,
    Observations,
    ReleaseInfo,
    ReleaseRef,
    Setup,
    SetWeight,
    without_none,
)
from rollout.release import ReleasePhase
from strategies.model import Phase as StrategyPhase
from strategies.model import Snapshot, StrategyStatus


def current_and_previous(releases: Sequence[ReleaseInfo]) -> tuple[ReleaseInfo, ReleaseRef] | None:
    """The app's live release (its newest Succeeded one) and the release it replaced."""
    ordered = sorted(releases, key=lambda r: (r.created, r.ref.name))
    good = [r for r in ordered if r.phase == ReleasePhase.SUCCEEDED.value]
    if not good:
        return None
    current = good[-1]
    if current.previous is not None:
        commit, version = current.previous
        name = next(
            (r.ref.name for r in ordered if r.ref.commit == commit),
            f"{current.ref.name.rsplit('-', 1)[0]}-{commit[:12]}",
        )
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
        return (
            f"{region} is a high-traffic region: draining it moves a large share of users onto the other "
            f"regions; pass --force to drill it anyway"
        )
    if setup.problem:
        return f"cannot drill {region}: {setup.problem}"
    if current.region_phase != "Succeeded":
        return f"{current.ref.name} is not live in {region} (phase {current.region_phase}): nothing to rehearse"
    if setup.region_release != current.ref.number:
        return (
            f"{region} does not run the current release {current.ref.label()} "
            f"(its Deployments carry {setup.region_release or 'nothing'}): drill from a known-good state"
        )
    if setup.targets is None:
        return f"the plan of {current.ref.name} could not be read"
    return Facts(app, region, current.ref, previous, setup.targets, dict(current.region_strategy))


def checklist(facts: Facts) -> tuple[Item, ...]:
    t, region = facts.targets, facts.region
    return (
        Item(
            STEPS[DRAIN], f"weight 0; >= {t.drain_percent:g}% of {region}'s traffic moved within {t.drain_within_s:g}s"
        ),
        Item(STEPS[ROLLBACK], f"RolledBack to {facts.previous.label()} within {t.deadline_s:g}s"),
        Item(STEPS[FORWARD], f"Succeeded: {facts.current.label()} live again within {t.deadline_s:g}s"),
        Item(
            STEPS[RESTORE],
            f"weight 100; traffic back to >= {t.restore_percent:g}% of the pre-drill rate within {t.drain_within_s:g}s",
        ),
    )


def rollback_start(facts: Facts, now: datetime) -> dict[str, Any]:
    """Step 2: the current release's own status in R, turned to rolling back (keeps blue/green colours)."""
    recorded = StrategyStatus.from_dict(facts.region_strategy) if facts.region_strategy else StrategyStatus()
    base = replace(recorded, phase=StrategyPhase.SUCCEEDED, step=0, finished_at=None)
    status: dict[str, Any] = without_none(
        base.to(StrategyPhase.ROLLING_BACK, now, reason="Drill", message="drill: rollback rehearsal").to_dict()
    )
    return status


def forward_start(facts: Facts, now: datetime) -> dict[str, Any]:
    """Step 3: a restore whose target is the current release; for blue/green the colours swap roles
    (the current release's colour is the one to restore, the previous one's is scaled down)."""
    recorded = StrategyStatus.from_dict(facts.region_strategy) if facts.region_strategy else StrategyStatus()
    base = StrategyStatus(
        phase=StrategyPhase.SUCCEEDED, active_color=recorded.new_color, new_color=recorded.active_color
    )
    status: dict[str, Any] = without_none(
        base.to(StrategyPhase.ROLLING_BACK, now, reason="Drill", message="drill: roll forward").to_dict()
    )
    return status


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
            items[i] = replace(
                items[i],
                observed=reason if i == state.step else "skipped",
                passed=False,
                seconds=elapsed if i == state.step else None,
            )
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
    state = DrillState(
        state=RUNNING,
        message=f"draining {planned.region}",
        step=DRAIN,
        started_at=now,
        step_started_at=now,
        baseline_rate=baseline,
        facts=planned,
        checklist=checklist(planned),
    )
    return state, [SetWeight(planned.region, 0)]


def _conclude(state: DrillState, passed: bool, observed: str, seconds: float) -> DrillState:
    items = list(state.checklist)
    items[state.step] = replace(items[state.step], observed=observed, passed=passed, seconds=seconds)
    return replace(state, checklist=tuple(items))


def _enter(state: DrillState, step: int, now: datetime) -> tuple[DrillState, list[SetWeight]]:
    assert state.facts is not None
    region = state.facts.region
    if step == ROLLBACK:
        return replace(
            state,
            step=step,
            step_started_at=now,
            strategy=rollback_start(state.facts, now),
            message=f"rolling {region} back to {state.facts.previous.label()}",
        ), [SetWeight(region, 0)]
    if step == FORWARD:
        return replace(
            state,
            step=step,
            step_started_at=now,
            strategy=forward_start(state.facts, now),
            message=f"rolling {region} forward to {state.facts.current.label()}",
        ), [SetWeight(region, 0)]
    if step == RESTORE:
        return replace(
            state,
            step=step,
            step_started_at=now,
            strategy={},
            message=state.message if state.message.startswith("interrupted") else f"restoring {region}'s traffic",
        ), [SetWeight(region, 100)]
    return _finish(state, now)


def _finish(state: DrillState, now: datetime) -> tuple[DrillState, list[SetWeight]]:
    assert state.facts is not None
    ok = all(i.passed for i in state.checklist)
    parts = [f"{i.step} {i.seconds:.1f}s" if i.seconds is not None else f"{i.step} -" for i in state.checklist]
    failed = [f"{i.step}: {i.observed}" for i in state.checklist if not i.passed]
    message = f"drill passed: {', '.join(parts)}" if ok else f"drill failed: {'; '.join(failed)}"
    weight = 0 if state.left_drained else 100
    return replace(
        state, state=DONE if ok else FAILED, step=len(STEPS), message=message, finished_at=now, strategy={}
    ), [SetWeight(state.facts.region, weight)]


def _drain(state: DrillState, obs: Observations, now: datetime, elapsed: float) -> tuple[DrillState, list[SetWeight]]:
    assert state.facts is not None
    t, region = state.facts.targets, state.facts.region
    hold = [SetWeight(region, 0)]
    if state.baseline_rate is None:
        state = _conclude(
            state,
            False,
            f"no request rate measured in {region} before the drain (no metrics or "
            f"no traffic): the drain cannot be measured",
            elapsed,
        )
        return _enter(state, ROLLBACK, now)
    moved = None if obs.rate is None else max(0.0, 1.0 - obs.rate / state.baseline_rate)
    if moved is not None and moved * 100 >= t.drain_percent and obs.weight == 0:
        state = _conclude(
            state,
            elapsed <= t.drain_within_s,
            f"weight 0; {moved:.1%} moved in {elapsed:.1f}s ({state.baseline_rate:.0f} -> {obs.rate:.0f} req/s)",
            elapsed,
        )
        return _enter(state, ROLLBACK, now)
    if elapsed > t.drain_within_s:
        seen = "request rate not measurable" if moved is None else f"only {moved:.1%} moved"
        state = _conclude(state, False, f"weight {obs.weight}; {seen} after {elapsed:.1f}s", elapsed)
        return _enter(state, ROLLBACK, now)
    return state, hold


def _strategy_step(
    state: DrillState, obs: Observations, now: datetime, elapsed: float
) -> tuple[DrillState, list[SetWeight]]:
    assert state.facts is not None
    facts, step = state.facts, state.step
    hold = [SetWeight(facts.region, 0)]
    strategy = without_none(dict(obs.strategy)) if obs.strategy is not None else dict(state.strategy)
    state = replace(state, strategy=strategy)
    phase = StrategyStatus.from_dict(strategy).phase if strategy else StrategyPhase.PENDING
    target = facts.previous if step == ROLLBACK else facts.current
    deadline = facts.targets.deadline_s
    if phase is StrategyPhase.ROLLED_BACK:
        on_target = obs.region_release == target.number
        shown = "RolledBack" if step == ROLLBACK else "Succeeded"
        where = (
            f"Deployments on {target.label()}"
            if on_target
            else f"but Deployments carry {obs.region_release or 'nothing'}, not {target.number}"
        )
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
        items[RESTORE] = replace(
            items[RESTORE],
            passed=False,
            observed=f"not restored: {facts.region} is not back on {facts.current.label()}; "
            f"left drained. After fixing it: rollout restore {facts.region}",
        )
        return _finish(replace(state, checklist=tuple(items), left_drained=True), now)
    return _enter(state, RESTORE, now)


def _restore(state: DrillState, obs: Observations, now: datetime, elapsed: float) -> tuple[DrillState, list[SetWeight]]:
    assert state.facts is not None
    t, region = state.facts.targets, state.facts.region
    hold = [SetWeight(region, 100)]
    baseline = state.baseline_rate
    back = None if baseline is None or obs.rate is None else obs.rate / baseline
    if obs.weight == 100 and back is not None and back * 100 >= t.restore_percent:
        state = _conclude(
            state,
            elapsed <= t.drain_within_s,
            f"weight 100; rate back to {back:.0%} of before in {elapsed:.1f}s ({obs.rate:.0f} req/s)",
            elapsed,
        )
        return _finish(state, now)
    if elapsed > t.drain_within_s or (baseline is None and obs.weight == 100):
        seen = "request rate not measurable" if back is None else f"rate only {back:.0%} of before"
        state = _conclude(state, False, f"weight {obs.weight}; {seen} after {elapsed:.1f}s", elapsed)
        return _finish(state, now)
    return state, hold


def serving_release(snapshot: Snapshot) -> str | None:
    """The release number(s) on the Deployments that have replicas (comma-joined when mixed)."""
    numbers = sorted({d.release or "?" for d in snapshot.deployments if d.spec_replicas > 0})
    return ",".join(numbers) or None

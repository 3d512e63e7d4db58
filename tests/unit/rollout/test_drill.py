"""The drill's pure part: refusals, every step's pass and fail paths, a restart mid-drill."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollout.drill import (
    DONE,
    DRAIN,
    FAILED,
    FORWARD,
    REJECTED,
    RESTORE,
    ROLLBACK,
    RUNNING,
    DrillState,
    Facts,
    Observations,
    ReleaseInfo,
    ReleaseRef,
    Setup,
    SetWeight,
    Targets,
    advance,
    current_and_previous,
    forced,
    plan_drill,
    serving_release,
    without_none,
)
from strategies.model import DeploymentState, Snapshot, StrategyStatus
from strategies.model import Phase as SP

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
OLD = ReleaseRef("checkout-aaaaaaaaaaaa", "a" * 40, "1.4.0")
CUR = ReleaseRef("checkout-bbbbbbbbbbbb", "b" * 40, "1.5.0")
TARGETS = Targets(drain_percent=99, drain_within_s=15, deadline_s=60)
REGION = "eu-west"
BG = {"phase": "Succeeded", "activeColor": "blue", "newColor": "green", "step": 3}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def info(
    ref: ReleaseRef,
    phase: str = "Succeeded",
    created: str = "2026-11-24T10:00:00Z",
    previous: tuple[str, str] | None = None,
    region_phase: str | None = "Succeeded",
    strategy: dict[str, Any] | None = None,
) -> ReleaseInfo:
    return ReleaseInfo(ref, phase, created, ("eu-canary", REGION, "us-east"), previous, region_phase, strategy or {})


def setup(**changes: Any) -> Setup:
    base = Setup(
        "checkout",
        REGION,
        False,
        (
            info(OLD, created="2026-11-24T10:00:00Z"),
            info(CUR, created="2026-11-24T11:00:00Z", previous=(OLD.commit, OLD.version)),
        ),
        tier="low",
        targets=TARGETS,
        region_release=CUR.number,
    )
    return replace(base, **changes)


def started(baseline: float | None = 1000.0, strategy: dict[str, Any] | None = None) -> DrillState:
    state, actions = advance(
        DrillState(),
        Observations(
            setup=setup(
                releases=(
                    info(OLD, created="2026-11-24T10:00:00Z"),
                    info(CUR, created="2026-11-24T11:00:00Z", previous=(OLD.commit, OLD.version), strategy=strategy),
                )
            ),
            rate=baseline,
        ),
        T0,
    )
    assert state.state == RUNNING and actions == [SetWeight(REGION, 0)]
    return state


def rolled(phase: SP, message: str = "") -> dict[str, Any]:
    return StrategyStatus(phase=phase, message=message).to_dict()


def through_drain(state: DrillState, at_s: float = 6) -> DrillState:
    state, _ = advance(state, Observations(rate=2.0, weight=0), at(at_s))
    assert state.step == ROLLBACK
    return state


def through_rollback(state: DrillState, at_s: float = 20) -> DrillState:
    state, _ = advance(state, Observations(strategy=rolled(SP.ROLLED_BACK), region_release=OLD.number), at(at_s))
    assert state.step == FORWARD
    return state


def through_forward(state: DrillState, at_s: float = 30) -> DrillState:
    state, actions = advance(state, Observations(strategy=rolled(SP.ROLLED_BACK), region_release=CUR.number), at(at_s))
    assert state.step == RESTORE and actions == [SetWeight(REGION, 100)]
    return state


# --- which releases ----------------------------------------------------------------------------


def test_current_is_the_newest_succeeded_release_and_previous_what_it_replaced() -> None:
    bad = ReleaseRef("checkout-cccccccccccc", "c" * 40, "1.6.0")
    releases = (
        info(OLD, created="1"),
        info(CUR, created="2", previous=(OLD.commit, OLD.version)),
        info(bad, phase="RolledBack", created="3", previous=(CUR.commit, CUR.version)),
    )
    current, previous = current_and_previous(releases)  # type: ignore[misc]
    assert current.ref == CUR and previous == OLD


def test_without_a_recorded_previous_the_succeeded_release_before_is_used() -> None:
    current, previous = current_and_previous((info(OLD, created="1"), info(CUR, created="2")))  # type: ignore[misc]
    assert (current.ref, previous) == (CUR, OLD)
    assert current_and_previous((info(CUR),)) is None
    assert current_and_previous((info(CUR, phase="RolledBack"),)) is None


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"releases": ()}, "unknown app"),
        ({"releases": (info(OLD, created="1"), info(CUR, phase="Progressing", created="2"))}, "in progress"),
        ({"releases": (info(CUR),)}, "no earlier release"),
        ({"region": "mars-1", "tier": None}, "not a region of checkout"),
        ({"tier": None}, "not a region of checkout"),
        ({"other_drill": "drill-checkout-x"}, "one drill per app"),
        ({"tier": "high"}, "--force"),
        ({"problem": "its cluster is unreachable (timeout)"}, "unreachable"),
        ({"region_release": OLD.number}, "does not run the current release"),
        ({"region_release": None}, "carry nothing"),
        ({"targets": None}, "could not be read"),
        (
            {
                "releases": (
                    info(OLD, created="1"),
                    info(CUR, created="2", previous=(OLD.commit, OLD.version), region_phase="Pending"),
                )
            },
            "is not live in eu-west",
        ),
    ],
)
def test_refusals_say_why_and_change_nothing(changes: dict[str, Any], words: str) -> None:
    refused = plan_drill(setup(**changes))
    assert isinstance(refused, str) and words in refused, refused
    state, actions = advance(DrillState(), Observations(setup=setup(**changes), rate=100.0), T0)
    assert state.state == REJECTED and words in state.message and actions == []
    assert advance(state, Observations(), at(5)) == (state, [])  # final


def test_a_high_traffic_region_may_be_drilled_with_force_and_canary_or_standard_tiers_always() -> None:
    assert isinstance(plan_drill(setup(tier="high", force=True)), Facts)
    for tier in ("canary", "low", "standard"):
        assert isinstance(plan_drill(setup(tier=tier)), Facts)


def test_start_records_facts_baseline_and_the_checklist_with_the_plan_targets() -> None:
    state = started()
    assert state.facts is not None and state.facts.previous == OLD and state.facts.current == CUR
    assert state.baseline_rate == 1000.0 and state.step == DRAIN and state.started_at == T0
    expected = [i.expected for i in state.checklist]
    assert [i.step for i in state.checklist] == ["drain", "rollback", "roll forward", "restore"]
    assert "99%" in expected[0] and "15s" in expected[0]
    assert "1.4.0" in expected[1] and "60s" in expected[1]
    assert "1.5.0" in expected[2] and "Succeeded" in expected[2]
    assert all(i.passed is None for i in state.checklist)


# --- step 1: drain -----------------------------------------------------------------------------


def test_drain_waits_holding_weight_zero_until_the_target_share_has_moved() -> None:
    state = started()
    same, actions = advance(state, Observations(rate=400.0, weight=0), at(3))
    assert same.step == DRAIN and actions == [SetWeight(REGION, 0)] and same.checklist == state.checklist
    moved, actions = advance(state, Observations(rate=5.0, weight=0), at(7.25))
    item = moved.checklist[DRAIN]
    assert item.passed is True and item.seconds == 7.25 and "99.5% moved" in item.observed
    assert moved.step == ROLLBACK and moved.step_started_at == at(7.25) and actions == [SetWeight(REGION, 0)]
    assert StrategyStatus.from_dict(moved.strategy).phase is SP.ROLLING_BACK


def test_drain_not_counted_before_the_weight_is_zero() -> None:
    state, _ = advance(started(), Observations(rate=0.0, weight=100), at(2))
    assert state.step == DRAIN


def test_drain_missing_its_target_fails_the_step_and_the_drill_goes_on() -> None:
    state, actions = advance(started(), Observations(rate=300.0, weight=0), at(15.5))
    item = state.checklist[DRAIN]
    assert item.passed is False and "only 70.0% moved" in item.observed and state.step == ROLLBACK
    unmeasured, _ = advance(started(), Observations(rate=None, weight=0), at(16))
    assert "not measurable" in unmeasured.checklist[DRAIN].observed


def test_without_a_baseline_rate_the_drain_cannot_be_measured_and_fails() -> None:
    state, _ = advance(started(baseline=None), Observations(rate=0.0, weight=0), at(1))
    assert state.checklist[DRAIN].passed is False and "cannot be measured" in state.checklist[DRAIN].observed
    assert state.step == ROLLBACK


# --- step 2: rollback --------------------------------------------------------------------------


def test_rollback_passes_when_rolled_back_and_the_region_runs_the_previous_release() -> None:
    state = through_drain(started())
    waiting, actions = advance(state, Observations(strategy=rolled(SP.ROLLING_BACK), region_release=CUR.number), at(10))
    assert waiting.step == ROLLBACK and actions == [SetWeight(REGION, 0)]
    done, _ = advance(waiting, Observations(strategy=rolled(SP.ROLLED_BACK), region_release=OLD.number), at(18.5))
    item = done.checklist[ROLLBACK]
    assert item.passed is True and item.seconds == 12.5 and "RolledBack" in item.observed and "1.4.0" in item.observed
    assert done.step == FORWARD and StrategyStatus.from_dict(done.strategy).phase is SP.ROLLING_BACK


def test_rollback_fails_on_the_wrong_release_a_failed_strategy_or_the_deadline_and_goes_on() -> None:
    state = through_drain(started())
    wrong, _ = advance(state, Observations(strategy=rolled(SP.ROLLED_BACK), region_release=CUR.number), at(10))
    assert wrong.checklist[ROLLBACK].passed is False and "not aaaaaaaaaaaa" in wrong.checklist[ROLLBACK].observed
    failed, _ = advance(state, Observations(strategy=rolled(SP.FAILED, "no progress")), at(10))
    assert failed.checklist[ROLLBACK].passed is False and "no progress" in failed.checklist[ROLLBACK].observed
    late, _ = advance(state, Observations(strategy=rolled(SP.ROLLING_BACK)), at(6 + 61))
    assert late.checklist[ROLLBACK].passed is False and "still RollingBack" in late.checklist[ROLLBACK].observed
    assert wrong.step == failed.step == late.step == FORWARD


def test_an_unreachable_region_keeps_the_recorded_strategy_status() -> None:
    state = through_drain(started())
    same, _ = advance(state, Observations(), at(10))
    assert same.strategy == state.strategy and same.step == ROLLBACK


def test_blue_green_colours_are_kept_for_the_rollback_and_swapped_for_the_roll_forward() -> None:
    state = through_drain(started(strategy=BG))
    back = StrategyStatus.from_dict(state.strategy)
    assert (back.active_color, back.new_color, back.phase, back.step) == ("blue", "green", SP.ROLLING_BACK, 0)
    forward = StrategyStatus.from_dict(through_rollback(state).strategy)
    assert (forward.active_color, forward.new_color, forward.phase) == ("green", "blue", SP.ROLLING_BACK)


# --- step 3: roll forward ----------------------------------------------------------------------


def test_roll_forward_passes_when_the_current_release_is_live_again_then_the_weight_returns() -> None:
    state = through_forward(through_rollback(through_drain(started())))
    item = state.checklist[FORWARD]
    assert item.passed is True and "Succeeded" in item.observed and "1.5.0" in item.observed and item.seconds == 10


def test_a_failed_roll_forward_leaves_the_region_drained_and_fails_the_drill() -> None:
    state = through_rollback(through_drain(started()))
    state, actions = advance(state, Observations(strategy=rolled(SP.FAILED, "ImagePullBackOff")), at(25))
    assert state.state == FAILED and state.left_drained and actions == [SetWeight(REGION, 0)]
    assert state.checklist[FORWARD].passed is False
    assert "left drained" in state.checklist[RESTORE].observed and "rollout restore eu-west" in state.message


# --- step 4: restore ---------------------------------------------------------------------------


def test_restore_passes_when_the_rate_is_back_and_the_drill_is_done() -> None:
    state = through_forward(through_rollback(through_drain(started())))
    waiting, actions = advance(state, Observations(rate=300.0, weight=100), at(33))
    assert waiting.step == RESTORE and actions == [SetWeight(REGION, 100)]
    done, actions = advance(waiting, Observations(rate=950.0, weight=100), at(36.5))
    assert done.state == DONE and done.passed and actions == [SetWeight(REGION, 100)]
    assert done.checklist[RESTORE].seconds == 6.5 and "95%" in done.checklist[RESTORE].observed
    assert done.message.startswith("drill passed") and "drain 6.0s" in done.message
    assert done.finished_at == at(36.5)
    assert advance(done, Observations(rate=0.0, weight=0), at(40)) == (done, [])


def test_restore_missing_its_target_fails_the_drill_with_the_weight_left_at_100() -> None:
    state = through_forward(through_rollback(through_drain(started())))
    failed, actions = advance(state, Observations(rate=100.0, weight=100), at(30 + 16))
    assert failed.state == FAILED and actions == [SetWeight(REGION, 100)]
    assert "only 10% of before" in failed.checklist[RESTORE].observed and "restore:" in failed.message


def test_a_failed_step_fails_the_drill_even_when_the_others_pass() -> None:
    state, _ = advance(started(), Observations(rate=300.0, weight=0), at(16))  # drain missed
    state = through_forward(through_rollback(state, 20), 30)
    done, _ = advance(state, Observations(rate=1000.0, weight=100), at(33))
    assert done.state == FAILED and done.message.startswith("drill failed: drain:")
    assert [i.passed for i in done.checklist] == [False, True, True, True]


# --- interruptions and restarts -----------------------------------------------------------------


def test_a_release_starting_mid_drill_stops_it_and_restores_the_weight() -> None:
    state = through_drain(started())
    state, actions = advance(
        state, Observations(strategy=rolled(SP.ROLLING_BACK), interrupted_by="checkout-dddddddddddd"), at(9)
    )
    assert state.step == RESTORE and actions == [SetWeight(REGION, 100)]
    assert state.checklist[ROLLBACK].passed is False and "interrupted" in state.checklist[ROLLBACK].observed
    assert state.checklist[FORWARD].observed == "skipped"
    done, _ = advance(state, Observations(rate=1000.0, weight=100), at(12))
    assert done.state == FAILED and "interrupted" in done.message


def _stored(state: DrillState) -> DrillState:
    """Through the API server: JSON, with None values dropped."""
    return DrillState.from_status(json.loads(json.dumps(without_none(state.to_status()))))


@pytest.mark.parametrize("stop_at", ["drain", "rollback", "forward", "restore"])
def test_a_restarted_controller_resumes_from_the_status_with_the_same_result(stop_at: str) -> None:
    steps = {
        "drain": lambda s: s,
        "rollback": through_drain,
        "forward": lambda s: through_rollback(through_drain(s)),
        "restore": lambda s: through_forward(through_rollback(through_drain(s))),
    }
    state = steps[stop_at](started())
    resumed = _stored(state)
    assert resumed == state
    assert without_none(resumed.to_status()) == without_none(state.to_status())  # nothing to write after a restart
    # the run goes on from the recorded step; times count from the recorded step start
    for run in (state, resumed):
        s = run
        if s.step == DRAIN:
            s = through_drain(s)
        if s.step == ROLLBACK:
            s = through_rollback(s)
        if s.step == FORWARD:
            s = through_forward(s)
        s, _ = advance(s, Observations(rate=1000.0, weight=100), at(40))
        assert s.state == DONE
    assert _stored(s).checklist == s.checklist


def test_a_drill_state_survives_a_restart_between_the_status_write_and_the_weight_write() -> None:
    """The weight is held level-triggered: a resumed drill asks for it again on its next tick."""
    state = _stored(started())
    _, actions = advance(state, Observations(rate=1000.0, weight=100), at(1))
    assert actions == [SetWeight(REGION, 0)]


# --- helpers -----------------------------------------------------------------------------------


def test_serving_release_ignores_deployments_scaled_to_zero() -> None:
    snap = Snapshot(
        deployments=(
            DeploymentState("checkout", spec_replicas=2, release=OLD.number),
            DeploymentState("checkout-canary", spec_replicas=0, release=CUR.number),
        )
    )
    assert serving_release(snap) == OLD.number
    mixed = Snapshot(
        deployments=(
            DeploymentState("a", spec_replicas=1, release="x"),
            DeploymentState("b", spec_replicas=1, release="y"),
        )
    )
    assert serving_release(mixed) == "x,y" and serving_release(Snapshot()) is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, False),
        ({"force": True}, True),
        ({"full": True}, True),  # a drill stored by an earlier version carried --force in `full`
        ({"force": False, "full": True}, False),
    ],
)
def test_force_is_read_from_force_or_the_old_full(spec: dict[str, Any], expected: bool) -> None:
    assert forced(spec) is expected

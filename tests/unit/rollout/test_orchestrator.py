"""The promotion state machine, pass by pass, with no IO: each test replays what the gather step
would observe and checks the status and actions that come out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from regions.analysis.model import Verdict
from rollout.orchestrator import (
    BeginRollback,
    Notify,
    Policy,
    RegionView,
    ReleaseView,
    Request,
    SetRegionWeight,
    StartStrategy,
    decide,
)
from rollout.release import PlannedWaveSpec, ReleasePhase, ReleaseSpec, ReleaseStatus
from strategies.model import IllegalTransition
from strategies.model import Phase as S

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SPEC = ReleaseSpec(
    app="checkout",
    commit="c" * 40,
    version="1.5.0",
    plan_digest="p",
    content_digest="d",
    waves=(
        PlannedWaveSpec("canary", ("eu-canary",), 60, 1),
        PlannedWaveSpec("low", ("eu-west", "ap-south"), 30, 2),
        PlannedWaveSpec("high", ("us-east",), 30, 1),
    ),
)


class Replay:
    """Feeds decide() one pass at a time, keeping only the status between passes (like a restart)."""

    def __init__(self, policy: Policy | None = None, previous=("b" * 40, "1.4.0")):
        self.status = ReleaseStatus()
        self.policy = policy or Policy()
        self.previous = previous
        self.now = T0

    def step(self, seconds: float = 0, requests=(), blocked_by=None, **regions: RegionView):
        self.now += timedelta(seconds=seconds)
        view = ReleaseView(
            SPEC,
            self.status,
            self.policy,
            {k.replace("_", "-"): v for k, v in regions.items()},
            tuple(requests),
            blocked_by,
            self.previous,
            **self.context(),
        )
        self.status, actions = decide(view, self.now)
        return actions

    def context(self) -> dict[str, Any]:
        """What a subclass adds to every pass's view (freezes, dependencies...)."""
        return {}

    def phase(self, region: str | None = None) -> str:
        return self.status.regions[region].phase if region else self.status.phase


DONE = RegionView(strategy_phase=S.SUCCEEDED)
PASS = RegionView(strategy_phase=S.SUCCEEDED, smoke=Verdict.SUCCESS)
RUNNING = RegionView(strategy_phase=S.PROGRESSING)


def promote_through_waves(r: Replay) -> None:
    assert r.step() == [
        Notify("started", "version 1.5.0 starts with wave canary"),
        StartStrategy("eu-canary"),
    ]
    assert r.step(5, eu_canary=DONE) == []
    assert r.phase("eu-canary") == "Smoke"
    assert r.step(30, eu_canary=PASS) == []  # window (60s) not over yet
    actions = r.step(31, eu_canary=PASS)
    assert StartStrategy("eu-west") in actions and StartStrategy("ap-south") in actions  # maxParallel 2
    assert r.status.current_wave == 1
    r.step(5, eu_west=DONE, ap_south=DONE)
    actions = r.step(31, eu_west=PASS, ap_south=PASS)
    assert actions[-1] == StartStrategy("us-east")
    r.step(5, us_east=DONE)
    actions = r.step(31, us_east=PASS)
    assert actions == [Notify("succeeded", "version 1.5.0 is live in every region")]


def test_a_good_release_walks_the_waves_in_order_and_honours_smoke_windows() -> None:
    r = Replay()
    promote_through_waves(r)
    assert r.phase() == "Succeeded"
    assert [a.action for a in r.status.audit].count("wave-passed") == 3
    assert r.status.previous_commit == "b" * 40


def test_a_wave_never_starts_more_regions_than_max_parallel() -> None:
    r = Replay()
    r.step()
    r.step(1, eu_canary=DONE)
    r.step(61, eu_canary=PASS)
    assert r.phase("eu-west") == r.phase("ap-south") == "Progressing"
    assert r.phase("us-east") == "Pending"


def test_a_failing_smoke_check_drains_rolls_back_restores_and_quarantines() -> None:
    r = Replay()
    r.step()
    r.step(10, eu_canary=DONE)
    actions = r.step(
        4,
        eu_canary=RegionView(strategy_phase=S.SUCCEEDED, smoke=Verdict.FAILURE, smoke_reason="error-ratio 0.2 > 0.05"),
    )
    assert actions == [
        Notify("failed", "smoke check failed: error-ratio 0.2 > 0.05", "eu-canary", warning=True),
        SetRegionWeight("eu-canary", 0),
    ]
    assert r.phase() == "RollingBack" and r.phase("eu-canary") == "Draining"
    assert r.status.detect_seconds == 14
    assert r.step(1, eu_canary=RegionView(drain_moved=0.5)) == []  # not yet 99%
    actions = r.step(1, eu_canary=RegionView(drain_moved=0.995))
    assert BeginRollback("eu-canary", r.status.message) in actions
    assert r.status.drains[0].met is True and r.status.drains[0].seconds == 2
    assert r.step(1, eu_canary=RegionView(strategy_phase=S.ROLLING_BACK)) == []
    actions = r.step(1, eu_canary=RegionView(strategy_phase=S.ROLLED_BACK))
    assert SetRegionWeight("eu-canary", 100) in actions
    assert r.phase() == "RolledBack" and r.status.quarantined
    assert r.phase("eu-west") == "Pending"  # later waves untouched


def test_a_drain_that_misses_its_target_is_recorded_and_rollback_goes_on() -> None:
    r = Replay(Policy(drain_within_seconds=10))
    r.step()
    r.step(1, eu_canary=RegionView(strategy_phase=S.FAILED, strategy_reason="progress deadline exceeded"))
    assert r.phase("eu-canary") == "Draining"
    actions = r.step(11, eu_canary=RegionView(drain_moved=0.6))
    assert any(isinstance(a, BeginRollback) for a in actions)
    assert r.status.drains[0].met is False


def test_a_late_failure_rolls_back_the_failed_region_first_then_earlier_ones_in_reverse() -> None:
    r = Replay(Policy(drain_first=False))
    r.step()
    r.step(1, eu_canary=DONE)
    r.step(61, eu_canary=PASS)
    r.step(1, eu_west=DONE, ap_south=RUNNING)
    actions = r.step(
        5,
        eu_west=RegionView(strategy_phase=S.SUCCEEDED, smoke=Verdict.FAILURE, smoke_reason="p99"),
        ap_south=RUNNING,
    )
    assert [a for a in actions if isinstance(a, BeginRollback)] == [BeginRollback("eu-west", r.status.message)]
    actions = r.step(1, eu_west=RegionView(strategy_phase=S.ROLLED_BACK), ap_south=RUNNING)
    assert [a.region for a in actions if isinstance(a, BeginRollback)] == ["ap-south"]
    actions = r.step(1, ap_south=RegionView(strategy_phase=S.ROLLED_BACK))
    assert [a.region for a in actions if isinstance(a, BeginRollback)] == ["eu-canary"]
    r.step(1, eu_canary=RegionView(strategy_phase=S.ROLLED_BACK))
    assert r.phase() == "RolledBack"
    assert {n: r.phase(n) for n in ("eu-canary", "eu-west", "ap-south", "us-east")} == {
        "eu-canary": "RolledBack",
        "eu-west": "RolledBack",
        "ap-south": "RolledBack",
        "us-east": "Pending",
    }


def test_an_unreachable_cluster_makes_the_wave_wait_not_skip() -> None:
    r = Replay()
    r.step(eu_canary=RegionView(reachable=False))
    assert r.phase("eu-canary") == "Waiting"
    assert r.step(30, eu_canary=RegionView(reachable=False)) == []
    assert r.step(30, eu_canary=RegionView(reachable=True)) == [StartStrategy("eu-canary")]
    assert r.status.current_wave == 0


def test_an_inconclusive_smoke_window_pauses_and_alerts_never_promotes() -> None:
    r = Replay()
    r.step()
    r.step(1, eu_canary=DONE)
    actions = r.step(
        61,
        eu_canary=RegionView(strategy_phase=S.SUCCEEDED, smoke=Verdict.INCONCLUSIVE, smoke_reason="no data"),
    )
    assert r.phase() == "Paused" and r.phase("eu-canary") == "Smoke"
    assert actions[0].event == "paused"
    r.step(1, requests=[Request("resume", "looked at dashboards", "alice")])
    assert r.phase() == "Progressing"


def test_inconclusive_fails_when_the_plan_says_so() -> None:
    r = Replay(Policy(on_inconclusive="fail"))
    r.step()
    r.step(1, eu_canary=DONE)
    r.step(61, eu_canary=RegionView(strategy_phase=S.SUCCEEDED, smoke=Verdict.INCONCLUSIVE))
    assert r.phase() == "RollingBack"


def test_promote_skips_the_smoke_window_and_is_audited() -> None:
    r = Replay()
    r.step()
    r.step(1, eu_canary=DONE)
    r.step(
        1,
        requests=[Request("promote", "hotfix for outage", "bob")],
        eu_canary=RegionView(strategy_phase=S.SUCCEEDED, smoke=None),
    )
    assert r.phase("eu-canary") == "Succeeded" and r.status.current_wave == 1
    assert any(a.by == "bob" and a.action == "promote" for a in r.status.audit)


def test_pause_stops_progress_until_resume() -> None:
    r = Replay()
    r.step()
    r.step(1, requests=[Request("pause", "investigating", "carol")], eu_canary=DONE)
    assert r.phase() == "Paused"
    assert r.step(100, eu_canary=DONE) == []
    r.step(1, requests=[Request("resume", "fine", "carol")], eu_canary=DONE)
    assert r.phase("eu-canary") == "Smoke"


def test_a_responder_can_roll_back_a_succeeded_release() -> None:
    r = Replay(Policy(drain_first=False))
    promote_through_waves(r)
    actions = r.step(1, requests=[Request("rollback", "bad data migration", "dave")])
    assert actions[-1] == BeginRollback("us-east", r.status.message)
    assert "dave" in r.status.message


def test_a_release_waits_while_another_release_of_the_app_is_active() -> None:
    r = Replay()
    assert r.step(blocked_by="checkout-aaaaaaaaaaaa") == []
    assert r.phase() == "Pending" and "checkout-aaaaaaaaaaaa" in r.status.message


def test_a_status_round_trips_through_the_custom_resource_between_passes() -> None:
    r = Replay()
    r.step()
    r.step(1, eu_canary=DONE)
    r.status = ReleaseStatus.from_dict(r.status.to_dict())  # what a restart reads back
    r.step(61, eu_canary=PASS)
    assert r.status.current_wave == 1


def test_illegal_transitions_raise() -> None:
    status = ReleaseStatus()
    with pytest.raises(IllegalTransition):
        status.move(ReleasePhase.ROLLED_BACK)


def test_a_strategy_that_aborted_itself_still_fails_the_region_drains_and_restores() -> None:
    r = Replay()
    r.step()
    actions = r.step(5, eu_canary=RegionView(strategy_phase=S.ROLLED_BACK, strategy_reason="analysis failed"))
    assert r.phase() == "RollingBack" and r.phase("eu-canary") == "Draining"
    assert SetRegionWeight("eu-canary", 0) in actions
    r.step(1, eu_canary=RegionView(drain_moved=1.0))
    actions = r.step(1, eu_canary=RegionView(strategy_phase=S.ROLLED_BACK))
    assert SetRegionWeight("eu-canary", 100) in actions and r.phase() == "RolledBack"


def test_promote_full_skips_every_remaining_smoke_window() -> None:
    r = Replay()
    r.step()
    r.step(1, eu_canary=DONE)
    r.step(
        1,
        requests=[Request("promote", "emergency fix", "erin", full=True)],
        eu_canary=RegionView(strategy_phase=S.SUCCEEDED, smoke=None),
    )
    r.step(1, eu_west=DONE, ap_south=DONE)
    r.step(
        1,
        eu_west=RegionView(strategy_phase=S.SUCCEEDED, smoke=None),
        ap_south=RegionView(strategy_phase=S.SUCCEEDED, smoke=None),
    )
    assert r.status.current_wave == 2


def test_a_rollback_without_region_fails_the_most_recently_started_one_across_time_formats() -> None:
    """Start times compare as instants, not as strings: `+00:00` with microseconds (as `.isoformat()`
    wrote) half a millisecond after a `Z` time sorts before it as a string, after it as a time."""
    r = Replay()
    r.step()
    r.step(1, eu_canary=DONE)
    r.step(61, eu_canary=PASS)  # wave "low" starts eu-west and ap-south
    assert r.phase("eu-west") == "Progressing" and r.phase("ap-south") == "Progressing"
    r.status.regions["eu-west"].started_at = "2026-11-24T12:01:01.950500+00:00"  # the later instant
    r.status.regions["ap-south"].started_at = "2026-11-24T12:01:01.950Z"
    assert r.status.regions["eu-west"].started_at < r.status.regions["ap-south"].started_at  # as strings
    r.step(1, requests=[Request("rollback", "pager", "carol")], eu_west=RUNNING, ap_south=RUNNING)
    assert r.status.failed_region == "eu-west"

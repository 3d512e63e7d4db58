"""Freezes in the promotion state machine (pure): no region starts while a freeze covers the app
there; a region in flight finishes its step and smoke window; rollbacks, drains and restores run;
an override lets one release through; the status says why and until when, the Event comes once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from config.freezes import Freeze, runtime_freeze
from regions.analysis.model import Verdict
from rollout.orchestrator import (
    BeginRollback,
    Notify,
    RegionView,
    Request,
    SetRegionWeight,
    StartStrategy,
)
from strategies.model import Phase as S
from tests.unit.rollout.test_orchestrator import DONE, PASS, RUNNING, T0, Replay

END = T0 + timedelta(hours=2)
ALL = runtime_freeze("freeze-abc", "incident INC-7", "alice", None, None, T0 - timedelta(minutes=1), END)


class Frozen(Replay):
    def __init__(self, *freezes: Freeze) -> None:
        super().__init__()
        self.freezes = freezes

    def context(self) -> dict[str, Any]:
        return {"freezes": self.freezes}


def frozen_notices(actions) -> list[Notify]:
    return [a for a in actions if isinstance(a, Notify) and a.event == "frozen"]


def test_a_frozen_release_does_not_start_and_says_why_once() -> None:
    r = Frozen(ALL)
    actions = r.step()
    assert r.phase() == "Pending" and not any(isinstance(a, StartStrategy) for a in actions)
    (notice,) = frozen_notices(actions)
    assert "freeze-abc (incident INC-7; owner alice)" in notice.reason
    assert "until 2026-11-24T14:00:00.000Z" in r.status.frozen and r.status.message == r.status.frozen
    assert [a.action for a in r.status.audit] == ["frozen"]
    assert r.step(60) == []  # no Event per pass
    assert [a.action for a in r.status.audit] == ["frozen"]
    actions = r.step(2 * 3600)  # the window is over
    assert StartStrategy("eu-canary") in actions and r.phase() == "Progressing"
    assert r.status.frozen == "" and "unfrozen" in [a.action for a in r.status.audit]


def test_frozen_at_the_region_boundary_not_mid_step() -> None:
    late = runtime_freeze("freeze-late", "holiday", "bob", "checkout", None, T0 + timedelta(seconds=10), None)
    r = Frozen(late)
    assert StartStrategy("eu-canary") in r.step()
    r.step(20, eu_canary=RUNNING)  # the freeze began while eu-canary was mid-step: it carries on
    assert r.phase("eu-canary") == "Progressing" and r.status.frozen == ""
    r.step(5, eu_canary=DONE)
    assert r.phase("eu-canary") == "Smoke"
    actions = r.step(61, eu_canary=PASS)  # smoke window passes; the next wave must not start
    assert r.phase("eu-canary") == "Succeeded"
    assert not any(isinstance(a, StartStrategy) for a in actions)
    assert r.phase("eu-west") == r.phase("ap-south") == "Pending" and r.status.current_wave == 1
    (notice,) = frozen_notices(actions)
    assert "frozen in ap-south, eu-west: freeze-late (holiday; owner bob) until lifted" in notice.reason
    assert "until the freeze is lifted" in r.status.message


def test_a_freeze_elsewhere_does_not_hold() -> None:
    other_app = runtime_freeze("f1", "r", "o", "cart", None, T0 - timedelta(hours=1), None)
    other_region = Freeze("f2", "r", "o", regions=("us-east",), start=T0 - timedelta(hours=1), end=END)
    r = Frozen(other_app, other_region)
    assert StartStrategy("eu-canary") in r.step()
    assert r.status.frozen == ""


def test_one_region_of_a_wave_frozen() -> None:
    west = Freeze("west", "maintenance", "netops", regions=("eu-west",), start=T0, end=END)
    r = Frozen(west)
    r.step()
    r.step(5, eu_canary=DONE)
    actions = r.step(61, eu_canary=PASS)
    assert StartStrategy("ap-south") in actions and StartStrategy("eu-west") not in actions
    assert r.phase("eu-west") == "Pending" and "frozen in eu-west: west" in r.status.frozen


def test_rollback_drain_and_restore_run_while_frozen() -> None:
    late = runtime_freeze("freeze-late", "holiday", "bob", None, None, T0 + timedelta(seconds=10), None)
    r = Frozen(late)
    r.step()
    r.step(20, eu_canary=RUNNING)
    r.status.frozen = "frozen in eu-west: freeze-late (holiday; owner bob) until lifted"  # said earlier
    actions = r.step(1, requests=[Request("rollback", "bad", "carol")], eu_canary=RUNNING)
    assert r.phase() == "RollingBack" and SetRegionWeight("eu-canary", 0) in actions  # drain
    actions = r.step(61, eu_canary=RegionView(strategy_phase=S.PROGRESSING, drain_moved=1.0))
    assert any(isinstance(a, BeginRollback) for a in actions)
    actions = r.step(5, eu_canary=RegionView(strategy_phase=S.ROLLED_BACK))
    assert SetRegionWeight("eu-canary", 100) in actions  # restore
    assert r.phase() == "RolledBack"
    assert r.status.frozen == ""  # a rolled-back release is not shown as frozen


def test_failure_while_frozen_still_rolls_back() -> None:
    r = Frozen()
    r.step()
    r.freezes = (ALL,)
    r.step(5, eu_canary=DONE)
    r.step(10, eu_canary=RegionView(strategy_phase=S.SUCCEEDED, smoke=Verdict.FAILURE, smoke_reason="5xx"))
    assert r.phase() == "RollingBack"


def test_override_lets_the_release_through_and_is_audited() -> None:
    r = Frozen(ALL)
    r.step()
    assert r.phase() == "Pending"
    actions = r.step(5, requests=[Request("override-freeze", "hotfix for INC-7", "dave")])
    assert StartStrategy("eu-canary") in actions
    assert Notify("freezeOverride", "freezes overridden by dave: hotfix for INC-7", warning=True) in actions
    assert r.status.freeze_override == "dave: hotfix for INC-7"
    entry = next(a for a in r.status.audit if a.action == "override-freeze")
    assert (entry.by, entry.reason) == ("dave", "hotfix for INC-7")
    r.step(5, eu_canary=DONE)
    actions = r.step(61, eu_canary=PASS)
    assert StartStrategy("eu-west") in actions and StartStrategy("ap-south") in actions
    assert r.status.to_dict()["freezeOverride"] == "dave: hotfix for INC-7"


def test_status_survives_a_restart() -> None:
    from rollout.release import ReleaseStatus

    r = Frozen(ALL)
    r.step()
    r.status = ReleaseStatus.from_dict(r.status.to_dict())
    assert r.step(30) == [] and r.status.frozen.startswith("frozen in eu-canary: freeze-abc")

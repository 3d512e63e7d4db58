"""A region's apiserver down after its step (test_orchestrator covers before it, and
tests/integration/strategies/test_cluster_adapter.py during it): while the region is in its
smoke window, and while it is being rolled back. No IO: the promotion state machine, pass by pass."""

from __future__ import annotations

from regions.analysis.model import Verdict
from rollout.orchestrator import BeginRollback, Notify, RegionView, SetRegionWeight, StartStrategy
from strategies.model import Phase as S
from tests.unit.rollout.test_orchestrator import DONE, PASS, Replay

DOWN = RegionView(reachable=False)


def test_a_region_down_during_its_smoke_window_pauses_the_release_and_never_promotes() -> None:
    r = Replay()
    r.step()
    r.step(5, eu_canary=DONE)
    assert r.phase("eu-canary") == "Smoke"
    actions = [a for _ in range(4) for a in r.step(30, eu_canary=DOWN)]  # 120 s down; the window is 60 s
    assert r.phase() == "Paused" and r.status.current_wave == 0
    assert [a for a in actions if isinstance(a, Notify)] == [
        Notify(
            "paused",
            "smoke window inconclusive in eu-canary: the smoke window ended without enough evidence",
            "eu-canary",
            warning=True,
        )
    ]
    assert not any(isinstance(a, StartStrategy) for a in actions)  # the next wave never starts
    assert r.step(5, eu_canary=PASS) == [] and r.phase() == "Paused"  # back: still waits for a responder


def test_a_region_down_while_it_is_rolled_back_waits_then_finishes_the_rollback() -> None:
    r = Replay()
    r.step()
    r.step(10, eu_canary=DONE)
    r.step(4, eu_canary=RegionView(strategy_phase=S.SUCCEEDED, smoke=Verdict.FAILURE, smoke_reason="5xx"))
    actions = r.step(1, eu_canary=RegionView(drain_moved=0.995))
    assert BeginRollback("eu-canary", "smoke check failed: 5xx") in actions
    for _ in range(3):  # 90 s down mid-rollback: nothing is decided, the region stays drained
        assert r.step(30, eu_canary=DOWN) == []
        assert r.phase() == "RollingBack" and r.phase("eu-canary") == "RollingBack"
    actions = r.step(1, eu_canary=RegionView(strategy_phase=S.ROLLED_BACK))
    assert SetRegionWeight("eu-canary", 100) in actions  # its traffic is restored only once rolled back
    assert r.phase() == "RolledBack" and r.status.quarantined

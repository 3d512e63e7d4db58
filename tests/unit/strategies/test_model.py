import itertools

import pytest

from strategies.model import TRANSITIONS, IllegalTransition, Phase, StrategyStatus

from .helpers import T0

ALLOWED = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}


@pytest.mark.parametrize(("source", "target"), sorted(itertools.product(Phase, Phase)))
def test_transition_table(source: Phase, target: Phase) -> None:
    status = StrategyStatus(phase=source, step=3)
    if source == target or (source, target) in ALLOWED:
        moved = status.to(target, T0)
        assert moved.phase is target
        assert moved.step == (0 if target is Phase.ROLLING_BACK and source != target else 3)
    else:
        with pytest.raises(IllegalTransition, match=f"{source.value} -> {target.value}"):
            status.to(target, T0)


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_is_reachable_or_initial(phase: Phase) -> None:
    assert phase is Phase.PENDING or any(phase in targets for targets in TRANSITIONS.values())


def test_terminal_phases_only_lead_to_rollback() -> None:
    assert TRANSITIONS[Phase.ROLLED_BACK] == frozenset()
    assert TRANSITIONS[Phase.SUCCEEDED] == {Phase.ROLLING_BACK}


def test_status_round_trips_through_json() -> None:
    import json

    status = StrategyStatus(
        phase=Phase.PAUSED,
        step=2,
        step_name="pause#2",
        weight=40,
        active_color="blue",
        new_color="green",
        started_at=T0,
        step_started_at=T0,
        progress_marker="g1",
        progress_since=T0,
        switched_at=T0,
        finished_at=None,
        reason="Pause",
        message="m",
    )
    assert StrategyStatus.from_dict(json.loads(json.dumps(status.to_dict()))) == status
    assert StrategyStatus.from_dict({}) == StrategyStatus()

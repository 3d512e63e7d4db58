"""One region step (strategies.driver.drive) and its one error policy, against the in-memory cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import structlog

from regions.analysis.model import Verdict
from strategies.driver import RETRY, drive
from strategies.errors import ApplyConflict, PermanentError, Unreachable
from strategies.fake import FakeCluster
from strategies.model import Action, Apply, Event, Phase, RegionRollout, Snapshot, StrategyStatus

from .helpers import T0, rollout

R = rollout("catalog")
FIRST = rollout("catalog", first=True)


class Failing(FakeCluster):
    """Observes like the fake; `execute` of writes raises `error` (Events still go through)."""

    def __init__(self, error: Exception | None = None, *, on_observe: Exception | None = None) -> None:
        super().__init__()
        self.error, self.on_observe = error, on_observe

    def observe(self, rollout: RegionRollout, *, analysis: Verdict | None = None, commands: Any = None) -> Snapshot:
        if self.on_observe is not None:
            raise self.on_observe
        return super().observe(rollout, analysis=analysis, commands=commands)

    def execute(self, rollout: RegionRollout, actions: Sequence[Action], *, logger: Any = None) -> int:
        if self.error is not None and any(not isinstance(a, Event) for a in actions):
            raise self.error
        return super().execute(rollout, actions, logger=logger)


def test_a_step_applies_and_records_what_it_decided() -> None:
    cluster = FakeCluster()
    step = drive(cluster, R, StrategyStatus(), T0)
    assert step.executed and step.writes == 2 and step.error == "" and not step.transient
    assert step.status.phase is Phase.PROGRESSING and step.decision is not None
    assert [a for a in step.decision.actions if isinstance(a, Apply)]


@pytest.mark.parametrize("where", ["observe", "execute"])
def test_a_transient_error_changes_nothing_and_backs_off(where: str) -> None:
    error = Unreachable("connection refused")
    cluster = Failing(on_observe=error) if where == "observe" else Failing(error)
    status = StrategyStatus()
    first = drive(cluster, R, status, T0)
    later = drive(cluster, R, status, T0, failures=4)
    assert first.transient and first.status == status and first.error == "connection refused"
    assert not first.executed and cluster.events == []
    assert 0 < first.retry_after < later.retry_after <= RETRY.maximum * (1 + RETRY.jitter)


@pytest.mark.parametrize(("previous", "phase"), [(True, Phase.ROLLING_BACK), (False, Phase.FAILED)])
def test_a_permanent_error_fails_the_step_at_once_with_its_message(previous: bool, phase: Phase) -> None:
    cluster = Failing(PermanentError("Forbidden (403): cannot patch deployments", reason="Forbidden", status=403))
    with structlog.testing.capture_logs() as logs:
        step = drive(cluster, R if previous else FIRST, StrategyStatus(), T0)
    assert not step.transient and step.status.phase is phase
    assert step.status.reason == "Forbidden" and "cannot patch deployments" in step.status.message
    assert [(e.reason, e.type) for e in cluster.events] == [("Forbidden", "Warning")]
    assert "cannot patch deployments" in cluster.events[0].message
    failed = [entry for entry in logs if entry["log_level"] == "error"]
    assert len(failed) == 1 and failed[0]["reason"] == "Forbidden" and "exc_info" not in failed[0]


def test_a_permanent_error_while_rolling_back_ends_failed() -> None:
    cluster = Failing(ApplyConflict("fields owned by another manager: replicas", managers=("hpa",)))
    rolling_back = StrategyStatus(phase=Phase.ROLLING_BACK, started_at=T0, step_started_at=T0)
    step = drive(cluster, R, rolling_back, T0)
    assert step.status.phase is Phase.FAILED and step.status.reason == "ApplyConflict"
    assert step.requeue_after is None  # settled: nothing retries it


def test_without_the_lease_nothing_is_written() -> None:
    cluster = FakeCluster()
    step = drive(cluster, R, StrategyStatus(), T0, may_write=False)
    assert not step.executed and step.writes == 0 and cluster.writes == []
    assert step.status.phase is Phase.PROGRESSING  # what would be recorded, for the caller to drop


def test_the_analysis_hook_answers_a_pending_analysis_step() -> None:
    asked: list[int] = []
    canary = rollout("checkout")

    def analysis(request: Any) -> Verdict | None:
        asked.append(request.step)
        return Verdict.SUCCESS

    cluster, status = FakeCluster(), StrategyStatus()
    for _ in range(20):
        status = drive(cluster, canary, status, T0, analysis=analysis).status
        if asked:
            break
    assert asked, "the canary plan's analysis step was never reached"

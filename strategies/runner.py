"""Drive one app in one region: observe, decide, execute. The orchestrator owns the real loop;
`reconcile` is its unit of work and `run_until_settled` a simple loop for tests and the CLI.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import structlog

from regions.analysis.model import Verdict
from strategies import decide, pending_analysis
from strategies.cluster import Cluster
from strategies.engine import fail_permanently
from strategies.errors import PermanentError, TemporaryError
from strategies.model import (
    AnalysisRequest,
    Commands,
    Decision,
    Event,
    RegionRollout,
    StrategyStatus,
)

AnalysisHook = Callable[[AnalysisRequest], Verdict | None]
log = structlog.get_logger("strategies")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Reconciled:
    decision: Decision
    status: StrategyStatus  # what to store (the decision's status, or a failure recorded on it)
    writes: int
    requeue_after: float | None
    error: str = ""


def reconcile(cluster: Cluster, rollout: RegionRollout, status: StrategyStatus, now: datetime, *,
              analysis: AnalysisHook | None = None, commands: Commands | None = None) -> Reconciled:
    """One pass: observe, run the pending analysis (if any), decide, execute."""
    logger = log.bind(app=rollout.app, region=rollout.region, release=rollout.release_number,
                      strategy=rollout.kind)
    snap = cluster.observe(rollout, commands=commands)
    request = pending_analysis(rollout, status, snap)
    if request is not None and analysis is not None:
        snap = replace(snap, analysis=analysis(request))
    decision = decide(rollout, status, snap, now)
    new = decision.status
    logger = logger.bind(phase=new.phase.value, step=new.step, step_name=new.step_name)
    try:
        writes = cluster.execute(rollout, decision.actions, logger=logger)
    except TemporaryError as exc:
        logger.warning("actions not done, will retry", error=str(exc))
        return Reconciled(decision, new, 0, 5.0, str(exc))
    except PermanentError as exc:
        failed = fail_permanently(new, exc.reason, str(exc), now, rollout.previous is not None)
        logger.error("step failed", reason=exc.reason, error=str(exc))
        with contextlib.suppress(TemporaryError, PermanentError):
            cluster.execute(rollout, (Event(_workload(rollout, new), exc.reason, str(exc), "Warning"),))
        return Reconciled(decision, failed, 0, 0.0 if not failed.settled else None, str(exc))
    if new.phase != status.phase or new.step != status.step:
        logger.info("status", reason=new.reason, message=new.message, weight=new.weight)
    return Reconciled(decision, new, writes, decision.requeue_after)


def _workload(rollout: RegionRollout, status: StrategyStatus) -> str:
    if rollout.kind == "blueGreen" and status.new_color:
        return f"{rollout.app}-{status.new_color}"
    return rollout.app


def run_until_settled(cluster: Cluster, rollout: RegionRollout, status: StrategyStatus | None = None, *,
                      timeout: float = 300.0, analysis: AnalysisHook | None = None,
                      commands: Callable[[StrategyStatus], Commands] | None = None,
                      clock: Callable[[], datetime] = utcnow, sleep: Callable[[float], None] = time.sleep,
                      max_wait: float = 1.0, stop: Callable[[StrategyStatus], bool] | None = None,
                      on_pass: Callable[[Reconciled], None] | None = None) -> StrategyStatus:
    """Reconcile until the status is terminal or paused (or `stop(status)`); TimeoutError otherwise."""
    status = status or StrategyStatus()
    deadline = clock() + timedelta(seconds=timeout)  # on the given clock, so fake clocks time out too
    while True:
        result = reconcile(cluster, rollout, status, clock(), analysis=analysis,
                           commands=commands(status) if commands else None)
        status = result.status
        if on_pass is not None:
            on_pass(result)
        if status.settled or (stop is not None and stop(status)):
            return status
        if clock() > deadline:
            raise TimeoutError(f"{rollout.app} in {rollout.region} not settled after {timeout}s: "
                               f"{status.phase.value} step {status.step} ({status.step_name}) "
                               f"{status.message}")
        sleep(min(max_wait, result.requeue_after if result.requeue_after is not None else max_wait))

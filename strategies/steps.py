"""The vocabulary of steps (no IO): what a step sees (`Ctx`), what it answers (`StepResult`:
wait, done, pause or fail) and the `Step` itself. Kept apart from the engine so the modules that
build release-wide steps (strategies/hooks.py) and the engine that places them (engine.around)
do not import each other; strategies.engine re-exports every name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from strategies.model import Action, RegionRollout, Snapshot, StrategyStatus

WAIT_READY = 2.0  # seconds between looks while pods become ready
WAIT_ANALYSIS = 5.0


@dataclass(frozen=True)
class Ctx:
    rollout: RegionRollout
    status: StrategyStatus
    snap: Snapshot
    now: datetime


@dataclass(frozen=True)
class StepResult:
    kind: Literal["wait", "done", "pause", "fail"]
    actions: tuple[Action, ...] = ()
    status: StrategyStatus | None = None  # bookkeeping kept while waiting (progress marker, weight...)
    reason: str = ""
    message: str = ""
    requeue: float = WAIT_READY


def wait(*actions: Action, status: StrategyStatus | None = None, requeue: float = WAIT_READY) -> StepResult:
    return StepResult("wait", tuple(actions), status, requeue=requeue)


def done(status: StrategyStatus | None = None) -> StepResult:
    return StepResult("done", status=status)


def fail(reason: str, message: str) -> StepResult:
    return StepResult("fail", reason=reason, message=message)


def pause(reason: str, message: str) -> StepResult:
    return StepResult("pause", reason=reason, message=message)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Ctx], StepResult]
    checks: tuple[str, ...] | None = None  # set on analysis steps: the checks to run (empty: all)

"""The drill's value types: what it observes, what it records in the action's status, its steps.

Plain data; `DrillState.to_status` / `from_status` are the drill's memory on the ReleaseAction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config.times import format_time, parse_time
from rollout.release import ReleasePhase

STEPS = ("drain", "rollback", "roll forward", "restore")
DRAIN, ROLLBACK, FORWARD, RESTORE = range(4)
RUNNING, DONE, FAILED, REJECTED = "Running", "Done", "Failed", "Rejected"
FINAL = frozenset({DONE, FAILED, REJECTED})
BUSY = frozenset({ReleasePhase.PENDING, ReleasePhase.PROGRESSING, ReleasePhase.PAUSED, ReleasePhase.ROLLING_BACK})
RESTORE_PERCENT = 90.0


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


@dataclass(frozen=True)
class Targets:
    drain_percent: float
    drain_within_s: float
    deadline_s: float  # the strategy's progressDeadline: rollback and roll forward each
    restore_percent: float = RESTORE_PERCENT

    def to_dict(self) -> dict[str, float]:
        return {
            "drainPercent": self.drain_percent,
            "drainWithinSeconds": self.drain_within_s,
            "deadlineSeconds": self.deadline_s,
            "restorePercent": self.restore_percent,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Targets:
        return cls(
            float(data["drainPercent"]),
            float(data["drainWithinSeconds"]),
            float(data["deadlineSeconds"]),
            float(data.get("restorePercent", RESTORE_PERCENT)),
        )


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
        return {
            "app": self.app,
            "region": self.region,
            "current": self.current.to_dict(),
            "previous": self.previous.to_dict(),
            "targets": self.targets.to_dict(),
            "regionStrategy": dict(self.region_strategy),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Facts:
        return cls(
            str(data["app"]),
            str(data["region"]),
            ReleaseRef.from_dict(data["current"]),
            ReleaseRef.from_dict(data["previous"]),
            Targets.from_dict(data["targets"]),
            dict(data.get("regionStrategy") or {}),
        )


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
        return cls(
            str(data["step"]),
            str(data.get("expected", "")),
            str(data.get("observed", "")),
            data.get("passed"),
            float(seconds) if seconds is not None else None,
        )


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
        out: dict[str, Any] = {
            "state": self.state,
            "message": self.message,
            "checklist": [i.to_dict() for i in self.checklist],
        }
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
        return cls(
            state=str(status.get("state") or ""),
            message=str(status.get("message") or ""),
            step=int(drill.get("step", DRAIN)),
            started_at=parse_time(status.get("startedAt")),
            step_started_at=parse_time(step_started),
            finished_at=parse_time(status.get("finishedAt")),
            baseline_rate=drill.get("baselineRate"),
            strategy=dict(drill.get("strategy") or {}),
            facts=Facts.from_dict(drill["facts"]) if drill.get("facts") else None,
            checklist=tuple(Item.from_dict(i) for i in status.get("checklist") or []),
            left_drained=bool(drill.get("leftDrained", False)),
        )


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


def without_none(value: Any) -> Any:
    """`value` without None values (the API server drops them; a stored status must compare equal)."""
    if isinstance(value, Mapping):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [without_none(v) for v in value]
    return value

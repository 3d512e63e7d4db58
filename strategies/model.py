"""Value types shared by the strategies: status (a state machine), snapshot, actions, decision.

Everything here is pure data. `StrategyStatus` is what the orchestrator stores on the Release's
status (via `to_dict` / `from_dict`); `Snapshot` is every read gathered before deciding; actions are
what the executor performs through a `Cluster`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from config.render import Rendered
from config.schema import BlueGreenStrategy, CanaryStrategy, HookPolicy, Prune, RollingStrategy
from config.times import format_time, parse_time
from regions.analysis.model import Verdict

FIELD_MANAGER = "regional-rollout"
ANNOTATION_APPLIED = "rollout.dev/applied-hash"
DEFAULT_GATEWAY = "rollout-gateway"


# --- phases -----------------------------------------------------------------------------------


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


# The one place phase changes are written down. Staying in a phase (next step) is always allowed.
TRANSITIONS: Mapping[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.PROGRESSING, Phase.ROLLING_BACK, Phase.FAILED}),
    Phase.PROGRESSING: frozenset({Phase.PAUSED, Phase.SUCCEEDED, Phase.ROLLING_BACK, Phase.FAILED}),
    Phase.PAUSED: frozenset({Phase.PROGRESSING, Phase.ROLLING_BACK, Phase.FAILED}),
    # a region that succeeded can still be rolled back when a later smoke window fails
    Phase.SUCCEEDED: frozenset({Phase.ROLLING_BACK}),
    Phase.ROLLING_BACK: frozenset({Phase.ROLLED_BACK, Phase.FAILED}),
    Phase.ROLLED_BACK: frozenset(),
    # a responder may still ask to restore the previous release after a failure
    Phase.FAILED: frozenset({Phase.ROLLING_BACK}),
}
TERMINAL = frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED})


class IllegalTransition(ValueError):
    """A move a state machine's transition table does not allow (the strategy's phases here, the
    release's and the region's in rollout.release): the one error for every state machine."""

    def __init__(self, source: StrEnum, target: StrEnum, machine: str = "phase"):
        super().__init__(f"illegal {machine} transition {source.value} -> {target.value}")
        self.source, self.target = source, target


def _ts(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


@dataclass(frozen=True)
class StrategyStatus:
    """Progress of one app's release in one region. Stored by the orchestrator, passed back in."""

    phase: Phase = Phase.PENDING
    step: int = 0  # index into the current phase's step list (forward steps, or rollback steps)
    step_name: str = ""
    weight: int = 0  # canary: traffic share of the canary track as last confirmed
    active_color: str | None = None  # blue/green: colour behind Service <app>
    new_color: str | None = None  # blue/green: colour of the release being rolled out
    started_at: datetime | None = None
    step_started_at: datetime | None = None
    progress_marker: str | None = None  # last observed rollout progress (for the progress deadline)
    progress_since: datetime | None = None
    switched_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""
    message: str = ""

    def to(self, phase: Phase, now: datetime, *, reason: str = "", message: str = "") -> StrategyStatus:
        """Enter `phase` at its first step; raises IllegalTransition when not allowed."""
        if phase != self.phase and phase not in TRANSITIONS[self.phase]:
            raise IllegalTransition(self.phase, phase)
        return replace(
            self,
            phase=phase,
            step=0 if phase is Phase.ROLLING_BACK and self.phase != phase else self.step,
            step_started_at=now,
            progress_marker=None,
            progress_since=None,
            finished_at=now if phase in TERMINAL else None,
            started_at=self.started_at or now,
            reason=reason or self.reason,
            message=message or self.message,
        )

    def next_step(self, now: datetime, name: str = "") -> StrategyStatus:
        return replace(
            self, step=self.step + 1, step_name=name, step_started_at=now, progress_marker=None, progress_since=None
        )

    @property
    def settled(self) -> bool:
        return self.phase in TERMINAL or self.phase is Phase.PAUSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "step": self.step,
            "stepName": self.step_name,
            "weight": self.weight,
            "activeColor": self.active_color,
            "newColor": self.new_color,
            "startedAt": _ts(self.started_at),
            "stepStartedAt": _ts(self.step_started_at),
            "progressMarker": self.progress_marker,
            "progressSince": _ts(self.progress_since),
            "switchedAt": _ts(self.switched_at),
            "finishedAt": _ts(self.finished_at),
            "reason": self.reason,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StrategyStatus:
        return cls(
            phase=Phase(data.get("phase", Phase.PENDING.value)),
            step=int(data.get("step", 0)),
            step_name=str(data.get("stepName", "")),
            weight=int(data.get("weight", 0)),
            active_color=data.get("activeColor"),
            new_color=data.get("newColor"),
            started_at=parse_time(data.get("startedAt")),
            step_started_at=parse_time(data.get("stepStartedAt")),
            progress_marker=data.get("progressMarker"),
            progress_since=parse_time(data.get("progressSince")),
            switched_at=parse_time(data.get("switchedAt")),
            finished_at=parse_time(data.get("finishedAt")),
            reason=str(data.get("reason", "")),
            message=str(data.get("message", "")),
        )


# --- what the strategy works on ---------------------------------------------------------------

StrategySpec = RollingStrategy | BlueGreenStrategy | CanaryStrategy


@dataclass(frozen=True)
class RegionRollout:
    """One app's release in one region: the plan's strategy and the rendered manifests.

    `release` is the new release rendered with track `stable`; `canary_release` the same release
    rendered with track `canary` (canary strategy only); `previous` the release that is live now,
    rendered from its own pinned commit: the rollback target (None for a first release).
    """

    app: str
    namespace: str
    region: str
    strategy: StrategySpec
    release: Rendered
    previous: Rendered | None = None
    canary_release: Rendered | None = None
    gateway: str = DEFAULT_GATEWAY
    traffic_workload: str | None = None  # canary/blueGreen: the Deployment taking traffic (default: app)
    prune: Prune = field(default_factory=Prune)  # the plan's `prune:` (strategies/prune.py)
    hook_policy: HookPolicy = field(default_factory=HookPolicy)  # the plan's `hooks:` (strategies/hooks.py)

    @property
    def workload(self) -> str:
        """The Deployment a canary or blue/green release shifts traffic to (config.policies)."""
        return self.traffic_workload or self.app

    @property
    def kind(self) -> str:
        return {RollingStrategy: "rolling", BlueGreenStrategy: "blueGreen", CanaryStrategy: "canary"}[
            type(self.strategy)
        ]

    @property
    def release_number(self) -> str:
        return self.release.identity.number


# --- what was observed ------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str = ""
    message: str = ""
    updated_at: datetime | None = None  # lastUpdateTime (or lastTransitionTime) as the cluster reported it

    def reported_before(self, moment: datetime | None) -> bool:
        return moment is not None and self.updated_at is not None and self.updated_at < moment


@dataclass(frozen=True)
class DeploymentState:
    name: str
    generation: int = 1
    observed_generation: int = 0
    spec_replicas: int = 1
    replicas: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0
    conditions: tuple[Condition, ...] = ()
    release: str | None = None  # rollout.dev/release label on the Deployment
    applied_hash: str | None = None

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    @property
    def rolled_out(self) -> bool:
        """The controller saw the latest spec and every pod is new and available; no old pod left."""
        return (
            self.observed_generation >= self.generation
            and self.updated == self.spec_replicas
            and self.available == self.spec_replicas
            and self.replicas == self.spec_replicas
        )

    @property
    def deadline_exceeded(self) -> bool:
        cond = self.condition("Progressing")
        return (
            cond is not None
            and cond.status == "False"
            and cond.reason == "ProgressDeadlineExceeded"
            and self.observed_generation >= self.generation
        )

    @property
    def progress_marker(self) -> str:
        return f"g{self.observed_generation}/u{self.updated}/r{self.ready}/a{self.available}/t{self.replicas}"


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


@dataclass(frozen=True)
class WorkloadState:
    """Any workload of a release, with its kind's health rules (`problem`: None when healthy).

    Deployment: the controller saw the latest spec (observedGeneration), every replica updated,
    available, no old one left. StatefulSet: observedGeneration, the replicas above the partition
    updated, every replica ready (and available where reported). DaemonSet: observedGeneration,
    every scheduled pod updated and available, numberUnavailable 0. Job: Complete (Failed fails).
    """

    kind: str
    name: str
    generation: int = 1
    observed_generation: int = 0
    desired: int = 1
    updated: int = 0
    ready: int = 0
    available: int | None = 0  # None: not reported (a StatefulSet on an older server)
    current: int = 0  # Deployment: status.replicas; DaemonSet: numberUnavailable
    partition: int = 0
    conditions: tuple[Condition, ...] = ()
    applied_hash: str | None = None

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    @property
    def problem(self) -> str | None:
        if self.kind == "Job":
            if (c := self.condition("Failed")) is not None and c.status == "True":
                return f"failed: {c.reason or ''} {c.message or ''}".strip()
            done = self.condition("Complete")
            return None if done is not None and done.status == "True" else "not complete yet"
        if self.observed_generation < self.generation:
            return f"generation {self.generation} not observed yet"
        if self.kind == "StatefulSet":
            if self.updated < self.desired - self.partition:
                return f"{self.updated}/{self.desired - self.partition} updated above partition {self.partition}"
            if self.ready < self.desired or (self.available is not None and self.available < self.desired):
                return f"{self.ready}/{self.desired} ready"
            return None
        if self.kind == "DaemonSet":
            if self.updated < self.desired or (self.available or 0) < self.desired or self.current > 0:
                return (
                    f"{self.available or 0}/{self.desired} available, {self.updated} updated, "
                    f"{self.current} unavailable"
                )
            return None
        if self.updated != self.desired or (self.available or 0) != self.desired or self.current != self.desired:
            return f"{self.available or 0}/{self.desired} available, {self.updated} updated, {self.current} in total"
        return None

    @property
    def failed(self) -> str | None:
        """A permanent failure the workload reports itself (deadline exceeded, Job failed), or None."""
        if self.kind == "Job":
            c = self.condition("Failed")
            return self.problem if c is not None and c.status == "True" else None
        c = self.condition("Progressing")
        if (
            c is not None
            and c.status == "False"
            and c.reason == "ProgressDeadlineExceeded"
            and self.observed_generation >= self.generation
        ):
            return "ProgressDeadlineExceeded"
        return None

    @property
    def progress_marker(self) -> str:
        return f"{self.kind}/{self.name}:g{self.observed_generation}/u{self.updated}/r{self.ready}/a{self.available}"


@dataclass(frozen=True)
class ServiceState:
    name: str
    selector: tuple[tuple[str, str], ...] = ()
    applied_hash: str | None = None

    @property
    def selector_map(self) -> dict[str, str]:
        return dict(self.selector)


@dataclass(frozen=True)
class RouteState:
    name: str
    weights: tuple[tuple[str, int], ...] = ()  # backend Service -> weight (rules[0])
    applied_hash: str | None = None

    def weight_of(self, service: str) -> int:
        return sum(w for s, w in self.weights if s == service)


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}" + (f" -n {self.namespace}" if self.namespace else "")


@dataclass(frozen=True)
class LiveObject:
    """An object of the app found in the region by the prune step's listing (strategies/prune.py)."""

    ref: ObjectRef
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    owned: bool = False  # has ownerReferences: made by a controller (a Pod, a ReplicaSet), never pruned
    deleting: bool = False  # deletionTimestamp set: on its way out already
    running: bool = False  # a Job that has neither completed nor failed

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)


@dataclass(frozen=True)
class Commands:
    """Responders' requests read from the Release object (the orchestrator clears them)."""

    promote: bool = False
    abort: str | None = None  # reason; present means roll back


@dataclass(frozen=True)
class Snapshot:
    """Every read a decision needs, gathered before deciding."""

    deployments: tuple[DeploymentState, ...] = ()
    workloads: tuple[WorkloadState, ...] = ()  # every Deployment, StatefulSet, DaemonSet and Job read
    services: tuple[ServiceState, ...] = ()
    routes: tuple[RouteState, ...] = ()
    applied: tuple[tuple[ObjectRef, str | None], ...] = ()  # every observed object -> its applied hash
    analysis: Verdict | None = None  # verdict of the current analysis step; None: still running
    commands: Commands = field(default_factory=Commands)
    # the app's objects in the region, listed by the driver at the prune step only; None: not
    # listed (the prune step waits for the listing); () by default: nothing found, nothing pruned
    inventory: tuple[LiveObject, ...] | None = ()

    def deployment(self, name: str) -> DeploymentState | None:
        return next((d for d in self.deployments if d.name == name), None)

    def workload(self, kind: str, name: str) -> WorkloadState | None:
        return next((w for w in self.workloads if w.kind == kind and w.name == name), None)

    def service(self, name: str) -> ServiceState | None:
        return next((s for s in self.services if s.name == name), None)

    def route(self, name: str) -> RouteState | None:
        return next((r for r in self.routes if r.name == name), None)

    def applied_hash(self, ref: ObjectRef) -> str | None:
        return next((h for r, h in self.applied if r == ref), None)

    def exists(self, ref: ObjectRef) -> bool:
        return any(r == ref for r, _ in self.applied)


# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Apply:
    """Server-side apply of whole desired objects (field manager `regional-rollout`)."""

    objects: tuple[dict[str, Any], ...]
    reason: str = ""


@dataclass(frozen=True)
class Scale:
    """Change a Deployment's replica count (applied as the whole desired object, same manager)."""

    name: str
    replicas: int
    object: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)


@dataclass(frozen=True)
class SetWeights:
    """Route `weight`% of the region's traffic to the canary track (router-specific objects)."""

    router: str
    weight: int
    objects: tuple[dict[str, Any], ...] = field(repr=False, compare=False, default=())


@dataclass(frozen=True)
class Delete:
    ref: ObjectRef
    propagation: Literal["Background", "Foreground", "Orphan"] | None = None  # None: the server's default


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event on the workload `deployment` (Deployment name)."""

    deployment: str
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


Action = Apply | Scale | SetWeights | Delete | Event


@dataclass(frozen=True)
class AnalysisRequest:
    """What an analysis hook is asked to judge (the current analysis step)."""

    app: str
    region: str
    release: str
    step: int
    checks: tuple[str, ...]
    started_at: datetime | None


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...]
    status: StrategyStatus
    requeue_after: float | None = None  # seconds; None when settled (terminal or paused)

    @property
    def writes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if not isinstance(a, Event))

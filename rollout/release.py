"""The Release: one application change travelling through the regions.

Phases of the release and of each region are explicit state machines: every allowed transition
is written down once below and anything else raises IllegalTransition (the one of
strategies.model). The status is stored on the Release custom resource (deploy/crds/); these
dataclasses are its typed form.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from config.times import format_time
from strategies.model import IllegalTransition


class ReleasePhase(StrEnum):
    PENDING = "Pending"  # created from a commit, not started
    PROGRESSING = "Progressing"  # some wave is rolling or baking
    PAUSED = "Paused"  # a responder or an inconclusive analysis stopped it
    SUCCEEDED = "Succeeded"  # every wave passed its smoke window
    ROLLING_BACK = "RollingBack"  # a region failed: draining and rolling back
    ROLLED_BACK = "RolledBack"  # every touched region is back on the previous release
    SUPERSEDED = "Superseded"  # a newer commit replaced it before it started
    FAILED = "Failed"  # it can never be built (its commit is gone): nothing more is applied


class RegionPhase(StrEnum):
    PENDING = "Pending"
    WAITING = "Waiting"  # cluster unreachable: the wave waits, never skips the region
    PROGRESSING = "Progressing"  # the strategy is moving the region to the release
    SMOKE = "Smoke"  # fully on the release; checks run through the smoke window
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DRAINING = "Draining"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"


_RELEASE_TRANSITIONS: dict[ReleasePhase, frozenset[ReleasePhase]] = {
    ReleasePhase.PENDING: frozenset(
        {ReleasePhase.PROGRESSING, ReleasePhase.SUPERSEDED, ReleasePhase.PAUSED, ReleasePhase.FAILED}
    ),
    ReleasePhase.PROGRESSING: frozenset(
        {ReleasePhase.PAUSED, ReleasePhase.SUCCEEDED, ReleasePhase.ROLLING_BACK, ReleasePhase.FAILED}
    ),
    ReleasePhase.PAUSED: frozenset(
        {ReleasePhase.PROGRESSING, ReleasePhase.ROLLING_BACK, ReleasePhase.SUPERSEDED, ReleasePhase.FAILED}
    ),
    ReleasePhase.ROLLING_BACK: frozenset({ReleasePhase.ROLLED_BACK}),
    ReleasePhase.SUCCEEDED: frozenset({ReleasePhase.ROLLING_BACK}),  # a responder may still roll back
    ReleasePhase.ROLLED_BACK: frozenset(),
    ReleasePhase.SUPERSEDED: frozenset(),
    ReleasePhase.FAILED: frozenset(),
}

_REGION_TRANSITIONS: dict[RegionPhase, frozenset[RegionPhase]] = {
    RegionPhase.PENDING: frozenset({RegionPhase.PROGRESSING, RegionPhase.WAITING}),
    RegionPhase.WAITING: frozenset(
        {RegionPhase.PROGRESSING, RegionPhase.PENDING, RegionPhase.DRAINING, RegionPhase.ROLLING_BACK}
    ),
    RegionPhase.PROGRESSING: frozenset(
        {RegionPhase.SMOKE, RegionPhase.FAILED, RegionPhase.ROLLING_BACK, RegionPhase.DRAINING, RegionPhase.WAITING}
    ),
    RegionPhase.SMOKE: frozenset(
        {RegionPhase.SUCCEEDED, RegionPhase.FAILED, RegionPhase.ROLLING_BACK, RegionPhase.DRAINING}
    ),
    RegionPhase.SUCCEEDED: frozenset({RegionPhase.ROLLING_BACK, RegionPhase.DRAINING}),
    RegionPhase.FAILED: frozenset({RegionPhase.DRAINING, RegionPhase.ROLLING_BACK}),
    RegionPhase.DRAINING: frozenset({RegionPhase.ROLLING_BACK}),
    RegionPhase.ROLLING_BACK: frozenset({RegionPhase.ROLLED_BACK}),
    RegionPhase.ROLLED_BACK: frozenset(),
}

TERMINAL_RELEASE_PHASES = frozenset(p for p, nxt in _RELEASE_TRANSITIONS.items() if not nxt)
ACTIVE_REGION_PHASES = frozenset({RegionPhase.PROGRESSING, RegionPhase.SMOKE, RegionPhase.WAITING})


def check_release_transition(current: ReleasePhase, new: ReleasePhase) -> ReleasePhase:
    if new != current and new not in _RELEASE_TRANSITIONS[current]:
        raise IllegalTransition(current, new, "release phase")
    return new


def check_region_transition(current: RegionPhase, new: RegionPhase) -> RegionPhase:
    if new != current and new not in _REGION_TRANSITIONS[current]:
        raise IllegalTransition(current, new, "region phase")
    return new


class _Serial:
    """to_dict/from_dict for flat dataclasses stored in the custom resource's status."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [], {})}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class AuditEntry(_Serial):
    """Something the controller or a person did to the release, and why."""

    time: str
    action: str
    reason: str
    region: str | None = None
    by: str = "controller"


@dataclass
class RegionStatus(_Serial):
    phase: str = RegionPhase.PENDING.value
    wave: int = 0
    started_at: str | None = None
    smoke_started_at: str | None = None
    smoke_seconds: float | None = None
    completed_at: str | None = None
    strategy: dict[str, Any] = field(default_factory=dict)  # the strategy's own status, opaque here
    analysis: dict[str, Any] = field(default_factory=dict)  # the smoke window's measurements
    weight: int | None = None  # canary weight inside the region
    message: str = ""

    def move(self, phase: RegionPhase) -> None:
        self.phase = check_region_transition(RegionPhase(self.phase), phase).value


@dataclass
class DrainRecord(_Serial):
    region: str
    started_at: str
    completed_at: str | None = None
    seconds: float | None = None
    target_seconds: float | None = None
    target_percent: float | None = None
    met: bool | None = None
    restored_at: str | None = None


class RevertState(StrEnum):
    """The Git revert after a rollback (`rollback.revertCommit`), see rollout/revert.py."""

    PENDING = "Pending"  # to be pushed (retried with backoff while the remote fails transiently)
    PUSHED = "Pushed"  # `commit` is on `branch`
    NOT_NEEDED = "NotNeeded"  # the branch already has the previous release's folder
    NOT_REVERTED = "NotReverted"  # left to people: the app's folder changed since the release
    FAILED = "Failed"  # the remote refused (credentials, protected branch): fix and revert by hand


@dataclass
class RevertRecord(_Serial):
    state: str = RevertState.PENDING.value
    branch: str | None = None
    commit: str | None = None
    message: str = ""
    attempts: int = 0
    next_attempt_at: str | None = None


@dataclass
class ApprovalRecord(_Serial):
    """A `rollout approve` or `rollout refuse` of a wave's gate, as the controller judged it."""

    wave: str
    by: str
    at: str
    verdict: str = "approve"  # or "refuse"
    groups: list[str] = field(default_factory=list)
    counted: bool = False
    note: str = ""  # "not counted: why" (or what it did)
    reason: str = ""


@dataclass
class ReleaseStatus:
    phase: str = ReleasePhase.PENDING.value
    current_wave: int = 0
    regions: dict[str, RegionStatus] = field(default_factory=dict)
    drains: list[DrainRecord] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    quarantined: bool = False
    promote_full: bool = False  # a responder skipped every remaining smoke window
    # The freeze holding the release before a region boundary ("" when none) and, once a responder
    # overrode freezes for this release (`rollout override-freeze`), who and why.
    frozen: str = ""
    freeze_override: str = ""
    # Approval gates (rollout/approvals.py): every approve/refuse received, the waves whose gate
    # opened, and the gate the release waits at ({wave, required, have, from, expired}; {} when none).
    approvals: list[ApprovalRecord] = field(default_factory=list)
    approved_waves: list[str] = field(default_factory=list)
    awaiting_approval: dict[str, Any] = field(default_factory=dict)
    # Release groups: the dependencies' releases this one waits for, and where ("waiting for backend
    # 2.1.0 to pass in eu-west; ..."; "" when none). Nobody needs to act on it.
    waiting_for: str = ""
    message: str = ""
    failed_region: str | None = None
    detect_seconds: float | None = None  # first exposure of the failed region -> failing verdict
    # The release that was live when this one started: what a rollback returns to (None: first release).
    previous_commit: str | None = None
    previous_version: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    revert: RevertRecord | None = None  # rollback.revertCommit: the revert pushed to Git (or why not)

    def move(self, phase: ReleasePhase) -> None:
        self.phase = check_release_transition(ReleasePhase(self.phase), phase).value

    def record(
        self, now: datetime, action: str, reason: str, region: str | None = None, by: str = "controller"
    ) -> None:
        self.audit.append(AuditEntry(format_time(now), action, reason, region, by))

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "currentWave": self.current_wave,
            "regions": {name: _camel(r.to_dict()) for name, r in sorted(self.regions.items())},
            "drains": [_camel(d.to_dict()) for d in self.drains],
            "audit": [_camel(a.to_dict()) for a in self.audit],
            "quarantined": self.quarantined,
            "message": self.message,
            **({"promoteFull": True} if self.promote_full else {}),
            **({"frozen": self.frozen} if self.frozen else {}),
            **({"freezeOverride": self.freeze_override} if self.freeze_override else {}),
            **({"approvals": [_camel(a.to_dict()) for a in self.approvals]} if self.approvals else {}),
            **({"approvedWaves": list(self.approved_waves)} if self.approved_waves else {}),
            **({"awaitingApproval": dict(self.awaiting_approval)} if self.awaiting_approval else {}),
            **({"waitingFor": self.waiting_for} if self.waiting_for else {}),
            **({"failedRegion": self.failed_region} if self.failed_region else {}),
            **({"detectSeconds": self.detect_seconds} if self.detect_seconds is not None else {}),
            **({"previousCommit": self.previous_commit} if self.previous_commit else {}),
            **({"previousVersion": self.previous_version} if self.previous_version else {}),
            **({"startedAt": self.started_at} if self.started_at else {}),
            **({"completedAt": self.completed_at} if self.completed_at else {}),
            **({"revert": _camel(self.revert.to_dict())} if self.revert else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ReleaseStatus:
        data = data or {}
        return cls(
            phase=data.get("phase", ReleasePhase.PENDING.value),
            current_wave=int(data.get("currentWave", 0)),
            regions={n: RegionStatus.from_dict(_snake(r)) for n, r in (data.get("regions") or {}).items()},
            drains=[DrainRecord.from_dict(_snake(d)) for d in data.get("drains") or []],
            audit=[AuditEntry.from_dict(_snake(a)) for a in data.get("audit") or []],
            quarantined=bool(data.get("quarantined", False)),
            promote_full=bool(data.get("promoteFull", False)),
            frozen=data.get("frozen", ""),
            freeze_override=data.get("freezeOverride", ""),
            approvals=[ApprovalRecord.from_dict(_snake(a)) for a in data.get("approvals") or []],
            approved_waves=list(data.get("approvedWaves") or []),
            awaiting_approval=dict(data.get("awaitingApproval") or {}),
            waiting_for=data.get("waitingFor", ""),
            message=data.get("message", ""),
            failed_region=data.get("failedRegion"),
            detect_seconds=data.get("detectSeconds"),
            previous_commit=data.get("previousCommit"),
            previous_version=data.get("previousVersion"),
            started_at=data.get("startedAt"),
            completed_at=data.get("completedAt"),
            revert=RevertRecord.from_dict(_snake(data["revert"])) if data.get("revert") else None,
        )


def _camel(data: dict[str, Any]) -> dict[str, Any]:
    return {_to_camel(k): v for k, v in data.items()}


def _snake(data: dict[str, Any]) -> dict[str, Any]:
    return {"".join(f"_{c.lower()}" if c.isupper() else c for c in k): v for k, v in data.items()}


def _to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class ApprovalGate:
    """A wave's approval gate as planned (config.schema.Approval), frozen with the release."""

    required: int = 1
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    not_by_author: bool = False
    expires_seconds: float | None = None  # None: approvals never expire

    def to_dict(self) -> dict[str, Any]:
        return {
            "required": self.required,
            "from": {"users": list(self.users), "groups": list(self.groups)},
            "notByAuthor": self.not_by_author,
            **({"expiresSeconds": self.expires_seconds} if self.expires_seconds is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApprovalGate:
        who = data.get("from") or {}
        expires = data.get("expiresSeconds")
        return cls(
            required=int(data.get("required", 1)),
            users=tuple(who.get("users") or ()),
            groups=tuple(who.get("groups") or ()),
            not_by_author=bool(data.get("notByAuthor", False)),
            expires_seconds=float(expires) if expires is not None else None,
        )


@dataclass(frozen=True)
class PlannedWaveSpec:
    name: str
    regions: tuple[str, ...]
    smoke_seconds: float
    max_parallel: int
    approval: ApprovalGate | None = None


@dataclass(frozen=True)
class ReleaseSpec:
    """What a release is, frozen when it is created from a pinned commit."""

    app: str
    commit: str
    version: str
    plan_digest: str
    content_digest: str
    waves: tuple[PlannedWaveSpec, ...]
    # The pinned renderer that rendered it and its version, e.g. (("helm", "v3.22.0"),); () for Jinja.
    renderers: tuple[tuple[str, str], ...] = ()
    author: str = ""  # the commit's author, "Name <email>" (approval gates' notByAuthor); "": not recorded

    @property
    def name(self) -> str:
        return release_name(self.app, self.commit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "commit": self.commit,
            "version": self.version,
            "planDigest": self.plan_digest,
            "contentDigest": self.content_digest,
            "waves": [
                {
                    "name": w.name,
                    "regions": list(w.regions),
                    "smokeSeconds": w.smoke_seconds,
                    "maxParallel": w.max_parallel,
                    **({"approval": w.approval.to_dict()} if w.approval else {}),
                }
                for w in self.waves
            ],
            **({"renderers": dict(self.renderers)} if self.renderers else {}),
            **({"author": self.author} if self.author else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReleaseSpec:
        return cls(
            app=data["app"],
            commit=data["commit"],
            version=data["version"],
            plan_digest=data["planDigest"],
            content_digest=data["contentDigest"],
            waves=tuple(
                PlannedWaveSpec(
                    w["name"],
                    tuple(w["regions"]),
                    float(w["smokeSeconds"]),
                    int(w["maxParallel"]),
                    ApprovalGate.from_dict(w["approval"]) if w.get("approval") else None,
                )
                for w in data.get("waves", [])
            ),
            renderers=tuple(sorted((data.get("renderers") or {}).items())),
            author=data.get("author", ""),
        )


def release_name(app: str, commit: str) -> str:
    return f"{app}-{commit[:12]}"

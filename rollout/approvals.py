"""Approval gates: which `rollout approve` / `rollout refuse` count, and whether a wave may start.
Pure: the orchestrator and the controller call the same functions on the same stored release.

A wave's gate (`approval` in rollout.yaml, frozen into the release as `ApprovalGate`) opens once
`required` distinct identities allowed by it approved that wave, none of them the commit's author
when `notByAuthor`, each approval younger than `expiresAfter`. Identities are what the API server
authenticated: `requestedBy` and `requesterGroups` of the ReleaseAction, which the admission policy
(deploy/base/admission-policy.yaml) holds to the requester's own user name and groups. A refusal by
an allowed identity is recorded and closes the gate again: only approvals given after it count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from config.times import format_time, parse_time
from rollout.release import ApprovalGate, ApprovalRecord, RegionPhase, ReleaseSpec, ReleaseStatus

APPROVE, REFUSE = "approve", "refuse"
VERDICTS = frozenset({APPROVE, REFUSE})


@dataclass(frozen=True)
class Closed:
    """A wave's gate that keeps it from starting now."""

    wave: str
    required: int
    have: int
    allowed: str  # "users a, b or groups c"
    expired: int = 0  # approvals that counted but are older than expiresAfter
    refused: str = ""  # the last refusal standing: "by: reason"

    def text(self) -> str:
        out = f"awaiting approval for wave {self.wave}: {self.have}/{self.required} approvals from {self.allowed}"
        if self.expired:
            out += f"; {self.expired} expired (older than expiresAfter): the gate closed again"
        if self.refused:
            out += f"; refused by {self.refused}"
        return out + f" (rollout approve APP --wave {self.wave})"

    def marker(self) -> dict[str, object]:
        """status.awaitingApproval: what a UI keys on."""
        return {
            "wave": self.wave,
            "required": self.required,
            "have": self.have,
            "from": self.allowed,
            **({"expired": self.expired} if self.expired else {}),
            **({"refused": self.refused} if self.refused else {}),
        }


def allowed_text(gate: ApprovalGate) -> str:
    parts = []
    if gate.users:
        parts.append(f"users {', '.join(gate.users)}")
    if gate.groups:
        parts.append(f"groups {', '.join(gate.groups)}")
    return " or ".join(parts) + (" (not the commit's author)" if gate.not_by_author else "")


def is_author(by: str, author: str) -> bool:
    """Whether user name `by` is the commit's author ("Name <email>"): equal to the name, the
    email or the email's local part, ignoring case. Erring towards 'is the author' keeps
    notByAuthor safe."""
    if not author:
        return False
    name, _, rest = author.partition("<")
    email = rest.rstrip(">").strip()
    who = by.strip().lower()
    candidates = {name.strip().lower(), email.lower(), email.split("@")[0].lower()} - {""}
    return who in candidates


def _wave_index(spec: ReleaseSpec, wave: str) -> int | None:
    return next((i for i, w in enumerate(spec.waves) if w.name == wave), None)


def wave_started(spec: ReleaseSpec, status: ReleaseStatus, index: int) -> bool:
    """A wave's gate is behind it once the wave opened or any of its regions was touched."""
    name = spec.waves[index].name
    if name in status.approved_waves or index < status.current_wave:
        return True
    return any(
        status.regions[r].started_at or RegionPhase(status.regions[r].phase) != RegionPhase.PENDING
        for r in spec.waves[index].regions
        if r in status.regions
    )


def why_not(
    spec: ReleaseSpec,
    status: ReleaseStatus,
    wave: str,
    by: str,
    groups: tuple[str, ...] | list[str],
    verdict: str = APPROVE,
) -> str:
    """'' when an approve or refuse of `wave` by this identity counts; else why it does not (the
    author may refuse their own change, not approve it)."""
    index = _wave_index(spec, wave)
    if index is None:
        names = ", ".join(w.name for w in spec.waves)
        return f"wrong wave: release {spec.name} has no wave {wave!r} (waves: {names})"
    gate = spec.waves[index].approval
    if gate is None:
        gated = [w.name for w in spec.waves if w.approval]
        listed = f"gated waves: {', '.join(gated)}" if gated else "no wave of it has one"
        return f"no such gate: wave {wave} of release {spec.name} needs no approval ({listed})"
    if wave_started(spec, status, index):
        return f"wrong wave: wave {wave} has already started"
    if by not in gate.users and not set(groups) & set(gate.groups):
        mine = f" (groups {', '.join(groups)})" if groups else " (no groups)"
        return f"identity not allowed: {by}{mine} is not among {allowed_text(gate)}"
    if verdict == APPROVE and gate.not_by_author and is_author(by, spec.author):
        return f"author: {by} wrote commit {spec.commit[:12]} ({spec.author}) and the gate is notByAuthor"
    return ""


def record(
    spec: ReleaseSpec,
    status: ReleaseStatus,
    verdict: str,
    wave: str,
    by: str,
    groups: tuple[str, ...],
    reason: str,
    now: datetime,
) -> ApprovalRecord:
    """Judge an approve or refuse, keep it in the status, and say what it did."""
    problem = why_not(spec, status, wave, by, groups, verdict)
    entry = ApprovalRecord(wave, by, format_time(now), verdict, list(groups), not problem, "", reason)
    status.approvals.append(entry)
    if problem:
        entry.note = f"not counted: {problem}"
    elif verdict == REFUSE:
        entry.note = f"counted: refusal recorded; wave {wave} stays closed until approved again"
    else:
        index = _wave_index(spec, wave)
        assert index is not None
        closed = closed_gate(spec, status, index, now)
        have = closed.have if closed else _gate(spec, index).required
        entry.note = f"counted: {have}/{_gate(spec, index).required} approvals for wave {wave}"
    return entry


def _gate(spec: ReleaseSpec, index: int) -> ApprovalGate:
    gate = spec.waves[index].approval
    assert gate is not None
    return gate


def closed_gate(spec: ReleaseSpec, status: ReleaseStatus, index: int, now: datetime) -> Closed | None:
    """The wave's gate if it keeps the wave from starting now; None: no gate, opened, or enough
    approvals (the caller opens it)."""
    if index >= len(spec.waves) or spec.waves[index].approval is None or wave_started(spec, status, index):
        return None
    gate = _gate(spec, index)
    wave = spec.waves[index].name
    mine = [a for a in status.approvals if a.wave == wave and a.counted]
    refusals = [a for a in mine if a.verdict == REFUSE]
    since = _at(refusals[-1]) if refusals else None
    fresh: set[str] = set()
    expired: set[str] = set()
    for entry in mine:
        if entry.verdict != APPROVE or (since is not None and _at(entry) <= since):
            continue
        if gate.expires_seconds is not None and now - _at(entry) >= timedelta(seconds=gate.expires_seconds):
            expired.add(entry.by)
        else:
            fresh.add(entry.by)
    if len(fresh) >= gate.required:
        return None
    refused = f"{refusals[-1].by}: {refusals[-1].reason}" if refusals else ""
    return Closed(wave, gate.required, len(fresh), allowed_text(gate), len(expired - fresh), refused)


def _at(entry: ApprovalRecord) -> datetime:
    at = parse_time(entry.at)
    assert at is not None
    return at

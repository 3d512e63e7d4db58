"""Responders' ReleaseActions, checked before the controller acts on any of them. Pure: no IO.

A ReleaseAction is input from people (RBAC lets a responder create one); the CRD's CEL rules refuse
most malformed ones at the API server, but the controller does not rely on that (an older CRD, a
cluster without CEL, a field the schema allows but the repository does not know). Every action
goes through `check` first: a malformed one becomes `Rejected` with a reason naming the field and
the fix, and nothing acts on it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from config.freezes import Freeze, runtime_freeze
from config.times import format_time, parse_time
from rollout import approvals
from rollout.orchestrator import Request
from rollout.release import ReleasePhase, ReleaseStatus

if TYPE_CHECKING:
    from rollout.store import StoredRelease

OVERRIDE_FREEZE = "override-freeze"  # its own RBAC verb: deploy/base/admission-policy.yaml
# approve and refuse need the RBAC verb `approve` (admission policy) and count only from the
# identities a wave's gate allows (rollout/approvals.py)
RELEASE_ACTIONS = frozenset(
    {"rollback", "abort", "pause", "resume", "promote", OVERRIDE_FREEZE, approvals.APPROVE, approvals.REFUSE}
)
GLOBAL_ACTIONS = frozenset({"drain", "restore"})
FREEZE_ACTIONS = frozenset({"freeze", "unfreeze"})  # the action object itself is the freeze's record
DRILL = "drill"
ALL_ACTIONS = RELEASE_ACTIONS | GLOBAL_ACTIONS | FREEZE_ACTIONS | {DRILL}

COMMON = frozenset({"action", "reason", "requestedBy"})
# action -> (required fields, optional fields); a field outside both is refused (it would be ignored).
FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "rollback": (frozenset({"app"}), frozenset({"release", "region", "toRelease"})),
    "abort": (frozenset({"app"}), frozenset({"release", "region"})),
    "pause": (frozenset({"app"}), frozenset({"release", "region"})),
    "resume": (frozenset({"app"}), frozenset({"release", "region"})),
    "promote": (frozenset({"app"}), frozenset({"release", "region", "full"})),
    "drain": (frozenset({"region"}), frozenset({"app"})),
    "restore": (frozenset({"region"}), frozenset({"app"})),
    # the drill's "allow a high-traffic region" flag: `full` (old name) or `force`
    "drill": (frozenset({"app", "region"}), frozenset({"full", "force"})),
    # no app: every app (rollout freeze --all); no until: until `rollout unfreeze`
    "freeze": (frozenset(), frozenset({"app", "region", "until"})),
    "unfreeze": (frozenset(), frozenset({"app", "region"})),
    OVERRIDE_FREEZE: (frozenset({"app"}), frozenset({"release"})),
    # requesterGroups: the requester's groups (the CLI asks the API server; the admission policy
    # admits only groups the requester really has)
    approvals.APPROVE: (frozenset({"app", "wave"}), frozenset({"release", "requesterGroups"})),
    approvals.REFUSE: (frozenset({"app", "wave"}), frozenset({"release", "requesterGroups"})),
}
BOOLEAN_FIELDS = frozenset({"full", "force"})
NAME_FIELDS = ("app", "region", "release", "toRelease", "wave")
MAX_GROUPS = 64
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
MAX_TEXT = 1024
HINT = {
    "app": "name the app (rollout {action} APP)",
    "region": "name the region (--region REGION)",
    "wave": "name the wave (--wave NAME)",
}


@dataclass(frozen=True)
class Known:
    """What the repository and the cluster know: apps, regions, and which app each release is of."""

    apps: frozenset[str]
    regions: frozenset[str]
    releases: Mapping[str, str]  # release name -> app
    complete: bool = True  # False before the first sync: an unknown name may just not be loaded yet


@dataclass(frozen=True)
class Checked:
    action: str
    reason: str
    by: str
    app: str | None = None
    region: str | None = None
    release: str | None = None
    to_release: str | None = None
    full: bool = False
    until: datetime | None = None
    wave: str | None = None
    groups: tuple[str, ...] = ()

    def request(self) -> Request:
        return Request(
            self.action, self.reason, self.by, self.region, self.full, self.to_release, self.wave, self.groups
        )


@dataclass(frozen=True)
class Rejected:
    reason: str
    unknown_name: bool = False  # well-formed, but names something the controller does not know


def check(action: Mapping[str, Any], known: Known) -> Checked | Rejected:
    """The action, checked against its kind's fields and the names the repository knows."""
    spec = action.get("spec")
    if not isinstance(spec, Mapping):
        return Rejected("spec is missing or not an object; create the action with `rollout <action>`")
    kind = spec.get("action")
    if not isinstance(kind, str) or kind not in ALL_ACTIONS:
        return Rejected(f"spec.action {kind!r} is not one of {', '.join(sorted(ALL_ACTIONS))}")
    reason = spec.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return Rejected(f"spec.reason is required for {kind}: say why (--reason '...'); it is kept in history")
    if len(reason) > MAX_TEXT:
        return Rejected(f"spec.reason is {len(reason)} characters; keep it under {MAX_TEXT}")
    by = spec.get("requestedBy", "unknown")
    if not isinstance(by, str) or len(by) > 256:
        return Rejected("spec.requestedBy must be a user name (the CLI fills it in)")
    required, optional = FIELDS[kind]
    present = {key for key, value in spec.items() if value is not None}
    for key in sorted(required - present):
        hint = HINT.get(key, "set it").format(action=kind)
        return Rejected(f"spec.{key} is required for {kind}: {hint}")
    for key in sorted(present - required - optional - COMMON):
        applies = sorted(a for a, (req, opt) in FIELDS.items() if key in req | opt)
        where = f"it applies to {', '.join(applies)} only" if applies else "it is not a ReleaseAction field"
        return Rejected(f"spec.{key} is not allowed for {kind}: {where}; remove it")
    for key in sorted(present & BOOLEAN_FIELDS):
        if not isinstance(spec[key], bool):
            return Rejected(f"spec.{key} must be true or false, not {spec[key]!r}")
    names: dict[str, str] = {}
    for key in NAME_FIELDS:
        if key in present:
            value = spec[key]
            pattern = DNS_LABEL if key in ("app", "region", "wave") else DNS_SUBDOMAIN
            if not isinstance(value, str) or not pattern.match(value):
                return Rejected(f"spec.{key} {value!r} is not a valid name (lowercase letters, digits, '-')")
            names[key] = value
    until = None
    if "until" in present:
        with contextlib.suppress(ValueError):
            until = parse_time(spec["until"]) if isinstance(spec["until"], str) else None
        if until is None:
            return Rejected(f"spec.until {spec['until']!r} is not an RFC 3339 time; write e.g. 2026-12-24T18:00:00Z")
    groups = spec.get("requesterGroups") or []
    if "requesterGroups" in present and (
        not isinstance(groups, list)
        or len(groups) > MAX_GROUPS
        or not all(isinstance(g, str) and 0 < len(g) <= 256 for g in groups)
    ):
        return Rejected(f"spec.requesterGroups must be a list of at most {MAX_GROUPS} group names (the CLI sets it)")
    checked = _known(kind, reason, by, names, bool(spec.get("full") or spec.get("force")), known)
    if isinstance(checked, Checked) and until is not None:
        return replace(checked, until=until)
    if isinstance(checked, Checked) and kind in approvals.VERDICTS:
        return replace(checked, wave=names.get("wave"), groups=tuple(groups))
    return checked


def _known(kind: str, reason: str, by: str, names: dict[str, str], full: bool, known: Known) -> Checked | Rejected:
    app, region = names.get("app"), names.get("region")
    if app is not None and app not in known.apps:
        listed = ", ".join(sorted(known.apps)) or "none yet"
        return Rejected(
            f"spec.app {app!r} is not an app of the repository (apps: {listed}); check the name", unknown_name=True
        )
    if region is not None and region not in known.regions:
        listed = ", ".join(sorted(known.regions)) or "none yet"
        return Rejected(
            f"spec.region {region!r} is not a region of the repository (regions: {listed}); check the name",
            unknown_name=True,
        )
    for key in ("release", "toRelease"):
        name = names.get(key)
        if name is None:
            continue
        of = known.releases.get(name)
        if of is None:
            return Rejected(
                f"spec.{key} {name!r} does not exist; `rollout history {app}` lists the releases", unknown_name=True
            )
        if of != app:
            return Rejected(f"spec.{key} {name!r} is a release of {of!r}, not of {app!r}")
    return Checked(kind, reason, by, app, region, names.get("release"), names.get("toRelease"), full)


# --- which release an action acts on ---------------------------------------------------------------

P = ReleasePhase
# The release phases each action changes (as rollout.orchestrator._apply_request handles them).
ACCEPTS: dict[str, frozenset[ReleasePhase]] = {
    "pause": frozenset({P.PENDING, P.PROGRESSING}),
    "resume": frozenset({P.PAUSED}),
    "promote": frozenset({P.PROGRESSING, P.PAUSED}),
    "abort": frozenset({P.PROGRESSING, P.PAUSED}),
    "rollback": frozenset({P.PROGRESSING, P.PAUSED, P.SUCCEEDED}),
    OVERRIDE_FREEZE: frozenset({P.PENDING, P.PROGRESSING, P.PAUSED}),
    approvals.APPROVE: frozenset({P.PENDING, P.PROGRESSING, P.PAUSED}),
    approvals.REFUSE: frozenset({P.PENDING, P.PROGRESSING, P.PAUSED}),
}
LIVE = (P.PROGRESSING, P.PAUSED, P.ROLLING_BACK)  # the release that holds the app's regions now


@dataclass(frozen=True)
class Target:
    """The release an action acts on (None: refused) and what to tell the responder."""

    release: str | None
    note: str


def target(checked: Checked, releases: Sequence[StoredRelease]) -> Target:
    """The app's release a release action acts on: the one named, else the one actually live
    (progressing, paused or rolling back, even when a newer release waits Pending behind it); a
    rollback with nothing in progress returns from the latest Succeeded release; a pause may hold
    a Pending release before it starts. Anything else is refused, saying what the release is."""
    action, app = checked.action, checked.app or ""
    ordered = sorted(releases, key=lambda r: (r.created, r.name))
    accepts = ACCEPTS[action]

    def phase(r: StoredRelease) -> ReleasePhase:
        return ReleasePhase(r.status.phase)

    def described(r: StoredRelease) -> str:
        return f"release {r.name} (version {r.spec.version}) is {phase(r).value}"

    if checked.release is not None:
        named = next((r for r in ordered if r.name == checked.release), None)
        if named is None:
            return Target(None, f"release {checked.release!r} does not exist; `rollout history {app}` lists them")
        if phase(named) not in accepts:
            return Target(
                None,
                f"{described(named)}; {action} applies to a release that is "
                f"{' or '.join(sorted(p.value for p in accepts))}",
            )
        return Target(named.name, f"{described(named)}")
    live = [r for r in reversed(ordered) if phase(r) in LIVE]
    chosen = next((r for r in live if phase(r) in accepts), None)
    if chosen is not None:
        return Target(chosen.name, described(chosen))
    if live:
        hint = (
            "it is already rolling back; `rollout status` shows where"
            if phase(live[0]) is P.ROLLING_BACK
            else f"{action} applies to a release that is {' or '.join(sorted(p.value for p in accepts))}"
        )
        return Target(None, f"{described(live[0])}: {hint}")
    pending = [r for r in ordered if phase(r) is P.PENDING]
    if action == "pause" and pending:
        return Target(pending[0].name, f"{described(pending[0])}: paused, it will not start until resumed")
    if action == OVERRIDE_FREEZE and pending:
        return Target(pending[0].name, f"{described(pending[0])}: it starts despite freezes")
    if action in approvals.VERDICTS and pending:
        return Target(pending[0].name, described(pending[0]))
    if action == "rollback":
        good = [r for r in ordered if phase(r) is P.SUCCEEDED]
        if good:
            return Target(good[-1].name, described(good[-1]))
    if pending:
        why = pending[0].status.message or "it has not started"
        return Target(
            None,
            f"{described(pending[0])} ({why}): nothing of it is live, so there is nothing to "
            f"{action}; `rollout pause {app}` keeps it from starting",
        )
    latest = f"; the latest {described(ordered[-1])}" if ordered else ""
    more = f"; `rollout rollback {app}` returns to the release before it" if action == "abort" and ordered else ""
    return Target(None, f"no release of {app!r} is in progress{latest}{more}")


def approval_outcome(action: Mapping[str, Any], status: ReleaseStatus, now: datetime) -> str:
    """What an approve or refuse carried out at `now` did ("counted: ..." or "not counted: why"), as
    the orchestrator recorded it in the release's status; "" for any other action."""
    spec = action.get("spec") or {}
    if spec.get("action") not in approvals.VERDICTS:
        return ""
    at = format_time(now)
    return next(
        (
            a.note
            for a in reversed(status.approvals)
            if a.at == at and a.by == spec.get("requestedBy", "unknown") and a.wave == spec.get("wave")
        ),
        "",
    )


# --- run-time freezes ------------------------------------------------------------------------------


def runtime_freezes(actions: Iterable[Mapping[str, Any]], now: datetime) -> list[Freeze]:
    """The freezes responders set (`rollout freeze`, carried out: state Done) that have not ended and
    that no later carried-out `rollout unfreeze` of the same scope lifted. Level-triggered: worked
    out from the ReleaseActions alone on every pass, nothing else is stored."""
    done = [a for a in actions if (a.get("status") or {}).get("state") == "Done"]
    lifts = [(_handled(a), a["spec"]) for a in done if (a.get("spec") or {}).get("action") == "unfreeze"]
    out = []
    for action in done:
        spec = action.get("spec") or {}
        if spec.get("action") != "freeze":
            continue
        since = _handled(action)
        app, region = spec.get("app"), spec.get("region")
        try:
            until = parse_time(spec.get("until"))
        except ValueError:
            continue  # check() rejects it; an action stored before that check cannot freeze
        if until is not None and until <= now:
            continue
        if any(at > since and _lifts(lift, app, region) for at, lift in lifts):
            continue
        name = str((action.get("metadata") or {}).get("name") or "freeze")
        out.append(
            runtime_freeze(
                name, str(spec.get("reason", "")), str(spec.get("requestedBy", "?")), app, region, since, until
            )
        )
    return out


def freeze_note(checked: Checked, active: Sequence[Freeze]) -> str:
    """What a carried-out freeze or unfreeze says in its status (`active`: the run-time freezes
    before it)."""
    scope = f"{checked.app or 'every app'} in {checked.region or 'every region'}"
    if checked.action == "freeze":
        until = format_time(checked.until) if checked.until else "`rollout unfreeze`"
        return f"frozen: no release starts a new region for {scope} until {until}"
    lifted = [
        f.name
        for f in active
        if _lifts(
            {"app": checked.app, "region": checked.region},
            f.apps[0] if f.apps else None,
            f.regions[0] if f.regions else None,
        )
    ]
    if not lifted:
        return f"no run-time freeze of {scope} was active (freezes.yaml windows are lifted in Git)"
    return f"lifted {', '.join(lifted)}"


def _lifts(unfreeze: Mapping[str, Any], app: str | None, region: str | None) -> bool:
    """An unfreeze without app lifts every run-time freeze; with one, that app's (and the same for region)."""
    return unfreeze.get("app") in (None, app) and unfreeze.get("region") in (None, region)


def _handled(action: Mapping[str, Any]) -> datetime:
    status = action.get("status") or {}
    metadata = action.get("metadata") or {}
    try:
        at = parse_time(status.get("handledAt")) or parse_time(metadata.get("creationTimestamp"))
    except ValueError:
        at = None
    return at or datetime.min.replace(tzinfo=UTC)

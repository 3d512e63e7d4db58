"""From a synced commit to Release objects.

`decide_intake` is pure: given what each app looks like at the commit and the releases that exist,
it says which releases to create and which to supersede. Quarantine is by content: a commit whose
app content equals a rolled-back release's never becomes a release again; a fix (different
content) does. A revert back to what the regions run since the rollback (the controller's own
revert commit, or a person's) is no change: it makes no release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from config.groups import release_order
from rollout.release import ReleasePhase, ReleaseSpec
from rollout.store import StoredRelease


@dataclass(frozen=True)
class CreateRelease:
    spec: ReleaseSpec


@dataclass(frozen=True)
class SupersedeRelease:
    name: str
    by: str


@dataclass(frozen=True)
class SkipQuarantined:
    app: str
    quarantined_release: str


IntakeAction = CreateRelease | SupersedeRelease | SkipQuarantined


@dataclass(frozen=True)
class Candidate:
    """An app as it is at the synced commit."""

    spec: ReleaseSpec
    supersede: str  # the plan's policy: "unstarted" or "never"
    depends_on: tuple[str, ...] = ()  # the plan's dependsOn: those apps' releases are created first


def decide_intake(
    candidates: Mapping[str, Candidate], existing: Mapping[str, Sequence[StoredRelease]]
) -> list[IntakeAction]:
    actions: list[IntakeAction] = []
    # release groups: a dependency's release exists before its dependents' (the controller may read
    # between two creations; a dependent seen alone would find nothing to wait for)
    graph = {app: candidate.depends_on for app, candidate in candidates.items()}
    for app in release_order(graph, candidates):
        candidate = candidates[app]
        releases = list(existing.get(app, ()))
        digest = candidate.spec.content_digest
        if releases and releases[-1].spec.content_digest == digest and releases[-1].status.phase != ReleasePhase.FAILED:
            continue  # already the app's latest release: nothing changed for this app
        # (a Failed latest release could not read its commit: the same content at a readable one is released)
        if _runs_already(releases, digest):
            continue  # e.g. the revert pushed after a rollback: the regions already run this content
        quarantined = [r for r in releases if r.status.quarantined and r.spec.content_digest == digest]
        if quarantined:
            actions.append(SkipQuarantined(app, quarantined[-1].name))
            continue
        if any(r.spec.commit == candidate.spec.commit for r in releases):
            continue  # this commit already made a release (e.g. the branch was moved back)
        actions.append(CreateRelease(candidate.spec))
        if candidate.supersede == "unstarted":
            actions += [
                SupersedeRelease(r.name, by=candidate.spec.name)
                for r in releases
                if r.status.phase == ReleasePhase.PENDING
            ]
    return actions


def _runs_already(releases: Sequence[StoredRelease], digest: str) -> bool:
    """The latest release was rolled back to a release whose content is `digest`: what every
    region runs now. (`previousCommit` is the release it returned to, `rollback --to` included.)"""
    latest = releases[-1] if releases else None
    if latest is None or latest.status.phase != ReleasePhase.ROLLED_BACK or not latest.status.previous_commit:
        return False
    back_to = [r for r in releases if r.spec.commit == latest.status.previous_commit]
    return bool(back_to) and back_to[-1].spec.content_digest == digest

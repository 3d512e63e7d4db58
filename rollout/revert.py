"""Git write-back after a rollback (`rollback.revertCommit`): make Git say what the regions run.

Once a release is RolledBack its status carries `revert: {state: Pending}` (written by the
orchestrator in the same status write). `RevertWriter` then pushes ONE commit to the branch: on top
of the branch's current head, the app's folder restored to the previous release's commit, every
other file as the head has it. The pure parts decide what to do from facts gathered from Git
(`decide_revert`) and write the message (`revert_message`); the writer gathers, pushes (never with
force) and records the outcome once on the Release status, an Event and a notification.

- Idempotent: the commit carries `Rollout-Revert-Of: <release>`; before building, the branch is
  searched for it, so a restart between the push and the status write never pushes twice.
- A branch that moved meanwhile refuses the push; the revert is rebuilt on the new head (the folder
  restore is a rebase by construction). If the app's folder itself changed since the release
  (someone fixed or reverted it), nothing is pushed and the status says which commit changed it.
- Transient failures (remote unreachable) are retried with backoff; a refusal (credentials,
  protected branch) is recorded once and not retried. The release stays quarantined either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import structlog

from config.schema import Plan
from config.times import format_time, parse_time
from rollout.gitsync import GitError
from rollout.gitsync.pure import is_full_sha
from rollout.gitsync.push import PushRejected
from rollout.notify import EventSink, Notice, Webhooks, targets, wave_of
from rollout.release import ReleasePhase, ReleaseStatus, RevertRecord, RevertState
from rollout.store import ReleaseStore, StatusConflict, StoredRelease
from rollout.workspace import Workspace

log = structlog.get_logger("rollout.revert")

TRAILER = "Rollout-Revert-Of"
REBUILDS = 3  # a branch moving under every push this many times in a row: retried later
BACKOFF_FIRST = 2.0
BACKOFF_MAX = 300.0


# --- pure ---------------------------------------------------------------------------------------


class Outcome(StrEnum):
    PUSH = "push"
    ALREADY = "already"  # a commit on the branch already carries the release's trailer
    NOT_NEEDED = "not-needed"
    NOT_REVERTED = "not-reverted"


@dataclass(frozen=True)
class Facts:
    """What Git says, gathered before deciding (tree ids of the app's folder, None when absent)."""

    head: str
    head_folder: str | None
    bad_folder: str | None
    previous_folder: str | None
    already: str | None = None  # commit on the branch carrying `Rollout-Revert-Of: <release>`
    changed_by: str | None = None  # newest commit changing the folder since the release


def decide_revert(facts: Facts, folder: str) -> tuple[Outcome, str]:
    """What to do with the branch, and the sentence the status records."""
    if facts.already:
        return Outcome.ALREADY, f"pushed as commit {facts.already}"
    if facts.previous_folder is None:
        return Outcome.NOT_REVERTED, f"not reverted: the previous release's commit has no {folder}/"
    if facts.head_folder == facts.previous_folder:
        return Outcome.NOT_NEEDED, (
            f"not needed: {folder}/ at commit {facts.head} already equals the previous release's"
        )
    if facts.head_folder != facts.bad_folder:
        return Outcome.NOT_REVERTED, (
            f"not reverted: the app's folder changed since the release (commit {facts.changed_by or facts.head})"
        )
    return Outcome.PUSH, ""


def rolled_back_by(status: ReleaseStatus) -> str:
    """Who or what rolled the release back: a responder's ReleaseAction, else the controller's rule."""
    for entry in reversed(status.audit):
        if entry.action in ("rollback", "abort") and entry.by != "controller":
            return f"{entry.by} (ReleaseAction {entry.action}: {entry.reason})"
    return "the controller, automatically (the release's analysis and health rules)"


def revert_message(release: StoredRelease, status: ReleaseStatus, folder: str) -> str:
    spec = release.spec
    previous = status.previous_version or "the previous release"
    failed = status.failed_region or "no single region"
    return (
        f"Revert {spec.app} to {previous}: release {release.name} ({spec.version}) was rolled back\n"
        "\n"
        f"Release {release.name} (version {spec.version}, commit {spec.commit}) failed in region "
        f"{failed}: {status.message or 'no reason recorded'}\n"
        f"Rolled back by {rolled_back_by(status)}.\n"
        "\n"
        f"This commit restores {folder}/ as it was at commit {status.previous_commit} (version {previous}), "
        "what every region runs again; other changes since then are kept.\n"
        "\n"
        f"{TRAILER}: {release.name}\n"
    )


def backoff(attempts: int) -> float:
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, attempts - 1)))


def pending(release: StoredRelease, now: datetime) -> bool:
    """A revert to try now: requested, not settled, its backoff over."""
    revert = release.status.revert
    if revert is None or revert.state != RevertState.PENDING:
        return False
    due = parse_time(revert.next_attempt_at)
    return due is None or due <= now


def branch_of(ref: str) -> str | None:
    """The branch a tracked ref names (None for a tag, a commit or the remote's HEAD)."""
    if ref == "HEAD" or is_full_sha(ref) or ref.startswith("refs/tags/"):
        return None
    return ref.removeprefix("refs/heads/")


# --- the writer ---------------------------------------------------------------------------------


class Pusher(Protocol):
    remote: str

    def default_branch(self) -> str: ...
    def fetch(self, branch: str) -> str | None: ...
    def push(self, commit: str, branch: str) -> None: ...
    def tree(self, commit: str, path: str) -> str | None: ...
    def find_message(self, head: str, line: str, since: str | None, limit: int = 1000) -> str | None: ...
    def last_change(self, since: str, head: str, path: str) -> str | None: ...
    def restore_folder(self, head: str, source: str, folder: str, message: str) -> str: ...


class _Settled(Exception):
    def __init__(self, state: RevertState, message: str, branch: str | None, commit: str | None = None):
        super().__init__(message)
        self.state, self.message, self.branch, self.commit = state, message, branch, commit


class RevertWriter:
    def __init__(
        self,
        pusher: Pusher,
        workspace: Workspace,
        store: ReleaseStore,
        sinks: Sequence[EventSink],
        tracked_ref: str,
    ):
        self.pusher = pusher
        self.workspace = workspace
        self.store = store
        self.sinks = sinks
        self.tracked_ref = tracked_ref

    def run(self, stored: StoredRelease, now: datetime) -> StoredRelease:
        """One attempt for a release whose revert is pending; returns it as written (or unchanged)."""
        if ReleasePhase(stored.status.phase) != ReleasePhase.ROLLED_BACK or not pending(stored, now):
            return stored
        status = ReleaseStatus.from_dict(stored.status.to_dict())
        record = status.revert or RevertRecord()
        folder = f"apps/{stored.spec.app}"
        plan = self._plan(stored)
        plan_branch = plan.rollback.revert_branch if plan is not None else None
        try:
            try:
                self._attempt(stored, status, folder, plan_branch)
            except GitError as exc:
                if exc.temporary:
                    raise
                raise _Settled(RevertState.FAILED, f"not reverted: {exc}", plan_branch) from None
        except _Settled as done:
            record = RevertRecord(done.state.value, done.branch, done.commit, done.message, record.attempts + 1)
            status.revert = record
            status.record(now, "revert-commit", done.message)
            written = self._write(stored, status)
            if written is not stored:
                self._tell(written, done, plan, now)
            return written
        except (GitError, OSError) as exc:  # transient: the remote or the network
            attempts = record.attempts + 1
            delay = backoff(attempts)
            status.revert = RevertRecord(
                RevertState.PENDING.value,
                record.branch,
                None,
                f"push failed (attempt {attempts}), retrying in {delay:g}s: {exc}"[:500],
                attempts,
                format_time(now + timedelta(seconds=delay)),
            )
            log.warning("revert not pushed yet; will retry", release=stored.name, error=str(exc)[:300], retry_in=delay)
            return self._write(stored, status)
        raise AssertionError("an attempt always settles or fails")  # pragma: no cover

    def _attempt(self, stored: StoredRelease, status: ReleaseStatus, folder: str, plan_branch: str | None) -> None:
        bad, previous = stored.spec.commit, status.previous_commit
        if not previous:
            raise _Settled(
                RevertState.NOT_REVERTED, "not reverted: the app's first release has no earlier commit", None
            )
        tracked = branch_of(self.tracked_ref)
        if tracked is None and self.tracked_ref != "HEAD" and not plan_branch:
            raise _Settled(
                RevertState.NOT_REVERTED,
                f"not reverted: the controller tracks {self.tracked_ref}, not a branch; "
                "set rollback.revertBranch to push the revert to a branch for a pull request",
                None,
            )
        tracked = tracked or self.pusher.default_branch()
        target = plan_branch or tracked
        line = f"{TRAILER}: {stored.name}"
        message = revert_message(stored, status, folder)
        for _ in range(REBUILDS):
            head = self.pusher.fetch(target)
            if head is None:
                head = self.pusher.fetch(tracked) if target != tracked else None
                if head is None:
                    raise _Settled(
                        RevertState.NOT_REVERTED, f"not reverted: branch {tracked} does not exist on the remote", target
                    )
            facts = Facts(
                head,
                self.pusher.tree(head, folder),
                self.pusher.tree(bad, folder),
                self.pusher.tree(previous, folder),
                already=self.pusher.find_message(head, line, since=bad),
            )
            if facts.head_folder not in (facts.bad_folder, facts.previous_folder) and not facts.already:
                facts = dataclasses.replace(facts, changed_by=self.pusher.last_change(bad, head, folder))
            outcome, text = decide_revert(facts, folder)
            if outcome is Outcome.ALREADY:
                raise _Settled(RevertState.PUSHED, f"revert {text} to branch {target}", target, facts.already)
            if outcome is Outcome.NOT_NEEDED:
                raise _Settled(RevertState.NOT_NEEDED, text, target)
            if outcome is Outcome.NOT_REVERTED:
                raise _Settled(RevertState.NOT_REVERTED, text, target)
            commit = self.pusher.restore_folder(head, previous, folder, message)
            try:
                self.pusher.push(commit, target)
            except PushRejected:
                log.info("branch moved while reverting; rebuilding on its new head", release=stored.name)
                continue
            log.info("revert pushed", release=stored.name, branch=target, commit=commit)
            raise _Settled(RevertState.PUSHED, f"revert pushed as commit {commit} to branch {target}", target, commit)
        raise GitError(f"branch {target} moved under each of {REBUILDS} pushes", remote=self.pusher.remote)

    def _plan(self, stored: StoredRelease) -> Plan | None:
        """The app's plan at the release's commit (revertBranch, owner, webhooks)."""
        try:
            return self.workspace.repository(stored.spec.commit).apps[stored.spec.app].plan
        except Exception as exc:  # noqa: BLE001 - the revert itself does not need the plan
            log.warning("plan not read for the revert", release=stored.name, error=str(exc)[:200])
            return None

    def _write(self, stored: StoredRelease, status: ReleaseStatus) -> StoredRelease:
        try:
            return self.store.write_status(stored, status)
        except StatusConflict:
            log.info("release changed during the revert; will re-read", release=stored.name)
            return stored

    def _tell(self, release: StoredRelease, done: _Settled, plan: Plan | None, now: datetime) -> None:
        warning = done.state in (RevertState.NOT_REVERTED, RevertState.FAILED)
        notice = Notice(
            event="revertCommit",
            app=release.spec.app,
            release=release.name,
            version=release.spec.version,
            reason=done.message,
            owner=plan.owner.team if plan else "",
            contact=plan.owner.contact if plan else "",
            playbook=plan.playbook if plan else "",
            region=release.status.failed_region,
            warning=warning,
            wave=wave_of(release.spec.waves, release.status.failed_region),
        )
        (log.warning if warning else log.info)("revert settled", release=release.name, outcome=done.message)
        for sink in self.sinks:
            sink.emit(notice, now)
        # webhooks subscribed to rolledBack hear how the revert went (the schema has no separate event)
        if plan is not None:
            Webhooks(targets(plan.notifications)).emit(dataclasses.replace(notice, event="rolledBack"), now)

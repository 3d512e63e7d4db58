"""The Git side of the daemon: sync the repository, validate the commit, create Releases.

Runs on a timer (apscheduler) and on verified push webhooks. Git unreachable: nothing changes,
the last good commit keeps serving, and the RolloutSource status says why. An invalid commit
creates no Release and applies nothing; its issues are written to the RolloutSource status and
an Event, naming file, field and fix.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from config import sources
from config.errors import InvalidRepository
from config.repository import Repository, content_digest
from config.schema import Approval
from config.times import format_time, parse_time
from config.waves import plan_waves
from regions.smoke import smoke_duration
from rollout.gitsync import GitError, GitSource
from rollout.intake import Candidate, CreateRelease, SkipQuarantined, SupersedeRelease, decide_intake
from rollout.metrics import GIT_SYNCS
from rollout.notify import KubernetesEvents
from rollout.release import ApprovalGate, PlannedWaveSpec, ReleasePhase, ReleaseSpec
from rollout.store import GROUP, VERSION, ReleaseStore, StatusConflict, StoredRelease
from rollout.workspace import Workspace, file_digest

log = structlog.get_logger("rollout.sync")
SOURCES = "rolloutsources"


def candidates_at(
    repo: Repository, commit: str, history: dict[str, list[StoredRelease]], author: str = ""
) -> dict[str, Candidate]:
    out: dict[str, Candidate] = {}
    for name, app in repo.apps.items():
        gates = {w.name: w.approval for w in app.plan.waves} if isinstance(app.plan.waves, list) else {}
        detect = [
            timedelta(seconds=r.status.detect_seconds)
            for r in history.get(name, [])
            if r.status.detect_seconds is not None
        ]
        waves = tuple(
            PlannedWaveSpec(
                w.name,
                w.regions,
                smoke_duration(w.smoke_window, detect).duration.total_seconds(),
                w.max_parallel,
                approval_gate(gates.get(w.name)),
            )
            for w in plan_waves(app.plan, repo.regions)
        )
        spec = ReleaseSpec(
            app=name,
            commit=commit,
            version=app.values.version,
            plan_digest=file_digest(app.directory / "rollout.yaml"),
            content_digest=content_digest(repo.root, name),
            waves=waves,
            renderers=tuple(sorted(sources.renderers(app).items())),
            author=author,
        )
        out[name] = Candidate(spec, app.plan.supersede, tuple(app.plan.depends_on))
    return out


def detection_history(history: dict[str, list[StoredRelease]]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """What of the releases `candidates_at` reads: each app's detection times, in order."""
    return tuple(
        sorted(
            (app, detect)
            for app, releases in history.items()
            if (detect := tuple(r.status.detect_seconds for r in releases if r.status.detect_seconds is not None))
        )
    )


def approval_gate(approval: Approval | None) -> ApprovalGate | None:
    """A wave's planned approval gate as the release keeps it."""
    if approval is None:
        return None
    return ApprovalGate(
        approval.required,
        tuple(approval.from_.users),
        tuple(approval.from_.groups),
        approval.not_by_author,
        approval.expires_after.total_seconds() if approval.expires_after else None,
    )


class GitSync:
    def __init__(
        self,
        source: GitSource,
        workspace: Workspace,
        store: ReleaseStore,
        api_client: client.ApiClient,
        source_name: str,
        may_write: Any,
    ):
        self._source = source
        self._workspace = workspace
        self._store = store
        self._api = client.CustomObjectsApi(api_client)
        self._events = KubernetesEvents(api_client, store.namespace)
        self._name = source_name
        self._may_write = may_write  # the leader check: followers never write
        self._lock = threading.Lock()
        self.last_status: dict[str, Any] = {}
        self._unvalidated = ""  # the last commit whose validation failed for a reason other than its content
        self._rewrite: dict[str, str] | None = None  # the last force-push seen, kept in every status write
        # the candidates of the last commit synced, with what they were computed from: a poll of an
        # unchanged commit does not recompute every app's digests and wave plan
        self._candidates: tuple[tuple[Any, ...], dict[str, Candidate]] | None = None
        self._authors: tuple[str, str] = ("", "")  # (commit, its author): one Git call per commit

    def run_once(self) -> None:
        if not self._may_write():
            return
        with self._lock:
            self._run()

    def _run(self) -> None:
        now = datetime.now(UTC)
        try:
            result = self._source.sync()
        except GitError as exc:
            GIT_SYNCS.labels("unreachable" if exc.temporary else "error").inc()
            # Unreachable or refused: either way nothing changes and the last good commit keeps serving.
            self._set_status({"reachable": not exc.temporary, "message": str(exc), "lastSyncAt": format_time(now)})
            log.warning("git sync failed; keeping last good state", error=str(exc), temporary=exc.temporary)
            return
        if result.rewritten:
            self._report_rewrite(result.ref, result.previous or "", result.commit, now)
        try:
            repo = self._workspace.repository(result.commit)
        except InvalidRepository as invalid:
            GIT_SYNCS.labels("invalid").inc()
            issues = [i.to_dict() for i in invalid.issues]
            already_reported = self.last_status.get("commit") == result.commit and not self.last_status.get("valid")
            self._set_status(
                {
                    "reachable": True,
                    "valid": False,
                    "commit": result.commit,
                    "issues": issues,
                    "message": invalid.summary()[:4000],
                    "lastSyncAt": format_time(now),
                }
            )
            if not already_reported:  # one Event per rejected commit, not one per poll
                self._events.record(
                    "RolloutSource",
                    self._name,
                    "InvalidCommit",
                    f"commit {result.commit[:12]} rejected; nothing applied. " + invalid.summary(),
                    True,
                    now,
                )
            log.warning("commit rejected", commit=result.commit[:12], issues=len(issues))
            return
        except Exception as exc:  # noqa: BLE001 - not known invalid (checkout, the render helper): retried next poll
            GIT_SYNCS.labels("error").inc()
            message = f"commit {result.commit[:12]} could not be validated yet; nothing applied: {exc}"
            self._set_status({"reachable": True, "message": message[:4000], "lastSyncAt": format_time(now)})
            if self._unvalidated != result.commit:  # one Event per commit, not one per poll
                self._unvalidated = result.commit
                self._events.record("RolloutSource", self._name, "ValidationFailed", message[:4000], True, now)
            log.warning(
                "commit not validated; retrying on the next poll",
                commit=result.commit[:12],
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        GIT_SYNCS.labels("ok").inc()
        existing: dict[str, list[StoredRelease]] = defaultdict(list)
        for release in self._store.list():
            existing[release.spec.app].append(release)
        for action in decide_intake(self._candidates_at(repo, result.commit, existing), existing):
            self._execute(action, now)
        self._set_status(
            {
                "reachable": True,
                "valid": True,
                "commit": result.commit,
                "issues": [],
                "lastGoodCommit": result.commit,
                "message": "",
                "lastSyncAt": format_time(now),
            }
        )

    def _candidates_at(
        self, repo: Repository, commit: str, existing: dict[str, list[StoredRelease]]
    ) -> dict[str, Candidate]:
        """`candidates_at`, memoized per commit: recomputed only when the commit, its author or the
        detection times the smoke windows are sized from (`status.detectSeconds`) changed."""
        author = self._authors[1] if self._authors[0] == commit else self._author(commit)
        if author:
            self._authors = (commit, author)
        key = (commit, author, detection_history(existing))
        if self._candidates is None or self._candidates[0] != key:
            self._candidates = (key, candidates_at(repo, commit, existing, author))
        return self._candidates[1]

    def _author(self, commit: str) -> str:
        """The commit's author, recorded on its releases (approval gates' notByAuthor); "" if unreadable."""
        try:
            return self._source.author(commit)
        except GitError as exc:
            log.warning("commit author not read", commit=commit[:12], error=str(exc)[:200])
            return ""

    def _execute(self, action: CreateRelease | SupersedeRelease | SkipQuarantined, now: datetime) -> None:
        if isinstance(action, CreateRelease):
            self._store.create(action.spec)
            log.info("release created", release=action.spec.name, app=action.spec.app, version=action.spec.version)
        elif isinstance(action, SupersedeRelease):
            release = self._store.get(action.name)
            if release.status.phase != ReleasePhase.PENDING:
                return  # it started meanwhile: the newer release waits instead
            status = release.status
            status.move(ReleasePhase.SUPERSEDED)
            status.record(now, "superseded", f"replaced by {action.by} before it started")
            with contextlib.suppress(StatusConflict):  # re-decided on the next sync
                self._store.write_status(release, status)
        else:
            log.info("quarantined content not re-applied", app=action.app, release=action.quarantined_release)

    def _report_rewrite(self, ref: str, previous: str, commit: str, now: datetime) -> None:
        """A force-push: one Warning Event and `status.lastRewrite`, where a responder looks.

        Nothing else follows from it: no Release is deleted or rolled back, and releases made from
        the dropped commits keep their state; the new head goes through the usual validation and intake.
        """
        self._rewrite = {"ref": ref, "previous": previous, "commit": commit, "at": format_time(now)}
        message = (
            f"{ref} was force-pushed: {previous[:12]} is no longer an ancestor of {commit[:12]}. "
            "Nothing was deleted or rolled back; releases made from the dropped commits keep their state."
        )
        self._events.record("RolloutSource", self._name, "HistoryRewritten", message, True, now)
        log.warning("history rewritten", ref=ref, previous=previous[:12], commit=commit[:12])

    def _set_status(self, fields: dict[str, Any]) -> None:
        if not self._may_write():
            return
        merged = {**self.last_status, **fields}
        if self._rewrite is not None:
            merged["lastRewrite"] = self._rewrite
        if _without_time(merged) == _without_time(self.last_status) and not _stale(self.last_status):
            return  # nothing new: no write (lastSyncAt alone is refreshed every few minutes)
        try:
            self._api.patch_namespaced_custom_object_status(
                GROUP, VERSION, self._store.namespace, SOURCES, self._name, {"status": merged}
            )
            self.last_status = merged
        except ApiException as exc:
            log.warning("source status not written", status=exc.status)


HEARTBEAT = timedelta(minutes=5)


def _without_time(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "lastSyncAt"}


def _stale(status: dict[str, Any]) -> bool:
    last = status.get("lastSyncAt")
    seen = parse_time(last)
    return seen is None or datetime.now(UTC) - seen > HEARTBEAT

"""Git write-back after a rollback, the pure parts and the writer against a fake Git: what to push,
the message, the conflict decision, idempotency, retries and refusals (rollout/revert.py).
The real Git server: tests/integration/test_git_revert.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollout.gitsync import AuthenticationFailed, RemoteUnavailable
from rollout.gitsync.push import PushRefused, PushRejected
from rollout.intake import Candidate, CreateRelease, decide_intake
from rollout.orchestrator import Policy, RegionView, ReleaseView, decide
from rollout.release import (
    AuditEntry,
    PlannedWaveSpec,
    ReleasePhase,
    ReleaseSpec,
    ReleaseStatus,
    RevertRecord,
)
from rollout.revert import (
    TRAILER,
    Facts,
    Outcome,
    RevertWriter,
    backoff,
    branch_of,
    decide_revert,
    pending,
    revert_message,
    rolled_back_by,
)
from rollout.store import StatusConflict, StoredRelease
from strategies.model import Phase as S

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WAVES = (PlannedWaveSpec("canary", ("eu-canary",), 60, 1),)
BAD, PREV = "b" * 40, "a" * 40
FOLDER = "apps/checkout"


def rolled_back(revert: RevertRecord | None = None, audit: list[AuditEntry] | None = None) -> StoredRelease:
    spec = ReleaseSpec("checkout", BAD, "1.6.0", "p", "d2", WAVES)
    status = ReleaseStatus(
        phase=ReleasePhase.ROLLED_BACK.value,
        quarantined=True,
        message="smoke check failed: error-ratio 0.3 > 0.05",
        failed_region="eu-canary",
        previous_commit=PREV,
        previous_version="1.5.0",
        revert=revert if revert is not None else RevertRecord(),
        audit=audit or [],
    )
    return StoredRelease(spec.name, "7", spec, status, "2026-11-29T12:00:00Z")


# --- the decision ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "outcome", "says"),
    [
        (Facts("h" * 40, "T-bad", "T-bad", "T-prev"), Outcome.PUSH, ""),
        (Facts("h" * 40, "T-bad", "T-bad", "T-prev", already="r" * 40), Outcome.ALREADY, "r" * 40),
        (Facts("h" * 40, "T-prev", "T-bad", "T-prev"), Outcome.NOT_NEEDED, "already equals"),
        (
            Facts("h" * 40, "T-fix", "T-bad", "T-prev", changed_by="f" * 40),
            Outcome.NOT_REVERTED,
            f"the app's folder changed since the release (commit {'f' * 40})",
        ),
        (Facts("h" * 40, "T-fix", "T-bad", "T-prev"), Outcome.NOT_REVERTED, "h" * 40),  # history rewritten
        (Facts("h" * 40, "T-bad", "T-bad", None), Outcome.NOT_REVERTED, "has no apps/checkout/"),
    ],
)
def test_what_to_do_with_the_branch(facts: Facts, outcome: Outcome, says: str) -> None:
    got, text = decide_revert(facts, FOLDER)
    assert got is outcome and says in text


def test_the_message_names_app_release_region_reason_and_who_and_ends_with_the_trailer() -> None:
    release = rolled_back()
    text = revert_message(release, release.status, FOLDER)
    assert text.startswith("Revert checkout to 1.5.0: release checkout-bbbbbbbbbbbb (1.6.0) was rolled back\n\n")
    assert "failed in region eu-canary: smoke check failed: error-ratio 0.3 > 0.05" in text
    assert "Rolled back by the controller, automatically" in text
    assert f"restores {FOLDER}/ as it was at commit {PREV} (version 1.5.0)" in text
    assert text.splitlines()[-1] == f"{TRAILER}: checkout-bbbbbbbbbbbb"


def test_a_responders_rollback_is_named_with_the_actions_requester() -> None:
    audit = [
        AuditEntry("t", "start", "release 1.6.0", None, "controller"),
        AuditEntry("t", "rollback", "checkout errors in eu-west", "eu-west", "alice@example.com"),
    ]
    assert rolled_back_by(rolled_back(audit=audit).status) == (
        "alice@example.com (ReleaseAction rollback: checkout errors in eu-west)"
    )


def test_backoff_doubles_to_five_minutes_and_only_due_pending_reverts_run() -> None:
    assert [backoff(n) for n in (1, 2, 3, 9, 50)] == [2.0, 4.0, 8.0, 300.0, 300.0]
    assert pending(rolled_back(), T0)
    later = RevertRecord(next_attempt_at="2026-11-29T12:00:10Z", attempts=2)
    assert not pending(rolled_back(later), T0) and pending(rolled_back(later), T0 + timedelta(seconds=10))
    assert not pending(rolled_back(RevertRecord(state="Pushed", commit="c" * 40)), T0)


def test_branch_of_a_tracked_ref() -> None:
    assert branch_of("main") == "main" and branch_of("refs/heads/release/1") == "release/1"
    assert branch_of("HEAD") is None and branch_of("refs/tags/v1") is None and branch_of("c" * 40) is None


def test_the_orchestrator_asks_for_a_revert_once_with_the_rollback_and_quarantines_regardless() -> None:
    spec = ReleaseSpec("checkout", BAD, "1.6.0", "p", "d2", WAVES)
    status = ReleaseStatus()
    policy = Policy(drain_first=False, revert_commit=True)
    now = T0
    passes: list[dict[str, RegionView]] = [
        {},
        {"eu-canary": RegionView(strategy_phase=S.FAILED, strategy_reason="deadline")},
        {"eu-canary": RegionView(strategy_phase=S.ROLLED_BACK)},
        {"eu-canary": RegionView(strategy_phase=S.ROLLED_BACK)},
    ]
    for views in passes:
        now += timedelta(seconds=1)
        status, _ = decide(ReleaseView(spec, status, policy, views, previous=(PREV, "1.5.0")), now)
    assert status.phase == "RolledBack" and status.quarantined
    assert status.revert == RevertRecord()
    assert [a.action for a in status.audit].count("revert-commit") == 1
    assert ReleaseStatus.from_dict(status.to_dict()).revert == RevertRecord()  # survives the round trip


# --- intake: the revert is the already-running release -------------------------------------


def _stored(commit: str, digest: str, phase: str, previous: str | None = None) -> StoredRelease:
    spec = ReleaseSpec("checkout", commit * 40, "1.0.0", "p", digest, WAVES)
    status = ReleaseStatus(phase=phase, quarantined=phase == "RolledBack", previous_commit=previous)
    return StoredRelease(spec.name, "1", spec, status, commit)


def test_a_revert_to_what_the_regions_run_since_the_rollback_makes_no_release() -> None:
    existing = {"checkout": [_stored("a", "d1", "Succeeded"), _stored("b", "d2", "RolledBack", previous="a" * 40)]}
    revert = ReleaseSpec("checkout", "r" * 40, "1.0.0", "p", "d1", WAVES)
    assert decide_intake({"checkout": Candidate(revert, "unstarted")}, existing) == []
    # content older than what runs now is a change: a release
    older = [_stored("0", "d0", "Succeeded"), *existing["checkout"]]
    back = ReleaseSpec("checkout", "o" * 40, "1.0.0", "p", "d0", WAVES)
    assert decide_intake({"checkout": Candidate(back, "unstarted")}, {"checkout": older}) == [CreateRelease(back)]


# --- the writer, against a fake Git --------------------------------------------------------


class FakeGit:
    remote = "https://git.example.com/shop.git"

    def __init__(self) -> None:
        self.heads = {"main": "h" * 40}
        self.trees = {("h" * 40, FOLDER): "T-bad", (BAD, FOLDER): "T-bad", (PREV, FOLDER): "T-prev"}
        self.messages: dict[str, str] = {}
        self.pushed: list[tuple[str, str]] = []
        self.push_errors: list[Exception] = []
        self.fetch_errors: list[Exception] = []

    def default_branch(self) -> str:
        return "main"

    def fetch(self, branch: str) -> str | None:
        if self.fetch_errors:
            raise self.fetch_errors.pop(0)
        return self.heads.get(branch)

    def push(self, commit: str, branch: str) -> None:
        if self.push_errors:
            raise self.push_errors.pop(0)
        self.heads[branch] = commit
        self.pushed.append((commit, branch))

    def tree(self, commit: str, path: str) -> str | None:
        return self.trees.get((commit, path))

    def find_message(self, head: str, line: str, since: str | None, limit: int = 1000) -> str | None:
        on_branch = {c for c, _ in self.pushed}
        return next((c for c, m in self.messages.items() if c in on_branch and line in m.splitlines()), None)

    def last_change(self, since: str, head: str, path: str) -> str | None:
        return head

    def restore_folder(self, head: str, source: str, folder: str, message: str) -> str:
        commit = f"{len(self.messages):040d}"
        self.messages[commit] = message
        self.trees[(commit, folder)] = self.trees[(source, folder)]
        return commit


class Store:
    def __init__(self) -> None:
        self.written: list[ReleaseStatus] = []
        self.conflict = False

    def write_status(self, release: StoredRelease, status: ReleaseStatus) -> StoredRelease:
        if self.conflict:
            raise StatusConflict(release.name)
        self.written.append(status)
        return StoredRelease(
            release.name, str(int(release.resource_version) + 1), release.spec, status, release.created
        )


class Sink:
    def __init__(self) -> None:
        self.notices: list[Any] = []

    def emit(self, notice: Any, now: datetime) -> None:
        self.notices.append(notice)


class NoRepo:
    def repository(self, commit: str) -> Any:
        raise KeyError(commit)  # the plan is optional for the revert


def writer(git: FakeGit, ref: str = "main") -> tuple[RevertWriter, Store, Sink]:
    store, sink = Store(), Sink()
    return RevertWriter(git, NoRepo(), store, [sink], ref), store, sink  # type: ignore[arg-type]


def test_one_commit_is_pushed_and_recorded_and_a_restart_never_pushes_twice() -> None:
    git = FakeGit()
    w, store, sink = writer(git)
    after = w.run(rolled_back(), T0)
    assert len(git.pushed) == 1 and git.pushed[0][1] == "main"
    commit = git.pushed[0][0]
    assert after.status.revert == RevertRecord(
        "Pushed", "main", commit, f"revert pushed as commit {commit} to branch main", 1
    )
    assert git.trees[(commit, FOLDER)] == "T-prev"
    assert [n.event for n in sink.notices] == ["revertCommit"] and not sink.notices[0].warning
    # the status write was lost (a restart between push and write): the trailer is found, no 2nd push
    again = w.run(rolled_back(), T0 + timedelta(seconds=5))
    assert len(git.pushed) == 1 and again.status.revert is not None
    assert again.status.revert.state == "Pushed" and again.status.revert.commit == commit
    assert w.run(again, T0 + timedelta(seconds=9)) is again  # settled: nothing more


def test_a_moved_branch_is_rebuilt_on_its_new_head_never_forced() -> None:
    git = FakeGit()
    git.push_errors = [PushRejected("branch main moved", remote=git.remote)]
    w, _, _ = writer(git)
    after = w.run(rolled_back(), T0)
    assert len(git.pushed) == 1 and len(git.messages) == 2  # built twice, pushed once
    assert after.status.revert is not None and after.status.revert.state == "Pushed"


def test_a_changed_app_folder_is_not_reverted_and_says_which_commit() -> None:
    git = FakeGit()
    git.trees[("h" * 40, FOLDER)] = "T-fixed"
    w, _, sink = writer(git)
    after = w.run(rolled_back(), T0)
    assert not git.pushed and after.status.revert is not None
    assert after.status.revert.state == "NotReverted"
    assert (
        after.status.revert.message == f"not reverted: the app's folder changed since the release (commit {'h' * 40})"
    )
    assert sink.notices[0].warning and after.status.quarantined


def test_transient_failures_back_off_and_permanent_ones_are_recorded_once() -> None:
    git = FakeGit()
    git.fetch_errors = [RemoteUnavailable(git.remote, "connection refused", last_good=None)]
    w, store, sink = writer(git)
    after = w.run(rolled_back(), T0)
    assert after.status.revert is not None and after.status.revert.state == "Pending"
    assert after.status.revert.attempts == 1 and after.status.revert.next_attempt_at == "2026-11-29T12:00:02.000Z"
    assert not sink.notices and w.run(after, T0 + timedelta(seconds=1)) is after  # backing off
    for refusal in (
        AuthenticationFailed(git.remote, "HTTP 401"),
        PushRefused(git.remote, "main", "pre-receive hook declined"),
    ):
        git.push_errors = [refusal]
        sink.notices.clear()
        failed = w.run(rolled_back(), T0)
        assert failed.status.revert is not None and failed.status.revert.state == "Failed"
        assert failed.status.revert.message.startswith("not reverted: Git remote")
        assert [n.warning for n in sink.notices] == [True]
        assert w.run(failed, T0 + timedelta(hours=1)) is failed  # no retry loop
    assert not git.pushed


def test_a_tag_tracking_controller_without_a_revert_branch_says_what_to_set() -> None:
    w, _, _ = writer(FakeGit(), ref="refs/tags/v1")
    after = w.run(rolled_back(), T0)
    assert after.status.revert is not None and after.status.revert.state == "NotReverted"
    assert "set rollback.revertBranch" in after.status.revert.message

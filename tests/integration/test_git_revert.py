"""The revert after a rollback, pushed to the lab's real Git server over smart HTTP with a token
(rollout/revert.py, rollout/gitsync/push.py): the pushed tree, a branch that moves during the
push, an app folder someone already changed, a refused token and a protected branch.

Real: the Git server and its token check, the mirror, the pusher, the workspace (the plan at the
release's commit). Recorded instead of sent: the Release status write and the Events."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from deploy.lab.gitserver import GitServer
from rollout.gitsync import Credentials, GitMirror, Secret
from rollout.gitsync.push import GitPusher
from rollout.release import PlannedWaveSpec, ReleasePhase, ReleaseSpec, ReleaseStatus, RevertRecord
from rollout.revert import TRAILER, RevertWriter
from rollout.store import StoredRelease
from rollout.workspace import Workspace
from tests.conftest import EXAMPLE
from tests.fixtures.git import GitServerFactory

pytestmark = pytest.mark.integration

TOKEN = "lab-t0ken-for-the-revert"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
FOLDER = "apps/checkout"


class Store:
    def __init__(self) -> None:
        self.written: list[ReleaseStatus] = []

    def write_status(self, release: StoredRelease, status: ReleaseStatus) -> StoredRelease:
        self.written.append(status)
        return StoredRelease(
            release.name, str(int(release.resource_version) + 1), release.spec, status, release.created
        )


class Sink:
    def __init__(self) -> None:
        self.notices: list[Any] = []

    def emit(self, notice: Any, now: datetime) -> None:
        self.notices.append(notice)


class Setup:
    """A served repository with a good release (1.5.0) and a bad one (1.6.0) of checkout on top."""

    def __init__(self, factory: GitServerFactory, tmp: Path, token: str | None = TOKEN) -> None:
        seed = tmp / "seed"
        shutil.copytree(EXAMPLE / "regions", seed / "regions")
        shutil.copytree(EXAMPLE / "apps" / "checkout", seed / "apps" / "checkout")
        self.server: GitServer = factory(seed=seed, token=TOKEN)
        self.good = self.server.bump_app_version("checkout", "1.5.0")
        self.bad = self.server.bump_app_version("checkout", "1.6.0")
        self.tmp = tmp
        creds = Credentials(token=Secret(token)) if token else Credentials()
        self.mirror = GitMirror(self.server.url, tmp / "cache" / "git", credentials=creds, allow_insecure=True)
        self.mirror.sync()
        self.pusher = GitPusher(
            self.server.url,
            tmp / "cache" / "git-push",
            objects_from=self.mirror.path,
            credentials=creds,
            allow_insecure=True,
        )
        self.store, self.sink = Store(), Sink()
        workspace = Workspace(self.mirror, tmp / "cache")
        self.writer = RevertWriter(self.pusher, workspace, self.store, [self.sink], "main")  # type: ignore[arg-type]

    def release(self) -> StoredRelease:
        spec = ReleaseSpec("checkout", self.bad, "1.6.0", "p", "d", (PlannedWaveSpec("canary", ("eu-canary",), 5, 1),))
        status = ReleaseStatus(
            phase=ReleasePhase.ROLLED_BACK.value,
            quarantined=True,
            message="smoke check failed: error-ratio 0.3 > 0.05",
            failed_region="eu-canary",
            previous_commit=self.good,
            previous_version="1.5.0",
            revert=RevertRecord(),
        )
        return StoredRelease(spec.name, "1", spec, status, "")

    def git(self, *args: str) -> str:
        out = subprocess.run(["git", *args], cwd=self.server.bare_path, check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def tree(self, commit: str, path: str = FOLDER) -> str:
        return self.git("rev-parse", f"{commit}:{path}")


def test_the_revert_restores_the_app_folder_keeps_other_changes_and_is_pushed_once(
    git_server_factory: GitServerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = Setup(git_server_factory, tmp_path)
    other = s.server.commit_files({"README.md": "changed after the bad release\n"}, "docs: unrelated")
    after = s.writer.run(s.release(), NOW)
    revert = after.status.revert
    assert revert is not None and revert.state == "Pushed" and revert.branch == "main", revert
    head = s.server.head()
    assert revert.commit == head and s.git("rev-parse", f"{head}^") == other  # on top, fast-forward
    assert s.tree(head) == s.tree(s.good) != s.tree(s.bad)  # the app folder is the previous release's
    assert s.tree(head, "README.md") == s.tree(other, "README.md")  # later changes kept
    message = s.git("log", "-1", "--format=%B", head)
    assert "release checkout-" in message and "failed in region eu-canary: smoke check failed" in message
    assert message.splitlines()[-1] == f"{TRAILER}: {s.release().name}"
    # a restart that lost the status write: the trailer is found, nothing is pushed again
    again = s.writer.run(s.release(), NOW)
    assert again.status.revert is not None and again.status.revert.commit == head and s.server.head() == head
    # the token appears nowhere: status, notices, logs
    seen = repr([w.to_dict() for w in s.store.written]) + repr(s.sink.notices) + capsys.readouterr().out
    assert TOKEN not in seen and TOKEN not in repr(s.pusher)


def test_a_branch_moving_during_the_push_is_rebuilt_on_its_new_head(
    git_server_factory: GitServerFactory, tmp_path: Path
) -> None:
    s = Setup(git_server_factory, tmp_path)
    real_push = s.pusher.push
    moved: list[str] = []

    def someone_pushes_first(commit: str, branch: str) -> None:
        if not moved:  # between our fetch and our push, someone else's change lands
            moved.append(s.server.commit_files({"NOTES.md": "meanwhile\n"}, "notes"))
        real_push(commit, branch)

    s.pusher.push = someone_pushes_first  # type: ignore[method-assign]
    after = s.writer.run(s.release(), NOW)
    assert after.status.revert is not None and after.status.revert.state == "Pushed", after.status.revert
    head = s.server.head()
    assert s.git("rev-parse", f"{head}^") == moved[0]  # rebuilt on the new head, not forced over it
    assert s.tree(head) == s.tree(s.good) and s.tree(head, "NOTES.md")


def test_an_app_folder_changed_since_the_release_is_not_reverted(
    git_server_factory: GitServerFactory, tmp_path: Path
) -> None:
    s = Setup(git_server_factory, tmp_path)
    fix = s.server.bump_app_version("checkout", "1.6.1")
    s.server.commit_files({"NOTES.md": "later\n"}, "notes")
    head = s.server.head()
    after = s.writer.run(s.release(), NOW)
    assert after.status.revert is not None and after.status.revert.state == "NotReverted"
    assert after.status.revert.message == f"not reverted: the app's folder changed since the release (commit {fix})"
    assert s.server.head() == head and [n.warning for n in s.sink.notices] == [True]


def test_a_refused_token_and_a_protected_branch_are_recorded_once_and_not_retried(
    git_server_factory: GitServerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "not-the-lab-t0ken"
    s = Setup(git_server_factory, tmp_path)
    head = s.server.head()
    refused = GitPusher(
        s.server.url,
        tmp_path / "cache" / "git-push-wrong",
        objects_from=s.mirror.path,
        credentials=Credentials(token=Secret(wrong)),
        allow_insecure=True,
    )
    s.writer.pusher = refused
    after = s.writer.run(s.release(), NOW)
    revert = after.status.revert
    assert revert is not None and revert.state == "Failed" and "refused authentication" in revert.message
    assert s.writer.run(after, NOW) is after  # settled: no retry loop
    assert wrong not in repr(after.status.to_dict()) + repr(s.sink.notices) + capsys.readouterr().out

    hook = s.server.bare_path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is a protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    s.writer.pusher = s.pusher
    after = s.writer.run(s.release(), NOW)
    revert = after.status.revert
    assert revert is not None and revert.state == "Failed", revert
    assert "refused the push to branch main" in revert.message and "rollback.revertBranch" in revert.message
    assert s.server.head() == head and after.status.quarantined

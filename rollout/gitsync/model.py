"""The Git sync interface: what the controller asks of a Git source, its results and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SyncResult:
    """Outcome of one successful sync of the tracked ref."""

    ref: str
    commit: str
    previous: str | None
    # The previous commit is not an ancestor of the new one (a force-push).
    rewritten: bool
    changed_apps: frozenset[str]
    synced_at: datetime

    @property
    def changed(self) -> bool:
        return self.commit != self.previous


@runtime_checkable
class GitSource(Protocol):
    """A read-only view of a rollout repository, addressed by pinned commits."""

    @property
    def last_good(self) -> str | None:
        """The commit of the last successful sync (survives restarts); None before the first."""
        ...

    def sync(self) -> SyncResult:
        """Fetch the remote and resolve the tracked ref. Raises GitError; last_good is kept."""
        ...

    def resolve(self, rev: str) -> str:
        """Branch, tag or commit -> full commit id, from the local mirror (no network)."""
        ...

    def changed_apps(self, old: str | None, new: str) -> set[str]:
        """Apps whose inputs differ between two commits; old=None means every app in `new`."""
        ...

    def read(self, commit: str, path: str) -> bytes:
        """Bytes of a regular file at a pinned commit; safe to call concurrently."""
        ...

    def author(self, commit: str) -> str:
        """The commit's author, "Name <email>"."""
        ...

    def checkout(self, commit: str, dest: Path) -> Path:
        """Materialize a pinned commit's tree into `dest` (created; symlinks kept as symlinks)."""
        ...


# --- errors --------------------------------------------------------------------------------------


class GitError(Exception):
    """Base of Git sync errors. `temporary` says whether retrying later may help."""

    temporary: bool = False

    def __init__(self, message: str, *, remote: str = "") -> None:
        super().__init__(message)
        self.remote = remote  # always the redacted URL


class RemoteUnavailable(GitError):
    """The remote could not be reached or did not answer; the last known good commit stays."""

    temporary = True

    def __init__(self, remote: str, cause: str, *, last_good: str | None) -> None:
        keep = f"; keeping last known good commit {last_good}" if last_good else ""
        super().__init__(f"Git remote {remote} unavailable: {cause}{keep}", remote=remote)
        self.cause = cause
        self.last_good = last_good


class RemoteTimeout(RemoteUnavailable):
    """A network operation exceeded its time bound and was killed."""


class AuthenticationFailed(GitError):
    """The remote refused our credentials (or the host key); fix the configuration."""

    def __init__(self, remote: str, cause: str) -> None:
        super().__init__(
            f"Git remote {remote} refused authentication: {cause}. "
            "Check the token or SSH key and known_hosts configured for this repository.",
            remote=remote,
        )
        self.cause = cause


class RepositoryNotFound(GitError):
    def __init__(self, remote: str, cause: str) -> None:
        super().__init__(f"Git repository {remote} not found: {cause}. Check the URL.", remote=remote)
        self.cause = cause


class RevisionNotFound(GitError):
    def __init__(self, rev: str, remote: str) -> None:
        super().__init__(
            f"revision {rev!r} not found in {remote}: name an existing branch, tag or full commit id",
            remote=remote,
        )
        self.rev = rev


class PathNotFound(GitError):
    def __init__(self, commit: str, path: str) -> None:
        super().__init__(f"{path!r} does not exist at commit {commit}")
        self.commit = commit
        self.path = path


class UnsafePath(GitError):
    """A path that leaves the repository or names a symlink/directory where a file is expected."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"refusing to read {path!r}: {reason}")
        self.path = path


class TooLarge(GitError):
    """The repository or a commit is over a size cap (rollout/gitsync/pure.py SizeCaps): the commit
    is not adopted, the last good one keeps serving. Shrink the repository or raise the cap."""

    def __init__(self, remote: str, problem: str, *, last_good: str | None, fix: str) -> None:
        keep = f"; keeping last good commit {last_good}" if last_good else ""
        super().__init__(f"Git repository {remote}: {problem}{keep}. {fix}", remote=remote)
        self.problem = problem
        self.last_good = last_good

"""`GitPusher`: the one place the controller writes to Git (the revert after a rollback).

A private bare repository beside the mirror borrows the mirror's objects (`objects/info/alternates`,
the mirror never prunes), fetches only the branch it writes to, builds one commit with plumbing
(no work tree) and pushes it without force: a branch that moved meanwhile refuses the push, and the
caller rebuilds on the new head. The credentials are the mirror's (the same token header or SSH
key, from the same Secret), passed in git's environment and scrubbed from every message.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path

import structlog

from rollout.gitsync.mirror import credentials_out_of_url, remote_error
from rollout.gitsync.model import AuthenticationFailed, GitError
from rollout.gitsync.pure import (
    Credentials,
    FailureKind,
    cache_key,
    check_remote_url,
    classify_failure,
    failure_cause,
    git_env,
    redact_text,
    redact_url,
)

log = structlog.get_logger(__name__)

# Who the revert commit is by (author and committer); the message names who rolled back.
IDENTITY = ("regional-rollout controller", "rollout-controller@localhost")
_NOT_FAST_FORWARD = ("non-fast-forward", "fetch first", "stale info", "[rejected]")
_REFUSED = ("protected branch", "hook declined", "[remote rejected]", "denied", "deny updating", "not allowed")


class PushRejected(GitError):
    """The branch moved since we fetched it (not a fast-forward): fetch and rebuild, never force."""

    temporary = True


class PushRefused(GitError):
    """The remote refuses writes to the branch (protected, a hook declined): fix it in the forge."""

    def __init__(self, remote: str, branch: str, cause: str) -> None:
        super().__init__(
            f"Git remote {remote} refused the push to branch {branch}: {cause}. Allow the controller's "
            "identity to push there, or set rollback.revertBranch to a branch it may write (for a pull request)",
            remote=remote,
        )
        self.cause = cause


class GitPusher:
    """Builds and pushes commits to one remote, with the controller's Git credentials."""

    def __init__(
        self,
        url: str,
        cache_dir: Path,
        *,
        objects_from: Path | None = None,
        credentials: Credentials | None = None,
        timeout: float = 30.0,
        allow_insecure: bool = False,
        identity: tuple[str, str] = IDENTITY,
    ) -> None:
        check_remote_url(url, allow_insecure=allow_insecure)
        self._url, self._creds = credentials_out_of_url(url, credentials or Credentials())
        self.remote = redact_url(url)
        self.allow_insecure = allow_insecure
        self.timeout = timeout
        self.identity = identity
        self.path = Path(cache_dir).resolve() / cache_key(self._url)
        self._objects_from = Path(objects_from).resolve() / "objects" if objects_from else None

    def __repr__(self) -> str:
        return f"GitPusher(remote={self.remote!r}, path={str(self.path)!r})"

    # --- network --------------------------------------------------------------------------------

    def default_branch(self) -> str:
        """The branch the remote's HEAD names (what tracking "HEAD" follows)."""
        self._ensure()
        out = self._remote("ls-remote", "--symref", "--end-of-options", self._url, "HEAD")
        for line in out.splitlines():
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                return line.removeprefix("ref: refs/heads/").removesuffix("\tHEAD")
        raise GitError(f"Git remote {self.remote} names no default branch", remote=self.remote)

    def fetch(self, branch: str) -> str | None:
        """The branch's head on the remote now (its objects fetched), or None when it does not exist."""
        self._ensure()
        ref = f"refs/remotes/origin/{branch}"
        code, _, err = self._run(
            "fetch",
            "--no-tags",
            "--quiet",
            "--no-write-fetch-head",
            "--end-of-options",
            self._url,
            f"+refs/heads/{branch}:{ref}",
            network=True,
        )
        if code != 0:
            if "couldn't find remote ref" in err.lower():
                self._run("update-ref", "-d", ref)
                return None
            raise self._network_error(err, code)
        return self.rev(ref)

    def push(self, commit: str, branch: str) -> None:
        """Push `commit` to `branch`, a fast-forward only (or the branch's creation)."""
        self._ensure()
        code, out, err = self._run(
            "push",
            "--quiet",
            "--porcelain",
            "--end-of-options",
            self._url,
            f"{commit}:refs/heads/{branch}",
            network=True,
        )
        if code == 0:
            self._run("update-ref", f"refs/remotes/origin/{branch}", commit)
            return
        text = f"{out}\n{err}"
        low = text.lower()
        cause = redact_text(failure_cause(err) or out.strip()[:300], self._creds.secrets())
        if any(m in low for m in _NOT_FAST_FORWARD) and "[remote rejected]" not in low:
            raise PushRejected(f"branch {branch} moved on {self.remote}: {cause}", remote=self.remote)
        if classify_failure(err) is FailureKind.AUTH:
            raise AuthenticationFailed(self.remote, cause)
        if any(m in low for m in _REFUSED):
            raise PushRefused(self.remote, branch, cause)
        raise self._network_error(err, code)

    # --- local reads and the commit (no network) ------------------------------------------------

    def rev(self, rev: str) -> str | None:
        code, out, _ = self._run("rev-parse", "--verify", "--quiet", "--end-of-options", rev)
        return out.strip() if code == 0 else None

    def tree(self, commit: str, path: str) -> str | None:
        """The object id of `path` at `commit` (a folder's tree), None when absent."""
        return self.rev(f"{commit}:{path}")

    def is_ancestor(self, old: str, new: str) -> bool:
        code, _, _ = self._run("merge-base", "--is-ancestor", old, new)
        return code == 0

    def find_message(self, head: str, line: str, since: str | None, limit: int = 1000) -> str | None:
        """The newest commit on `head` (after `since` when it is an ancestor) whose message has `line`."""
        span = f"{since}..{head}" if since and self.is_ancestor(since, head) else head
        out = self._checked("log", f"-n{limit}", "--format=%H%x00%B%x01", span)
        for record in out.split("\x01"):
            sha, _, body = record.strip().partition("\0")
            if sha and line in body.splitlines():
                return sha
        return None

    def last_change(self, since: str, head: str, path: str) -> str | None:
        """The newest commit after `since` on `head` touching `path` (`head` when history was rewritten)."""
        if not self.is_ancestor(since, head):
            return head
        out = self._checked("log", "-n1", "--format=%H", f"{since}..{head}", "--", path)
        return out.strip() or None

    def restore_folder(self, head: str, source: str, folder: str, message: str) -> str:
        """A new commit on top of `head` whose `folder` is `source`'s, everything else `head`'s."""
        self._ensure()
        prefix = folder.rstrip("/") + "/"
        keep = [e for e in self._checked("ls-tree", "-r", "-z", "--full-tree", head).split("\0") if e]
        keep = [e for e in keep if not e.partition("\t")[2].startswith(prefix)]
        restored = [e for e in self._checked("ls-tree", "-r", "-z", source, "--", prefix).split("\0") if e]
        index = self.path / f"index.{uuid.uuid4().hex}"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            self._checked("read-tree", "--empty", env=env)
            self._checked("update-index", "-z", "--index-info", env=env, stdin="\0".join(keep + restored) + "\0")
            tree = self._checked("write-tree", env=env).strip()
        finally:
            index.unlink(missing_ok=True)
        name, email = self.identity
        who = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        return self._checked("commit-tree", tree, "-p", head, "-F", "-", env=who, stdin=message).strip()

    # --- running git ----------------------------------------------------------------------------

    def _ensure(self) -> None:
        if not (self.path / "HEAD").exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "--quiet", "--bare", str(self.path)], check=True, capture_output=True)
        if self._objects_from is not None:
            alternates = self.path / "objects" / "info" / "alternates"
            if not alternates.exists():
                alternates.parent.mkdir(parents=True, exist_ok=True)
                alternates.write_text(f"{self._objects_from}\n")

    def _remote(self, *args: str) -> str:
        code, out, err = self._run(*args, network=True)
        if code != 0:
            raise self._network_error(err, code)
        return out

    def _network_error(self, err: str, code: int) -> GitError:
        cause = redact_text(failure_cause(err), self._creds.secrets()) or f"git exited with {code}"
        log.warning("git.push_side_failed", remote=self.remote, cause=cause, kind=classify_failure(err).value)
        return remote_error(self.remote, err, cause, self.timeout, last_good=None)

    def _checked(self, *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None) -> str:
        code, out, err = self._run(*args, env=env, stdin=stdin)
        if code != 0:
            cause = redact_text(failure_cause(err), self._creds.secrets())
            raise GitError(f"git {args[0]} failed for a revert on {self.remote}: {cause}", remote=self.remote)
        return out

    def _run(
        self, *args: str, network: bool = False, env: Mapping[str, str] | None = None, stdin: str | None = None
    ) -> tuple[int, str, str]:
        full_env = dict(os.environ)  # as the mirror's git runs (ssh finds its home); git's config isolated below
        full_env.update(git_env(self._creds, self.timeout, url=self._url, allow_insecure=self.allow_insecure))
        full_env.update(env or {})
        try:
            proc = subprocess.run(
                ["git", f"--git-dir={self.path}", *args],
                input=stdin,
                capture_output=True,
                text=True,
                env=full_env,
                timeout=self.timeout * 2 if network else None,
            )
        except subprocess.TimeoutExpired:
            return 124, "", "timeout: git did not finish in time"
        return proc.returncode, proc.stdout, proc.stderr

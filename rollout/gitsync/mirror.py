"""`GitMirror`: the one GitSource implementation, a bare mirror of a remote kept in a cache folder.

Reads go to the object database by commit id, so no checkout is ever shared or mutated under a
reader; `checkout` materializes a tree into a fresh folder through a private index file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import git
import structlog
from gitdb.exc import BadName, BadObject

from rollout.gitsync.model import (
    AuthenticationFailed,
    GitError,
    PathNotFound,
    RemoteTimeout,
    RemoteUnavailable,
    RepositoryNotFound,
    RevisionNotFound,
    SyncResult,
    TooLarge,
    UnsafePath,
)
from rollout.gitsync.pure import (
    APPS_DIR,
    GLOBAL_PREFIXES,
    Credentials,
    FailureKind,
    Secret,
    SizeCaps,
    apps_for_paths,
    cache_key,
    check_remote_url,
    classify_failure,
    failure_cause,
    gc_due,
    git_config_env,
    git_env,
    human_size,
    is_full_sha,
    normalize_repo_path,
    parse_ls_tree,
    redact_text,
    redact_url,
    repository_bytes,
    size_problems,
    split_userinfo,
)

log = structlog.get_logger(__name__)

_FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
_SYMLINK_MODE = 0o120000
_LAST_GOOD_PREFIX = "refs/rollout/last-good/"
# The remote's default branch, fetched only when we track "HEAD" (a dangling remote HEAD would
# otherwise fail every fetch).
_REMOTE_HEAD = "refs/rollout/remote-head"
# Housekeeping of the mirror (repack loose objects and small packs), at most this often. Nothing
# unreachable is pruned: a release may be pinned to a commit a force-push dropped.
GC_INTERVAL_SECONDS = 3600.0
# In the foreground (not detached), so the time bound of the call applies to it.
_GC_SETTINGS = {"gc.auto": "6700", "gc.autoPackLimit": "50", "gc.pruneExpire": "never", "gc.autoDetach": "false"}
_GC_CONFIG = tuple(arg for key, value in _GC_SETTINGS.items() for arg in ("-c", f"{key}={value}"))
_GC_STAMP = "rollout-gc-at"


def remote_error(
    remote: str, stderr: str, cause: str, timeout: float, last_good: str | None, *, timed_out: bool = False
) -> GitError:
    """The error a failed git call against the remote is: timeout, refused credentials, no such
    repository, or (anything else) unavailable. Shared by the fetching mirror and the pusher."""
    kind = classify_failure(stderr)
    if kind is FailureKind.TIMEOUT or timed_out:
        return RemoteTimeout(remote, f"no answer within {timeout:g}s", last_good=last_good)
    if kind is FailureKind.AUTH:
        return AuthenticationFailed(remote, cause)
    if kind is FailureKind.NOT_FOUND:
        return RepositoryNotFound(remote, cause)
    return RemoteUnavailable(remote, cause, last_good=last_good)


def credentials_out_of_url(url: str, creds: Credentials) -> tuple[str, Credentials]:
    """Move http(s) userinfo into the credentials, so the URL we keep and show holds no secret.

    `https://user:token@host/...` and `https://token@host/...` both occur in the wild. ssh URLs
    keep their user (it selects the account; ssh never takes a password from the URL).
    """
    if urlsplit(url).scheme not in ("http", "https"):
        return url, creds
    clean, user, password = split_userinfo(url)
    secret = password if password is not None else user
    if secret and not creds.token:
        username = user if password is not None and user else creds.username
        creds = dataclasses.replace(creds, token=Secret(secret), username=username)
    return clean, creds


class GitMirror:
    """A bare mirror of one remote, tracking one ref: a branch, a tag, or "HEAD" (the remote's
    default branch, as `git clone` picks it)."""

    def __init__(
        self,
        url: str,
        cache_dir: Path,
        *,
        ref: str = "HEAD",
        credentials: Credentials | None = None,
        timeout: float = 30.0,
        global_prefixes: tuple[str, ...] = GLOBAL_PREFIXES,
        allow_insecure: bool = False,
        caps: SizeCaps | None = None,
        gc_interval: float = GC_INTERVAL_SECONDS,
    ) -> None:
        check_remote_url(url, allow_insecure=allow_insecure)
        self.allow_insecure = allow_insecure
        self.caps = caps or SizeCaps()
        self.gc_interval = gc_interval
        self._refused: dict[str, TooLarge] = {}  # commit -> why it is over a cap (checked once)
        self._url, self._creds = credentials_out_of_url(url, credentials or Credentials())
        self.remote = redact_url(url)
        self.ref = ref
        self.timeout = timeout
        self.global_prefixes = global_prefixes
        self.path = Path(cache_dir) / cache_key(self._url)
        self._sync_lock = threading.Lock()
        # gitpython keeps one `git cat-file --batch` per Repo; its pipes are not thread-safe.
        self._odb_lock = threading.Lock()
        self._repo: git.Repo | None = None
        self._log = log.bind(remote=self.remote, ref=ref)

    def __repr__(self) -> str:
        return f"GitMirror(remote={self.remote!r}, ref={self.ref!r}, path={str(self.path)!r})"

    # --- GitSource ------------------------------------------------------------------------------

    @property
    def last_good(self) -> str | None:
        if not self.path.exists():
            return None
        code, out, _ = self._git("rev-parse", "--verify", "--quiet", self._last_good_ref)
        return out.strip() if code == 0 else None

    def sync(self) -> SyncResult:
        with self._sync_lock, self._file_lock():
            self._ensure_repo()
            previous = self.last_good
            started = time.monotonic()
            self._fetch(previous)
            self._check_repository_size(previous)
            commit = self._resolve_tracked(previous)
            if commit != previous:
                self._check_commit_size(commit, previous)
            rewritten = previous is not None and not self._is_ancestor(previous, commit)
            changed = self.changed_apps(previous, commit) if commit != previous else set()
            self._git_checked("update-ref", self._last_good_ref, commit)
            self._housekeeping()
        result = SyncResult(self.ref, commit, previous, rewritten, frozenset(changed), datetime.now(UTC))
        self._log_result(result, time.monotonic() - started)
        return result

    def resolve(self, rev: str) -> str:
        """`HEAD` means the tracked ref; a branch name means the remote's branch as last fetched."""
        if not rev or rev.startswith("-"):
            raise RevisionNotFound(rev, self.remote)
        if rev == "HEAD":
            rev = _REMOTE_HEAD if self.ref == "HEAD" else self.ref
        code, out, _ = self._git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
        if code != 0:
            raise RevisionNotFound(rev, self.remote)
        return out.strip()

    def changed_apps(self, old: str | None, new: str) -> set[str]:
        new_commit = self.resolve(new)
        if old is None:
            return set(self._apps_at(new_commit))
        old_commit = self.resolve(old)
        out = self._git_checked("diff-tree", "-r", "-z", "--name-only", "--no-renames", old_commit, new_commit)
        paths = [p for p in out.split("\0") if p]
        known = self._apps_at(old_commit) | self._apps_at(new_commit)
        return apps_for_paths(paths, known, self.global_prefixes)

    def read(self, commit: str, path: str) -> bytes:
        rel = self._safe_path(path)
        self._require_sha(commit)
        with self._odb_lock:
            tree = self._tree(commit)
            try:
                obj = tree / rel
            except KeyError:
                raise PathNotFound(commit, rel) from None
            if obj.mode == _SYMLINK_MODE:
                raise UnsafePath(rel, "it is a symbolic link; materialize with checkout() to follow it")
            if obj.type != "blob":
                raise UnsafePath(rel, f"it is a {obj.type}, not a file")
            data: bytes = obj.data_stream.read()
        return data

    def author(self, commit: str) -> str:
        """The commit's author as "Name <email>" (what approval gates' notByAuthor compare with)."""
        self._require_sha(commit)
        with self._odb_lock:
            try:
                who = self._ensure_repo().commit(commit).author
            except (BadName, BadObject, ValueError):
                raise RevisionNotFound(commit, self.remote) from None
            return f"{who.name} <{who.email}>"

    def checkout(self, commit: str, dest: Path) -> Path:
        self._require_sha(commit)
        self.resolve(commit)  # a clear error for an unknown commit before touching the disk
        dest = Path(dest)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise FileExistsError(f"checkout destination {dest} exists and is not an empty folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Build beside dest and rename, so a reader never sees a half-written tree.
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            self._materialize(commit, staging)
            if dest.exists():
                dest.rmdir()
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._log.debug("git.checkout", commit=commit, dest=str(dest))
        return dest

    # --- sync steps -----------------------------------------------------------------------------

    @property
    def _last_good_ref(self) -> str:
        return _LAST_GOOD_PREFIX + self.ref

    def _ensure_repo(self) -> git.Repo:
        if self._repo is None:
            if not (self.path / "HEAD").exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                git.Repo.init(self.path, bare=True)
            self._repo = git.Repo(self.path)
            with self._repo.config_writer() as cfg:
                # Pinned releases may name commits a force-push made unreachable: never prune them.
                cfg.set_value("gc", "auto", "0")
                cfg.set_value("gc", "pruneExpire", "never")
        return self._repo

    def _fetch(self, last_good: str | None) -> None:
        started = time.monotonic()
        code, _, err = self._git(
            "fetch",
            "--prune",
            "--no-tags",
            "--force",
            "--no-write-fetch-head",
            "--quiet",
            "--end-of-options",
            self._url,
            *_FETCH_REFSPECS,
            *([f"+HEAD:{_REMOTE_HEAD}"] if self.ref == "HEAD" else []),
            timeout=self.timeout,
            env=git_env(self._creds, self.timeout, url=self._url, allow_insecure=self.allow_insecure),
        )
        if code == 0:
            return
        cause = redact_text(failure_cause(err), self._creds.secrets()) or f"git fetch exited with {code}"
        elapsed = time.monotonic() - started
        self._log.warning("git.fetch_failed", cause=cause, elapsed_s=round(elapsed, 2), last_good=last_good)
        raise remote_error(self.remote, err, cause, self.timeout, last_good, timed_out=elapsed >= self.timeout)

    def _check_repository_size(self, last_good: str | None) -> None:
        size = repository_bytes(self._git_checked("count-objects", "-v"))
        if size > self.caps.repository_bytes:
            self._log.error("git.repository_too_large", bytes=size, cap=self.caps.repository_bytes)
            raise TooLarge(
                self.remote,
                f"the mirror takes {human_size(size)} after fetching, over the "
                f"{human_size(self.caps.repository_bytes)} cap",
                last_good=last_good,
                fix="Shrink the repository's history or raise --git-max-repository-mib.",
            )

    def _check_commit_size(self, commit: str, last_good: str | None) -> None:
        """Refuse a commit with a file or a total over the caps, naming the files (checked once)."""
        refused = self._refused.get(commit)
        if refused is None:
            problems = size_problems(parse_ls_tree(self._git_checked("ls-tree", "-r", "-l", "-z", commit)), self.caps)
            if not problems:
                return
            refused = TooLarge(
                self.remote,
                f"commit {commit[:12]} is not used: " + "; ".join(problems),
                last_good=last_good,
                fix="Remove the large files from the branch (keep binaries out of the rollout repository) "
                "or raise --git-max-file-mib / --git-max-commit-mib.",
            )
            self._refused = {commit: refused}  # only the newest refused head is remembered
            self._log.error("git.commit_too_large", commit=commit, problems=problems)
        raise refused

    def _housekeeping(self) -> None:
        """`git gc --auto` (repack, never prune) at most once per `gc_interval`, across restarts too."""
        stamp = self.path / _GC_STAMP
        try:
            last = float(stamp.read_text())
        except (OSError, ValueError):
            last = None
        now = time.time()
        if not gc_due(last, now, self.gc_interval):
            return
        stamp.write_text(f"{now}\n")
        code, _, err = self._git(*_GC_CONFIG, "gc", "--auto", "--quiet", timeout=max(self.timeout, 300.0))
        if code != 0:  # housekeeping: the next run tries again; the sync itself succeeded
            self._log.warning("git.gc_failed", cause=redact_text(failure_cause(err), self._creds.secrets()))
        else:
            self._log.debug("git.gc", elapsed_s=round(time.time() - now, 2))

    def _resolve_tracked(self, last_good: str | None) -> str:
        try:
            return self.resolve(self.ref)
        except RevisionNotFound:
            self._log.error("git.ref_missing", last_good=last_good)
            raise

    def _is_ancestor(self, old: str, new: str) -> bool:
        code, _, _ = self._git("merge-base", "--is-ancestor", old, new)
        return code == 0

    def _log_result(self, result: SyncResult, elapsed: float) -> None:
        fields = {
            "commit": result.commit,
            "previous": result.previous,
            "elapsed_s": round(elapsed, 3),
            "changed_apps": sorted(result.changed_apps),
        }
        if result.rewritten:
            self._log.warning("git.history_rewritten", **fields)
        elif result.changed:
            self._log.info("git.synced", **fields)
        else:
            self._log.debug("git.unchanged", **fields)

    # --- reading --------------------------------------------------------------------------------

    def _apps_at(self, commit: str) -> set[str]:
        with self._odb_lock:
            tree = self._tree(commit)
            try:
                apps = tree / APPS_DIR
            except KeyError:
                return set()
            return {t.name for t in apps.trees}

    def _tree(self, commit: str) -> git.Tree:
        try:
            return self._ensure_repo().commit(commit).tree
        except (BadName, BadObject, ValueError):
            raise RevisionNotFound(commit, self.remote) from None

    def _materialize(self, commit: str, target: Path) -> None:
        # A private index file: the mirror has no shared worktree or index to race on.
        index = self.path / f"index.{uuid.uuid4().hex}"
        config = {"core.symlinks": "true", "core.autocrlf": "false"}
        env = {"GIT_INDEX_FILE": str(index), "GIT_WORK_TREE": str(target), **git_config_env(config)}
        try:
            self._git_checked("read-tree", commit, env=env)
            self._git_checked("checkout-index", "--all", "--force", env=env)
        finally:
            index.unlink(missing_ok=True)

    @staticmethod
    def _safe_path(path: str) -> str:
        try:
            return normalize_repo_path(path)
        except ValueError as exc:
            raise UnsafePath(path, str(exc)) from None

    @staticmethod
    def _require_sha(commit: str) -> None:
        if not is_full_sha(commit):
            # Reading at a branch name would render from a moving target (DESIGN.md §5).
            raise ValueError(f"{commit!r} is not a full commit id: pin it with resolve() first")

    # --- running git ----------------------------------------------------------------------------

    def _git(
        self, *args: str, timeout: float | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[int, str, str]:
        """Run git in the mirror; never raises on a non-zero exit (callers classify)."""
        repo = self._ensure_repo()
        code, out, err = repo.git.execute(
            ["git", f"--git-dir={self.path}", *args],
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=timeout,
            env=dict(env or {}),
        )
        return int(code or 0), str(out), str(err)

    def _git_checked(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        code, out, err = self._git(*args, env=env)
        if code != 0:
            cause = redact_text(failure_cause(err), self._creds.secrets())
            message = f"git {args[0]} failed in mirror of {self.remote}: {cause}"
            raise GitError(message, remote=self.remote)
        return out

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialize syncs of the same cache folder across processes too."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

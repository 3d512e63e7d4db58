"""Pinned commits materialized once, loaded once: what rendering and intake read from.

A release renders from its own commit, never from a moving branch head (DESIGN §5), so every
read goes through `repository(commit)`.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from config.errors import InvalidRepository
from config.grants import DEFAULT_POLICY, Policy
from config.loader import load_repository
from config.policies import RenderMemo
from config.repository import Repository
from rollout.gitsync import GitSource
from rollout.release import ReleasePhase

if TYPE_CHECKING:
    from rollout.store import StoredRelease

log = structlog.get_logger("rollout.workspace")

INVALID_RETRY_SECONDS = 600.0
# Trees kept beyond the ones live releases need: the most recently used ones (cheap re-renders).
KEEP_RECENT_TREES = 8
# A tree used this recently is never removed: a render may still be reading it from a Repository
# object handed out before the release finished.
IN_USE_GRACE_SECONDS = 600.0
# Releases whose commit (and the commit they would roll back to) must stay on disk.
_LIVE_PHASES = frozenset(
    {ReleasePhase.PENDING, ReleasePhase.PROGRESSING, ReleasePhase.PAUSED, ReleasePhase.ROLLING_BACK}
)


class Workspace:
    def __init__(
        self,
        source: GitSource,
        cache_dir: Path,
        keep: int = 16,
        grants: Policy = DEFAULT_POLICY,
        keep_recent_trees: int = KEEP_RECENT_TREES,
        in_use_grace: float = IN_USE_GRACE_SECONDS,
    ):
        self.source = source
        self.grants = grants  # the operator's policy (`--policy`), checked by every render
        self._memo = RenderMemo()  # apps whose dry render passed: a push renders only what changed
        self.cache_dir = Path(cache_dir)
        self._keep = keep
        self._loaded: dict[str, Repository] = {}
        self._invalid: dict[str, tuple[InvalidRepository, float]] = {}  # and when to retry
        self._loading: dict[str, threading.Lock] = {}  # one per commit being loaded
        self._lock = threading.Lock()  # guards the dicts only; never held while loading
        self._keep_recent_trees = keep_recent_trees
        self._in_use_grace = in_use_grace
        self._used: dict[str, float] = {}  # commit -> when repository() last handed it out (time.time())

    @property
    def trees_dir(self) -> Path:
        return self.cache_dir / "trees"

    def tree(self, commit: str) -> Path:
        target = self.trees_dir / commit
        if not target.exists():
            staging = self.cache_dir / "trees" / f".{commit}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            self.source.checkout(commit, staging)
            staging.rename(target)  # atomic: a crash never leaves a half tree under the real name
        return target

    def repository(self, commit: str) -> Repository:
        """The loaded repository at `commit` (raises config.errors.InvalidRepository).

        Loading a commit (checkout, validation, a dry render of every app in every region) can take
        seconds, and a pathological commit takes up to the render limits, so it happens outside the
        shared lock: reconciles of commits already loaded never wait for it. A second caller of the
        same commit waits for the first one's load (one lock per commit). A commit found invalid is
        remembered for a while (INVALID_RETRY_SECONDS), so a bomb is not rendered again on every poll; it
        is retried after that in case a limit was hit only because the machine was busy."""
        with self._lock:
            self._used[commit] = time.time()
            loaded = self._loaded.get(commit)
            if loaded is not None:
                return loaded
            self._raise_if_invalid(commit)
            gate = self._loading.setdefault(commit, threading.Lock())
        with gate:
            with self._lock:  # loaded by the caller we waited for?
                if commit in self._loaded:
                    return self._loaded[commit]
                self._raise_if_invalid(commit)
            try:
                repo = load_repository(self.tree(commit), self.grants, self._memo)
            except InvalidRepository as invalid:
                with self._lock:
                    self._invalid[commit] = (invalid, time.monotonic() + INVALID_RETRY_SECONDS)
                    _trim(self._invalid, self._keep)
                    self._loading.pop(commit, None)
                raise
            except BaseException:  # temporary (checkout, the render helper): the next caller retries
                with self._lock:
                    self._loading.pop(commit, None)
                raise
            with self._lock:
                self._loaded[commit] = repo
                _trim(self._loaded, self._keep)
                self._loading.pop(commit, None)
            return repo

    def retain(self, needed: Iterable[str]) -> list[str]:
        """Remove the trees (and loaded repositories) of commits that nothing needs any more.

        `needed`: the commits live releases render from (`needed_commits`). Kept as well: the
        `keep_recent_trees` most recently used, any commit being loaded right now (its per-commit
        lock is taken) and any used in the last `in_use_grace` seconds (a render may still be
        reading a Repository object handed out before). A removed commit is materialized again on
        demand from the mirror. Returns the commits removed."""
        if not self.trees_dir.is_dir():
            return []
        trash: list[Path] = []
        with self._lock:
            on_disk = {p.name: self._used.get(p.name, _mtime(p)) for p in self.trees_dir.iterdir() if _is_tree(p)}
            doomed = trees_to_remove(
                on_disk,
                set(needed),
                set(self._loading),
                self._keep_recent_trees,
                time.time() - self._in_use_grace,
            )
            for commit in sorted(doomed):
                # Renamed away under the lock: a load starting after this sees no tree and checks
                # out a fresh one; the slow delete happens outside the lock.
                target = self.trees_dir / f".{commit}.removing-{uuid.uuid4().hex[:8]}"
                try:
                    (self.trees_dir / commit).rename(target)
                except OSError as exc:
                    log.warning("tree not removed", commit=commit[:12], error=str(exc))
                    continue
                trash.append(target)
                self._loaded.pop(commit, None)
                self._used.pop(commit, None)
        for path in trash:
            shutil.rmtree(path, ignore_errors=True)
        for stale in self.trees_dir.glob(".*.removing-*"):  # left by a crash mid-delete
            shutil.rmtree(stale, ignore_errors=True)
        removed = sorted(p.name[1:].partition(".removing-")[0] for p in trash)
        if removed:
            log.info("trees removed", commits=[c[:12] for c in removed], kept=len(on_disk) - len(removed))
        return removed

    def _raise_if_invalid(self, commit: str) -> None:
        known = self._invalid.get(commit)
        if known is not None:
            if time.monotonic() < known[1]:
                raise known[0]
            del self._invalid[commit]


def needed_commits(releases: Iterable[StoredRelease], last_good: str | None) -> set[str]:
    """Commits whose trees live releases need: every release not finished (Pending, Progressing,
    Paused, RollingBack) and the commit it would roll back to, each app's newest Succeeded release
    (what runs, and what the next release rolls back to), and the last good commit."""
    needed = {last_good} if last_good else set()
    newest_good: dict[str, tuple[str, str, str]] = {}  # app -> (created, name, commit)
    for release in releases:
        phase = release.status.phase
        if phase in _LIVE_PHASES:
            needed.add(release.spec.commit)
            if release.status.previous_commit:
                needed.add(release.status.previous_commit)
        elif phase == ReleasePhase.SUCCEEDED:
            candidate = (release.created, release.name, release.spec.commit)
            newest_good[release.spec.app] = max(newest_good.get(release.spec.app, candidate), candidate)
    return needed | {commit for _, _, commit in newest_good.values()}


def trees_to_remove(
    on_disk: Mapping[str, float], needed: set[str], busy: set[str], keep_recent: int, used_before: float
) -> set[str]:
    """Pure: of the commits with a tree (commit -> last use), those to remove: neither needed nor
    busy, not among the `keep_recent` most recently used of the others, and last used before
    `used_before`."""
    spare = sorted((c for c in on_disk if c not in needed and c not in busy), key=lambda c: on_disk[c], reverse=True)
    return {c for c in spare[max(0, keep_recent) :] if on_disk[c] < used_before}


def _is_tree(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _trim(cache: dict[str, Any], keep: int) -> None:
    while len(cache) > keep:
        cache.pop(next(iter(cache)))


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

"""Pinned commits materialized once, loaded once: what rendering and intake read from.

A release renders from its own commit, never from a moving branch head (DESIGN §5), so every
read goes through `repository(commit)`.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from config.errors import InvalidRepository
from config.grants import DEFAULT_POLICY, Policy
from config.loader import load_repository
from config.repository import Repository
from rollout.gitsync import GitSource

INVALID_RETRY_SECONDS = 600.0


class Workspace:
    def __init__(self, source: GitSource, cache_dir: Path, keep: int = 16, grants: Policy = DEFAULT_POLICY):
        self.source = source
        self.grants = grants  # the operator's policy (`--policy`), checked by every render
        self.cache_dir = Path(cache_dir)
        self._keep = keep
        self._loaded: dict[str, Repository] = {}
        self._invalid: dict[str, tuple[InvalidRepository, float]] = {}  # and when to retry
        self._loading: dict[str, threading.Lock] = {}  # one per commit being loaded
        self._lock = threading.Lock()  # guards the dicts only; never held while loading

    def tree(self, commit: str) -> Path:
        target = self.cache_dir / "trees" / commit
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
                repo = load_repository(self.tree(commit), self.grants)
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

    def _raise_if_invalid(self, commit: str) -> None:
        known = self._invalid.get(commit)
        if known is not None:
            if time.monotonic() < known[1]:
                raise known[0]
            del self._invalid[commit]


def _trim(cache: dict[str, Any], keep: int) -> None:
    while len(cache) > keep:
        cache.pop(next(iter(cache)))


def content_digest(root: Path, app: str) -> str:
    """sha256 over everything that shapes an app's releases: its folder and the regions."""
    digest = hashlib.sha256()
    for folder in (root / "apps" / app, root / "regions"):
        for path in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update((path.readlink().as_posix().encode() if path.is_symlink() else path.read_bytes()) + b"\0")
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

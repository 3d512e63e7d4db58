"""Pinned commits materialized once, loaded once: what rendering and intake read from.

A release renders from its own commit, never from a moving branch head (DESIGN §5), so every
read goes through `repository(commit)`.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

from config.grants import DEFAULT_POLICY, Policy
from config.loader import load_repository
from config.repository import Repository
from rollout.gitsync import GitSource


class Workspace:
    def __init__(self, source: GitSource, cache_dir: Path, keep: int = 16, grants: Policy = DEFAULT_POLICY):
        self.source = source
        self.grants = grants  # the operator's policy (`--policy`), checked by every render
        self.cache_dir = Path(cache_dir)
        self._keep = keep
        self._loaded: dict[str, Repository] = {}
        self._lock = threading.Lock()

    def tree(self, commit: str) -> Path:
        target = self.cache_dir / "trees" / commit
        if not target.exists():
            staging = self.cache_dir / "trees" / f".{commit}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            self.source.checkout(commit, staging)
            staging.rename(target)  # atomic: a crash never leaves a half tree under the real name
        return target

    def repository(self, commit: str) -> Repository:
        """The loaded repository at `commit` (raises config.errors.InvalidRepository)."""
        with self._lock:
            if commit not in self._loaded:
                self._loaded[commit] = load_repository(self.tree(commit), self.grants)
                while len(self._loaded) > self._keep:
                    self._loaded.pop(next(iter(self._loaded)))
            return self._loaded[commit]


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

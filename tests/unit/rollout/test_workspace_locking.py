"""Loading a new commit never holds what reconciles of loaded commits need, and a pathological
commit becomes issues and one Event, not a stalled sync."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from config import sandbox
from config.errors import InvalidRepository
from config.repository import Repository
from rollout import workspace as workspace_module
from rollout.gitsync import SyncResult
from rollout.sync import GitSync
from rollout.workspace import Workspace
from tests.conftest import EXAMPLE

GOOD, SLOW, BOMB = "a" * 40, "b" * 40, "c" * 40


class Trees:
    """A GitSource that checks out prepared folders."""

    def __init__(self, trees: dict[str, Path]):
        self.trees = trees
        self.commit = GOOD

    def checkout(self, commit: str, dest: Path) -> Path:
        shutil.copytree(self.trees[commit], dest, symlinks=True)
        return dest

    def sync(self) -> SyncResult:
        return SyncResult("main", self.commit, None, False, frozenset(), datetime.now(UTC))


@pytest.fixture
def trees(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for commit in (GOOD, SLOW, BOMB):
        root = tmp_path / "src" / commit
        shutil.copytree(EXAMPLE / "regions", root / "regions")
        shutil.copytree(EXAMPLE / "apps" / "search", root / "apps" / "search")
        out[commit] = root
    (out[BOMB] / "apps/search/manifests/loop.yaml").write_text(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    )
    return out


def test_a_slow_load_does_not_block_commits_already_loaded(
    trees: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace(Trees(trees), tmp_path / "cache")  # type: ignore[arg-type]
    good = ws.repository(GOOD)
    entered, release = threading.Event(), threading.Event()
    real = workspace_module.load_repository

    def load(root: Path, *args: Any) -> Repository:
        if root.name == SLOW:
            entered.set()
            assert release.wait(30)
        return real(root, *args)

    monkeypatch.setattr(workspace_module, "load_repository", load)
    slow = threading.Thread(target=ws.repository, args=(SLOW,), daemon=True)
    slow.start()
    assert entered.wait(30)
    done = threading.Event()
    got: list[Repository] = []
    reader = threading.Thread(target=lambda: (got.append(ws.repository(GOOD)), done.set()), daemon=True)
    reader.start()
    try:
        assert done.wait(5), "a reconcile of a loaded commit waited for another commit's load"
        assert got == [good]
    finally:
        release.set()
        slow.join(30)


def test_a_bomb_commit_is_rejected_once_and_remembered(
    trees: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace(Trees(trees), tmp_path / "cache")  # type: ignore[arg-type]
    loads: list[Path] = []
    real = workspace_module.load_repository
    monkeypatch.setattr(workspace_module, "load_repository", lambda root, *a: loads.append(root) or real(root, *a))
    with sandbox.limits(cpu_seconds=1, wall_seconds=20):
        with pytest.raises(InvalidRepository) as first:
            ws.repository(BOMB)
        with pytest.raises(InvalidRepository) as second:
            ws.repository(BOMB)
    assert second.value is first.value and len(loads) == 1
    assert "apps/search/manifests/loop.yaml: render exceeded 1 s of CPU time" in first.value.summary()


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    def record(self, kind: str, name: str, reason: str, message: str, warning: bool, now: datetime) -> None:
        self.recorded.append((reason, message))


class Store:
    namespace = "rollout-system"

    def list(self) -> list[Any]:
        return []


def _sync(trees: dict[str, Path], tmp_path: Path, ws: Workspace) -> tuple[GitSync, Trees, Events, list[dict]]:
    source = Trees(trees)
    sync = GitSync(source, ws, Store(), client.ApiClient(), "shop", lambda: True)  # type: ignore[arg-type]
    events, statuses = Events(), []
    sync._events = events  # type: ignore[assignment]
    sync._set_status = lambda fields: statuses.append(fields)  # type: ignore[method-assign]
    return sync, source, events, statuses


def test_a_bomb_commit_is_an_invalid_commit_with_one_event(trees: dict[str, Path], tmp_path: Path) -> None:
    ws = Workspace(Trees(trees), tmp_path / "cache")  # type: ignore[arg-type]
    sync, source, events, statuses = _sync(trees, tmp_path, ws)
    source.commit = BOMB
    with sandbox.limits(cpu_seconds=1, wall_seconds=20):
        sync.run_once()
        sync.last_status = statuses[-1]
        sync.run_once()
    assert [reason for reason, _ in events.recorded] == ["InvalidCommit"]
    assert statuses[-1]["valid"] is False
    assert statuses[-1]["issues"][0]["problem"] == "render exceeded 1 s of CPU time"


def test_a_commit_that_cannot_be_validated_is_reported_once_and_retried(
    trees: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace(Trees(trees), tmp_path / "cache")  # type: ignore[arg-type]
    sync, source, events, statuses = _sync(trees, tmp_path, ws)
    calls: list[str] = []

    def broken(commit: str) -> Repository:
        calls.append(commit)
        raise sandbox.SandboxUnavailable("the render helper stopped before answering")

    monkeypatch.setattr(ws, "repository", broken)
    sync.run_once()
    sync.run_once()
    assert len(calls) == 2  # retried on every poll: not known invalid
    assert [reason for reason, _ in events.recorded] == ["ValidationFailed"]
    assert "could not be validated yet; nothing applied: the render helper stopped" in statuses[-1]["message"]

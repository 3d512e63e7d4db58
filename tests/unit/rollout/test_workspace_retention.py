"""Which checked-out trees the workspace keeps: what live releases need, the few most recent, and
anything being loaded or used right now; the rest is removed and materialized again on demand."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from config.repository import Repository
from rollout import workspace as workspace_module
from rollout.release import ReleasePhase, ReleaseSpec, ReleaseStatus
from rollout.store import StoredRelease
from rollout.workspace import Workspace, needed_commits, trees_to_remove
from tests.conftest import EXAMPLE

COMMITS = [f"{i:x}" * 40 for i in range(1, 7)]  # "111...", "222...", ...


def release(
    name: str, app: str, commit: str, phase: ReleasePhase, created: str, previous: str | None = None
) -> StoredRelease:
    status = ReleaseStatus.from_dict({"phase": phase.value})
    status.previous_commit = previous
    spec = ReleaseSpec(app=app, commit=commit, version="1.0.0", plan_digest="p", content_digest="c", waves=())
    return StoredRelease(name, "1", spec, status, created)


def test_trees_to_remove_keeps_needed_busy_recent_and_in_use() -> None:
    on_disk = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0, "f": 100.0}
    # f and e are the 2 most recently used; a is needed, b busy (being loaded)
    assert trees_to_remove(on_disk, needed={"a"}, busy={"b"}, keep_recent=2, used_before=50.0) == {"c", "d"}
    # f was used after the cut-off (a render may still read it): kept even beyond the recent ones
    assert trees_to_remove(on_disk, needed={"a"}, busy={"b"}, keep_recent=0, used_before=50.0) == {"c", "d", "e"}
    assert trees_to_remove(on_disk, needed=set(), busy=set(), keep_recent=0, used_before=50.0) == {
        "a",
        "b",
        "c",
        "d",
        "e",
    }
    assert trees_to_remove(on_disk, needed=set(on_disk), busy=set(), keep_recent=0, used_before=1e9) == set()
    assert trees_to_remove({}, needed={"a"}, busy=set(), keep_recent=3, used_before=1e9) == set()


def test_needed_commits_are_live_releases_their_rollback_targets_the_newest_good_and_last_good() -> None:
    c1, c2, c3, c4, c5, c6 = COMMITS
    releases = [
        release("shop-1", "shop", c1, ReleasePhase.SUCCEEDED, "2026-01-01T00:00:00Z"),
        release("shop-2", "shop", c2, ReleasePhase.SUCCEEDED, "2026-01-02T00:00:00Z"),  # what runs
        release("shop-3", "shop", c3, ReleasePhase.PROGRESSING, "2026-01-03T00:00:00Z", previous=c2),
        release("cart-1", "cart", c4, ReleasePhase.ROLLED_BACK, "2026-01-01T00:00:00Z"),
        release("cart-2", "cart", c5, ReleasePhase.SUPERSEDED, "2026-01-02T00:00:00Z"),
        release("cart-3", "cart", c1, ReleasePhase.ROLLING_BACK, "2026-01-03T00:00:00Z", previous=c6),
    ]
    assert needed_commits(releases, last_good=c5) == {c2, c3, c1, c6, c5}
    assert needed_commits([], last_good=None) == set()


class Trees:
    """A GitSource that checks out the example repository (same content at every commit)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.checkouts: list[str] = []

    def checkout(self, commit: str, dest: Path) -> Path:
        self.checkouts.append(commit)
        shutil.copytree(self.root, dest, symlinks=True)
        return dest


@pytest.fixture
def source(tmp_path: Path) -> Trees:
    root = tmp_path / "src"
    shutil.copytree(EXAMPLE / "regions", root / "regions")
    shutil.copytree(EXAMPLE / "apps" / "search", root / "apps" / "search")
    return Trees(root)


def on_disk(ws: Workspace) -> set[str]:
    return {p.name for p in ws.trees_dir.iterdir()}


def test_retain_removes_trees_and_loaded_repositories_then_materializes_again_on_demand(
    source: Trees, tmp_path: Path
) -> None:
    ws = Workspace(source, tmp_path / "cache", keep_recent_trees=1, in_use_grace=0.0)  # type: ignore[arg-type]
    for commit in COMMITS:
        ws.tree(commit)
    first = ws.repository(COMMITS[0])
    assert on_disk(ws) == set(COMMITS)

    removed = ws.retain({COMMITS[0], COMMITS[1]})
    # needed: 1 and 2; the most recently used of the others: 6 (trees made last)
    assert set(removed) == set(COMMITS[2:5])
    assert on_disk(ws) == {COMMITS[0], COMMITS[1], COMMITS[5]}
    assert ws.repository(COMMITS[0]) is first, "a needed commit stays loaded"

    ws.retain(set())
    assert on_disk(ws) == {COMMITS[0]}, "the most recently used one is kept"
    again = ws.repository(COMMITS[1])  # removed before: checked out and loaded afresh
    assert isinstance(again, Repository) and (ws.trees_dir / COMMITS[1]).is_dir()
    assert source.checkouts.count(COMMITS[1]) == 2


def test_a_tree_used_within_the_grace_period_is_kept(source: Trees, tmp_path: Path) -> None:
    ws = Workspace(source, tmp_path / "cache", keep_recent_trees=0, in_use_grace=600.0)  # type: ignore[arg-type]
    ws.repository(COMMITS[0])  # handed out just now: a render may still be reading its files
    assert ws.retain(set()) == []
    assert on_disk(ws) == {COMMITS[0]}


def test_a_commit_being_loaded_is_never_removed(source: Trees, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(source, tmp_path / "cache", keep_recent_trees=0, in_use_grace=0.0)  # type: ignore[arg-type]
    ws.tree(COMMITS[1])  # an old tree nobody needs
    loading, release_load = threading.Event(), threading.Event()
    real_load = workspace_module.load_repository

    def slow_load(root: Path, grants: object, memo: object = None) -> Repository:
        loading.set()
        assert release_load.wait(30)
        return real_load(root, grants, memo)  # type: ignore[arg-type]

    monkeypatch.setattr(workspace_module, "load_repository", slow_load)
    loader = threading.Thread(target=ws.repository, args=(COMMITS[0],))
    loader.start()
    try:
        assert loading.wait(30)
        assert ws.retain(set()) == [COMMITS[1]], "only the idle tree goes; the one being loaded stays"
        assert (ws.trees_dir / COMMITS[0]).is_dir()
    finally:
        release_load.set()
        loader.join(30)
    assert not [p for p in ws.trees_dir.iterdir() if ".removing-" in p.name]


def test_the_controller_collects_trees_once_a_minute_with_what_live_releases_need() -> None:
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from rollout.controller import TREE_COLLECT_INTERVAL, Controller

    calls: list[set[str]] = []
    ctl = object.__new__(Controller)  # only what _collect_trees reads
    ctl._next_tree_collect = datetime.min.replace(tzinfo=UTC)
    ctl.sync = SimpleNamespace(last_status={"lastGoodCommit": COMMITS[5]})  # type: ignore[assignment]
    ctl.workspace = SimpleNamespace(retain=lambda needed: calls.append(set(needed)))  # type: ignore[assignment]
    running = release("shop-2", "shop", COMMITS[1], ReleasePhase.PROGRESSING, "2026-01-02T00:00:00Z", COMMITS[0])
    done = release("shop-1", "shop", COMMITS[0], ReleasePhase.ROLLED_BACK, "2026-01-01T00:00:00Z")
    now = datetime(2026, 1, 2, tzinfo=UTC)
    ctl._collect_trees({"shop": [done, running]}, now)
    ctl._collect_trees({"shop": [done, running]}, now + timedelta(seconds=5))  # not every pass
    assert calls == [{COMMITS[1], COMMITS[0], COMMITS[5]}]
    ctl._collect_trees({"shop": [done]}, now + TREE_COLLECT_INTERVAL)
    assert calls[-1] == {COMMITS[5]}, "once the release is finished only the last good commit is needed"

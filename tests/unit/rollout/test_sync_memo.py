"""The Git intake computes every app's candidate (digests of its files and all region files, wave
plans) once per commit: a poll of an unchanged commit recomputes nothing (rollout/sync.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from rollout import sync as sync_module
from rollout.gitsync import SyncResult
from rollout.release import ReleaseSpec, ReleaseStatus
from rollout.store import StoredRelease
from rollout.sync import GitSync, detection_history

A, B = "a" * 40, "b" * 40


class Source:
    def __init__(self) -> None:
        self.commit = A
        self.authors: list[str] = []

    def sync(self) -> SyncResult:
        return SyncResult("main", self.commit, None, False, frozenset(), datetime.now(UTC))

    def author(self, commit: str) -> str:
        self.authors.append(commit)
        return "Ann <ann@example.com>"


class Workspace:
    def repository(self, commit: str) -> Any:
        return object()  # only passed on to candidates_at


class Store:
    namespace = "rollout-system"

    def __init__(self) -> None:
        self.releases: list[StoredRelease] = []

    def list(self) -> list[StoredRelease]:
        return list(self.releases)


def stored(name: str, detect: float | None = None) -> StoredRelease:
    spec = ReleaseSpec(app="search", commit=A, version="1.0.0", plan_digest="p", content_digest="d", waves=())
    return StoredRelease(name, "1", spec, ReleaseStatus(phase="Succeeded", detect_seconds=detect), "")


def test_candidates_are_computed_once_per_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def counting(repo: Any, commit: str, history: Any, author: str = "") -> dict[str, Any]:
        calls.append((commit, author))
        return {}

    monkeypatch.setattr(sync_module, "candidates_at", counting)
    source, store = Source(), Store()
    store.releases = [stored("search-1")]
    git = GitSync(source, Workspace(), store, client.ApiClient(), "shop", lambda: True)  # type: ignore[arg-type]
    git._set_status = lambda fields: None  # type: ignore[method-assign]
    for _ in range(5):  # five polls of the same commit
        git.run_once()
    assert calls == [(A, "Ann <ann@example.com>")] and source.authors == [A]
    source.commit = B  # a new commit: computed again, its author read once
    git.run_once()
    git.run_once()
    assert [c for c, _ in calls] == [A, B] and source.authors == [A, B]
    store.releases.append(stored("search-2", detect=42.0))  # a detection time sizes smoke windows
    git.run_once()
    git.run_once()
    assert [c for c, _ in calls] == [A, B, B]


def test_the_detection_history_names_only_apps_with_detection_times() -> None:
    assert detection_history({"search": [stored("s-1"), stored("s-2", 3.0)], "cart": [stored("c-1")]}) == (
        ("search", (3.0,)),
    )

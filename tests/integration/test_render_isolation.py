"""A template bomb pushed to the lab's Git server: the controller's sync path rejects the commit
within the render limits (one InvalidCommit Event naming the file and the limit) while another
app's release at the last good commit keeps rendering without waiting.

Real: the smart-HTTP Git server, the mirror, the workspace, the sync, the fork-server sandbox.
Recorded instead of sent: the RolloutSource status write, the Events and the Release store (this
test has no home cluster; the e2e suite covers the whole controller)."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from config import sandbox
from config.identity import ReleaseIdentity
from config.render import render
from rollout.gitsync import GitMirror
from rollout.sync import GitSync
from rollout.workspace import Workspace
from tests.conftest import EXAMPLE
from tests.fixtures.git import GitServerFactory

pytestmark = pytest.mark.integration

LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n"


class Store:
    namespace = "rollout-system"

    def __init__(self) -> None:
        self.created: list[Any] = []

    def list(self) -> list[Any]:
        return []

    def create(self, spec: Any) -> None:
        self.created.append(spec)


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    def record(self, kind: str, name: str, reason: str, message: str, warning: bool, now: datetime) -> None:
        self.recorded.append((reason, message))


def test_a_bomb_commit_is_rejected_while_the_running_release_keeps_rendering(
    git_server_factory: GitServerFactory, tmp_path: Path
) -> None:
    seed = tmp_path / "seed"
    shutil.copytree(EXAMPLE / "regions", seed / "regions")
    for app in ("checkout", "search"):  # Jinja apps: no Helm or Kustomize binaries needed
        shutil.copytree(EXAMPLE / "apps" / app, seed / "apps" / app)
    server = git_server_factory(seed=seed)
    mirror = GitMirror(server.url, tmp_path / "cache" / "git", allow_insecure=True)  # the lab's http server
    workspace = Workspace(mirror, tmp_path / "cache")
    store, events, statuses = Store(), Events(), []
    sync = GitSync(mirror, workspace, store, client.ApiClient(), "shop", lambda: True)  # type: ignore[arg-type]
    sync._events = events  # type: ignore[assignment]
    sync._set_status = statuses.append  # type: ignore[method-assign]

    sync.run_once()
    good = server.head()
    assert {spec.app for spec in store.created} == {"checkout", "search"} and statuses[-1]["valid"]
    running = ReleaseIdentity(good, workspace.repository(good).apps["checkout"].values.version)

    bomb = server.commit_files({"apps/search/manifests/zz-loop.yaml": LOOPS}, "search: a template that never ends")
    latencies: list[float] = []
    with sandbox.limits(cpu_seconds=3, wall_seconds=30):
        syncing = threading.Thread(target=sync.run_once, daemon=True)
        started = time.monotonic()
        syncing.start()
        while syncing.is_alive():  # what a reconcile of checkout's release does, while the sync renders the bomb
            begin = time.monotonic()
            rendered = render(workspace.repository(good), "checkout", "eu-west", running)
            latencies.append(time.monotonic() - begin)
            assert rendered.objects
        syncing.join()
    took = time.monotonic() - started

    assert len(latencies) >= 3, latencies
    assert max(latencies) < 2.5, f"a render of the running release waited: {latencies}"
    assert took < 30
    assert statuses[-1]["commit"] == bomb and statuses[-1]["valid"] is False
    assert [reason for reason, _ in events.recorded] == ["InvalidCommit"]
    message = events.recorded[0][1]
    assert f"commit {bomb[:12]} rejected; nothing applied." in message
    assert "apps/search/manifests/zz-loop.yaml: render exceeded 3 s of CPU time" in message
    assert len(store.created) == 2  # nothing created for the bomb

    sync.last_status = statuses[-1]
    sync.run_once()  # the next poll: the same commit, no second Event, no second render
    assert [reason for reason, _ in events.recorded] == ["InvalidCommit"]

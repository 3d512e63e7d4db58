"""A force-push reaches the RolloutSource: one Warning Event and `status.lastRewrite`, and nothing
else follows from it (no Release created, none deleted, none moved).

Real: the smart-HTTP Git server and its force-push, the mirror's ancestry check, the workspace, the
sync and its status write path (`_set_status`, merge and skip logic). Recorded instead of sent: the
Events, the Release store and the status PATCH (this test has no home cluster; the CRD check below
makes sure the apiserver would keep the field instead of pruning it).
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from rollout.gitsync import GitMirror
from rollout.release import ReleasePhase, ReleaseSpec, ReleaseStatus
from rollout.store import StoredRelease
from rollout.sync import GitSync
from rollout.workspace import Workspace
from tests.conftest import EXAMPLE
from tests.fixtures.git import GitServerFactory

pytestmark = pytest.mark.integration

CRD = Path(__file__).resolve().parents[2] / "deploy" / "crds" / "rolloutsources.rollout.dev.yaml"


class Store:
    namespace = "rollout-system"

    def __init__(self) -> None:
        self.releases: list[StoredRelease] = []

    def list(self) -> list[StoredRelease]:
        return list(self.releases)

    def create(self, spec: ReleaseSpec) -> None:  # each release is taken as done at once: none is superseded
        status = ReleaseStatus(phase=ReleasePhase.SUCCEEDED.value)
        self.releases.append(StoredRelease(spec.name, "1", spec, status, ""))


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, bool]] = []

    def record(self, kind: str, name: str, reason: str, message: str, warning: bool, now: datetime) -> None:
        assert (kind, name) == ("RolloutSource", "shop")
        self.recorded.append((reason, message, warning))


class StatusApi:
    """Records the status PATCHes GitSync sends for its RolloutSource."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def patch_namespaced_custom_object_status(self, *args: Any) -> None:
        assert args[3:5] == ("rolloutsources", "shop")
        self.patches.append(args[5]["status"])


def test_a_force_push_is_a_warning_event_and_a_status_field_and_changes_no_release(
    git_server_factory: GitServerFactory, tmp_path: Path
) -> None:
    seed = tmp_path / "seed"
    shutil.copytree(EXAMPLE / "regions", seed / "regions")
    shutil.copytree(EXAMPLE / "apps" / "checkout", seed / "apps" / "checkout")  # Jinja: no Helm or Kustomize
    server = git_server_factory(seed=seed)
    mirror = GitMirror(server.url, tmp_path / "cache" / "git", allow_insecure=True)  # the lab's http server
    store, events, api = Store(), Events(), StatusApi()
    sync = GitSync(mirror, Workspace(mirror, tmp_path / "cache"), store, client.ApiClient(), "shop", lambda: True)  # type: ignore[arg-type]
    sync._events = events  # type: ignore[assignment]
    sync._api = api  # type: ignore[assignment]

    sync.run_once()
    first = server.head()
    released = server.bump_app_version("checkout", "9.9.9")
    sync.run_once()
    assert [r.spec.commit for r in store.releases] == [first, released]
    assert events.recorded == [] and "lastRewrite" not in api.patches[-1]  # fast-forwards are not reported

    rewritten = server.force_push(base="HEAD~1")  # the released commit leaves the branch
    assert rewritten == first == server.head()
    before = [(r.name, r.spec.commit, r.status.phase) for r in store.releases]
    sync.run_once()

    assert [(reason, warning) for reason, _, warning in events.recorded] == [("HistoryRewritten", True)]
    message = events.recorded[0][1]
    assert f"was force-pushed: {released[:12]} is no longer an ancestor of {first[:12]}" in message
    assert "Nothing was deleted or rolled back" in message
    status = api.patches[-1]
    assert status["commit"] == first and status["valid"] is True
    assert {k: v for k, v in status["lastRewrite"].items() if k != "at"} == {
        "ref": mirror.ref,
        "previous": released,
        "commit": first,
    }
    assert [(r.name, r.spec.commit, r.status.phase) for r in store.releases] == before, "a release changed"

    # The next polls: no second Event; the field stays in every later status write.
    follow_up = server.commit_files({"README.md": "after the rewrite\n"}, "docs only")
    sync.run_once()
    assert [reason for reason, _, _ in events.recorded] == ["HistoryRewritten"]
    assert api.patches[-1]["commit"] == follow_up and api.patches[-1]["lastRewrite"] == status["lastRewrite"]


def test_the_rolloutsource_crd_keeps_the_rewrite_fields() -> None:
    """A structural schema prunes unknown status fields: the ones the sync writes must be declared."""
    crd = yaml.safe_load(CRD.read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status["lastRewrite"]["properties"]) == {"ref", "previous", "commit", "at"}

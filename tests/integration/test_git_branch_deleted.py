"""The tracked branch deleted on the remote after the controller synced it: the next sync is a
permanent RevisionNotFound naming the ref, and the last good commit keeps serving (a release in
flight can still read its pinned commit). Real: the lab's Git server and the mirror."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rollout.gitsync import GitMirror, RevisionNotFound
from tests.fixtures.git import GitServerFactory

pytestmark = pytest.mark.integration


def test_a_deleted_branch_is_a_permanent_error_and_the_last_good_commit_keeps_serving(
    git_server_factory: GitServerFactory, tmp_path: Path
) -> None:
    server = git_server_factory()
    head = server.head()
    subprocess.run(["git", "branch", "release/7", head], cwd=server.bare_path, check=True, capture_output=True)
    mirror = GitMirror(server.url, tmp_path / "cache", ref="release/7", allow_insecure=True)  # the lab's http server
    assert mirror.sync().commit == head

    subprocess.run(["git", "branch", "-D", "release/7"], cwd=server.bare_path, check=True, capture_output=True)
    with pytest.raises(RevisionNotFound, match="release/7") as gone:
        mirror.sync()
    assert not gone.value.temporary
    assert mirror.last_good == head
    assert b"eu-canary" in mirror.read(head, "regions/eu-canary.yaml")  # the pinned commit is still readable

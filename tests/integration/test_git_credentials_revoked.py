"""The Git token revoked while the controller runs: the lab's Git server restarts with another
token. The next sync is refused as an authentication failure (permanent: the configuration must
change, retrying will not help), the last good commit keeps serving, the RolloutSource status says
so without the token, and no Release is created or touched.

Real: the smart-HTTP Git server and its token check, the mirror, the workspace and the sync.
Recorded instead of sent: the Events, the Release store and the status PATCH (see
test_source_rewrite.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kubernetes import client

from rollout.gitsync import AuthenticationFailed, Credentials, GitMirror, Secret
from rollout.sync import GitSync
from rollout.workspace import Workspace
from tests.conftest import EXAMPLE
from tests.fixtures.git import GitServerFactory
from tests.integration.test_source_rewrite import Events, StatusApi, Store

pytestmark = pytest.mark.integration

TOKEN, NEW_TOKEN = "lab-t0ken-before-revocation", "lab-t0ken-after-revocation"


def test_a_revoked_token_is_a_permanent_refusal_and_the_last_good_commit_keeps_serving(
    git_server_factory: GitServerFactory, tmp_path: Path
) -> None:
    seed = tmp_path / "seed"
    shutil.copytree(EXAMPLE / "regions", seed / "regions")
    shutil.copytree(EXAMPLE / "apps" / "checkout", seed / "apps" / "checkout")
    server = git_server_factory(seed=seed, token=TOKEN)
    mirror = GitMirror(
        server.url,
        tmp_path / "cache" / "git",
        credentials=Credentials(token=Secret(TOKEN)),
        allow_insecure=True,  # the lab's http server
    )
    store, events, api = Store(), Events(), StatusApi()
    sync = GitSync(mirror, Workspace(mirror, tmp_path / "cache"), store, client.ApiClient(), "shop", lambda: True)  # type: ignore[arg-type]
    sync._events = events  # type: ignore[assignment]
    sync._api = api  # type: ignore[assignment]

    sync.run_once()
    good = server.head()
    assert api.patches[-1]["commit"] == good and api.patches[-1]["valid"] is True
    releases = [(r.name, r.spec.commit) for r in store.releases]
    assert releases

    server.stop()  # the token is revoked: the server now wants another one
    server.token = NEW_TOKEN
    server.start()
    with pytest.raises(AuthenticationFailed) as refused:
        mirror.sync()
    assert not refused.value.temporary and "refused authentication" in str(refused.value)

    sync.run_once()
    status = api.patches[-1]
    assert "refused authentication" in status["message"] and "Check the token" in status["message"]
    assert status["lastGoodCommit"] == good and status["commit"] == good  # the last good commit keeps serving
    assert mirror.last_good == good and mirror.resolve("HEAD") == good
    assert [(r.name, r.spec.commit) for r in store.releases] == releases  # nothing created, nothing touched
    assert TOKEN not in repr(api.patches) and NEW_TOKEN not in repr(api.patches)

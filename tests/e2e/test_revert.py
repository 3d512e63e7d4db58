"""Git write-back after a rollback, end to end (issue 17 "done when"): a bad release with
`rollback.revertCommit` is caught, rolled back and quarantined; the controller then leaves a revert
commit on the lab's Git server whose app folder equals the previous release's, and syncing that
commit creates no new release (the regions already run that content)."""

from __future__ import annotations

import subprocess

import pytest

from deploy.lab.simulator.model import FaultProfile
from rollout.revert import TRAILER
from tests.e2e.conftest import APP, Shop, holds, wait_for

pytestmark = pytest.mark.e2e
# What is under test is the write-back, not a strategy: short windows keep the run short.
PLAN_OVERRIDES = {
    "strategy": {"rolling": {"maxSurge": "50%", "maxUnavailable": 0, "progressDeadline": "60s"}},
    "smokeWindow": "4s",
    "rollback": {"drainFirst": True, "drainTarget": {"percent": 99, "within": "15s"}, "revertCommit": True},
}


def git(shop: Shop, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=shop.git.bare_path, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def test_a_rolled_back_release_is_reverted_in_git_and_the_revert_makes_no_release(shop: Shop) -> None:
    shop.start_controller()
    good = shop.wait_release("1.4.0", {"Succeeded"}, timeout_s=300)
    shop.simulator.set_fault(APP, "1.6.0", FaultProfile(error_ratio=0.3))
    try:
        shop.git.bump_app_version(APP, "1.6.0")
        bad = shop.wait_release("1.6.0", {"RolledBack", "Succeeded"}, timeout_s=300)
        assert bad["status"]["phase"] == "RolledBack" and bad["status"]["quarantined"] is True
        assert bad["status"]["previousCommit"] == good["spec"]["commit"]

        def pushed() -> dict[str, str] | None:
            revert = ((shop.release("1.6.0") or {}).get("status") or {}).get("revert") or {}
            return revert if revert.get("state") not in (None, "Pending") else None

        revert = wait_for(pushed, 60, "the revert to be pushed", lambda: repr(shop.release("1.6.0")))
    finally:
        shop.simulator.clear_fault(APP, "1.6.0")
    assert revert["state"] == "Pushed" and revert["branch"] == shop.git.branch, revert
    head = shop.git.head()
    assert revert["commit"] == head
    assert git(shop, "rev-parse", f"{head}:apps/{APP}") == git(
        shop, "rev-parse", f"{good['spec']['commit']}:apps/{APP}"
    )
    assert git(shop, "rev-parse", f"{head}^") == bad["spec"]["commit"]
    message = git(shop, "log", "-1", "--format=%B", head)
    assert f"failed in region {bad['status']['failedRegion']}" in message
    assert message.splitlines()[-1] == f"{TRAILER}: {bad['metadata']['name']}"

    # the controller syncs its own revert and sees the release the regions already run
    shop.push_webhook()
    wait_for(lambda: shop.synced_commit() == head, 30, "the controller to sync the revert commit")
    names = [r["metadata"]["name"] for r in shop.releases()]
    holds(lambda: [r["metadata"]["name"] for r in shop.releases()] == names, 6, "no release from the revert")
    assert [r["spec"]["version"] for r in shop.releases()] == ["1.4.0", "1.6.0"]
    assert shop.release("1.6.0")["status"]["revert"]["commit"] == head  # type: ignore[index]

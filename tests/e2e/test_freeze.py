"""A run-time freeze in the lab (issue 17 item 1, "done when"): a release in flight is frozen through
the CLI (`rollout freeze checkout --reason ... --until 10m`, as a responder) while its first region's
smoke window runs. That region finishes its window (the release stops at the region boundary, never
mid-step), no later region ever gets the new version, read from the region clusters, and the status
says which freeze holds it and until when. A rollback requested through the CLI during the freeze
goes through: the region that had the new version runs the old one again. The freeze is lifted
(`rollout unfreeze`) whatever happens."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from deploy.lab.gitserver import set_app_version
from rollout.cli import main
from tests.e2e.conftest import APP, RESPONDER, Shop, holds, wait_for

pytestmark = pytest.mark.e2e
# The freeze is under test, not a strategy: a quick rolling update, 2 s smoke windows for the first
# release; the frozen release's first window is longer (below) so that the freeze lands inside it.
PLAN_OVERRIDES = {
    "strategy": {"rolling": {"maxSurge": "50%", "maxUnavailable": 0, "progressDeadline": "60s"}},
    "smokeWindow": "2s",
    "rollback": {"drainFirst": False, "quarantine": True, "revertCommit": False},
}
FIRST_WINDOW = "12s"


def cli(shop: Shop, *args: str) -> Any:
    return CliRunner().invoke(main, [*args, *shop.cli_kube(RESPONDER)], terminal_width=200)


def region_phase(shop: Shop, version: str, region: str) -> str:
    status = (shop.release(version) or {}).get("status") or {}
    return str(((status.get("regions") or {}).get(region) or {}).get("phase", ""))


def release_with_a_longer_first_window(shop: Shop, version: str) -> str:
    """One commit: the new version, and the first wave's smoke window long enough to freeze in."""
    head = shop.git.head()
    plan = yaml.safe_load(shop.git_show(head, f"apps/{APP}/rollout.yaml"))
    plan["waves"][0]["smokeWindow"] = FIRST_WINDOW
    values = shop.git_show(head, f"apps/{APP}/values.yaml").decode()
    return shop.git.commit_files(
        {
            f"apps/{APP}/rollout.yaml": yaml.safe_dump(plan, sort_keys=False),
            f"apps/{APP}/values.yaml": set_app_version(values, version),
        },
        f"{APP}: release {version}",
    )


def test_a_freeze_stops_a_release_at_the_region_boundary_and_lets_a_rollback_through(shop: Shop) -> None:
    shop.start_controller()
    shop.wait_release("1.4.0", {"Succeeded"}, timeout_s=180)
    # a version no other module gives a fault: the simulator's faults are per version and outlive
    # a module (test_promotion and test_revert make 1.6.0 answer 30 % errors)
    release_with_a_longer_first_window(shop, "4.1.0")
    spec = wait_for(lambda: (shop.release("4.1.0") or {}).get("spec"), 30, "the 4.1.0 release")
    first, *later = [region for wave in spec["waves"] for region in wave["regions"]]
    assert later, "the test needs a second region (ROLLOUT_LAB_REGIONS)"
    wait_for(
        lambda: region_phase(shop, "4.1.0", first) == "Smoke",
        90,
        f"{first}'s smoke window for 4.1.0",
        lambda: repr((shop.release("4.1.0") or {}).get("status")),
    )
    frozen_at = time.monotonic()
    try:
        freeze = cli(shop, "freeze", APP, "--reason", "e2e: incident in payments", "--until", "10m")
        assert freeze.exit_code == 0 and "Done" in freeze.output, freeze.output
        assert region_phase(shop, "4.1.0", first) == "Smoke", "the freeze must land inside the first window"

        # the region in flight finishes its window; the release stops there, and says why and until when
        def held() -> dict[str, Any] | None:
            status = (shop.release("4.1.0") or {}).get("status") or {}
            done = (status.get("regions") or {}).get(first, {}).get("phase") == "Succeeded"
            return status if done and status.get("frozen") else None

        status = wait_for(held, 40, f"4.1.0 held after {first}", lambda: repr(shop.release("4.1.0")))
        assert status["phase"] == "Progressing"
        assert "e2e: incident in payments" in status["frozen"], status["frozen"]
        assert re.search(r"no new region starts until \d{4}-\d\d-\d\dT", status["frozen"]), status["frozen"]
        assert "4.1.0" in shop.deployed(first).values()
        holds(
            lambda: (
                all("4.1.0" not in shop.deployed(r).values() for r in later)
                and all(region_phase(shop, "4.1.0", r) == "Pending" for r in later)
            ),
            6,
            f"no region after {first} gets 4.1.0 while frozen",
        )
        print(f"held at the boundary {time.monotonic() - frozen_at:.1f}s after the freeze")

        # a rollback is never frozen
        rollback = cli(shop, "rollback", APP, "--reason", "e2e: back out during the freeze")
        assert rollback.exit_code == 0, rollback.output
        back = shop.wait_release("4.1.0", {"RolledBack"}, timeout_s=90)
        assert back["status"].get("frozen", "") == ""
        wait_for(lambda: set(shop.deployed(first).values()) == {"1.4.0"}, 60, f"{first} to run 1.4.0 again")
        for region in later:
            assert set(shop.deployed(region).values()) == {"1.4.0"}, region
        actions = [a["action"] for a in back["status"]["audit"]]
        assert "frozen" in actions and "rollback" in actions, actions
    finally:
        unfreeze = cli(shop, "unfreeze", APP, "--reason", "e2e: incident over")
        assert unfreeze.exit_code == 0, unfreeze.output

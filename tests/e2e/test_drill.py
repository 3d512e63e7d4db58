"""`rollout drill` in the lab: drain and rollback rehearsed for real in eu-west, measured, passed.

Runs on its own environment (module-scoped `shop`): checkout's first release, a second one, then
the drill through the CLI as a responder would type it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from click.testing import CliRunner

from regions.traffic import DNSEndpointTraffic
from rollout.cli import main
from tests.e2e.conftest import APP, NAMESPACE, RESPONDER, Shop

pytestmark = pytest.mark.e2e
REGION = "eu-west"
# The drill is under test, not the plan's strategy: a quick rolling update and short smoke windows
# bring checkout to its two releases in a fraction of the example canary's time.
PLAN_OVERRIDES = {
    "strategy": {"rolling": {"maxSurge": "50%", "maxUnavailable": 0, "progressDeadline": "60s"}},
    "smokeWindow": "3s",
}


def _drill(shop: Shop, region: str, *extra: str) -> Any:
    args = [
        "drill",
        APP,
        "--region",
        region,
        "--reason",
        "e2e: quarterly drill",
        *shop.cli_kube(RESPONDER),
        "--timeout",
        "300",
        *extra,
    ]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _drills(shop: Shop) -> list[dict[str, Any]]:
    listed: Any = shop.custom.list_namespaced_custom_object("rollout.dev", "v1alpha1", NAMESPACE, "releaseactions")
    items: list[dict[str, Any]] = listed["items"]
    return sorted(
        (a for a in items if a["spec"]["action"] == "drill"), key=lambda a: a["metadata"]["creationTimestamp"]
    )


def test_drill_in_a_low_traffic_region_passes_with_measured_times(shop: Shop) -> None:
    shop.start_controller()
    shop.wait_release("1.4.0", {"Succeeded"}, timeout_s=400)
    shop.git.bump_app_version(APP, "1.5.0")
    current = shop.wait_release("1.5.0", {"Succeeded"}, timeout_s=400)

    result = _drill(shop, REGION)

    print(result.output)
    assert result.exit_code == 0, result.output
    assert "acts for real" in result.output
    assert f"drill {APP} {REGION}: PASS" in result.output
    for step in ("drain", "rollback", "roll forward", "restore"):
        assert re.search(rf"{step}: pass \(\d+\.\ds\)", result.output), (step, result.output)
    drill = _drills(shop)[-1]
    status = drill["status"]
    assert status["state"] == "Done"
    assert drill["spec"]["requestedBy"] == RESPONDER
    assert [i["step"] for i in status["checklist"]] == ["drain", "rollback", "roll forward", "restore"]
    assert all(i["passed"] and i["seconds"] >= 0 for i in status["checklist"]), status["checklist"]
    drain, rollback = status["checklist"][0], status["checklist"][1]
    assert drain["seconds"] <= 15 and "moved" in drain["observed"]  # the lab plan: 99% within 15s
    assert "1.4.0" in rollback["observed"], rollback
    # afterwards eu-west runs the current release again and takes its full share of traffic
    assert set(shop.deployed(REGION).values()) == {"1.5.0"}
    assert DNSEndpointTraffic(shop.home, sorted(shop.lab.region_contexts), NAMESPACE).weights(APP)[REGION] == 100
    # the drill acted on the region only: the release's own record is untouched
    assert shop.release("1.5.0")["status"]["phase"] == "Succeeded"  # type: ignore[index]
    assert current["metadata"]["name"] == shop.release("1.5.0")["metadata"]["name"]  # type: ignore[index]


def test_a_high_traffic_region_is_refused_without_force_and_an_unknown_region_always(shop: Shop) -> None:
    if not shop.controllers:
        shop.start_controller()
    before = shop.deployed("us-east")
    high = _drill(shop, "us-east")
    assert high.exit_code == 1, high.output
    assert "high-traffic region" in high.output and "--force" in high.output
    unknown = _drill(shop, "mars-1")
    assert unknown.exit_code == 1, unknown.output
    assert "'mars-1' is not a region of" in unknown.output  # refused by the action check or the drill's own
    assert shop.deployed("us-east") == before  # refused before anything changed

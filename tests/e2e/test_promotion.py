"""Region-by-region promotion with automated rollback, drain and quarantine, end to end.

Scenarios run in order on one environment (see conftest.py); each leaves checkout on a healthy
release. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from deploy.lab.simulator.model import FaultProfile
from tests.e2e.conftest import APP, NAMESPACE, Shop, wait_for

pytestmark = pytest.mark.e2e


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def audit(release: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [a for a in release["status"].get("audit", []) if a["action"] == action]


def assert_promoted_in_wave_order(release: dict[str, Any]) -> None:
    """Every region started only after every region of the previous wave passed its smoke window."""
    waves = release["spec"]["waves"]
    starts = {a["region"]: _t(a["time"]) for a in audit(release, "region-start")}
    passed = {a["region"]: _t(a["time"]) for a in audit(release, "region-passed")}
    smoke = {a["region"]: _t(a["time"]) for a in audit(release, "smoke-start")}
    assert set(starts) == {r for w in waves for r in w["regions"]}, "every region started exactly once"
    assert len(audit(release, "region-start")) == len(starts), "no region started twice"
    for earlier, later in zip(waves, waves[1:], strict=False):
        gate = max(passed[r] for r in earlier["regions"])
        early = [r for r in later["regions"] if starts[r] < gate]
        assert not early, f"{later['name']} started before {earlier['name']} passed"
    for wave in waves:
        for region in wave["regions"]:
            baked = (passed[region] - smoke[region]).total_seconds()
            assert baked >= wave["smokeSeconds"] - 1, f"{region} baked {baked:.1f}s < {wave['smokeSeconds']}s"


def test_first_release_then_a_good_release_are_promoted_through_every_region_in_wave_order(shop: Shop) -> None:
    shop.start_controller()
    first = shop.wait_release("1.4.0", {"Succeeded"}, timeout_s=400)
    assert_promoted_in_wave_order(first)
    shop.git.bump_app_version(APP, "1.5.0")
    good = shop.wait_release("1.5.0", {"Succeeded"}, timeout_s=400)
    assert_promoted_in_wave_order(good)
    assert good["status"]["previousVersion"] == "1.4.0"
    for region in shop.lab.region_contexts:
        assert set(shop.deployed(region).values()) == {"1.5.0"}, region


def test_a_bad_release_is_caught_in_the_canary_region_drained_rolled_back_and_quarantined(shop: Shop) -> None:
    shop.simulator.set_fault(APP, "1.6.0", FaultProfile(error_ratio=0.3))
    shop.git.bump_app_version(APP, "1.6.0")
    bad = shop.wait_release("1.6.0", {"RolledBack", "Succeeded"}, timeout_s=300)
    status = bad["status"]
    assert status["phase"] == "RolledBack" and status["quarantined"] is True
    assert status["failedRegion"] == "eu-canary"
    later = [r for w in bad["spec"]["waves"][1:] for r in w["regions"]]
    assert all(status["regions"][r]["phase"] == "Pending" for r in later), "later waves untouched"
    for region in later:
        assert set(shop.deployed(region).values()) == {"1.5.0"}, region
    assert set(shop.deployed("eu-canary").values()) == {"1.5.0"}
    drain = status["drains"][0]
    assert drain["region"] == "eu-canary" and drain["met"] is True and drain["restoredAt"]
    weights = shop.custom.get_namespaced_custom_object("externaldns.k8s.io", "v1alpha1", NAMESPACE,
                                                       "dnsendpoints", APP)
    record = next(e for e in weights["spec"]["endpoints"] if e["setIdentifier"] == "eu-canary")
    assert record["providerSpecific"][0]["value"] == "100", "traffic restored once the rollback was healthy"


def test_a_quarantined_release_is_not_reapplied_after_a_resync(shop: Shop) -> None:
    releases_before = len(shop.releases())
    commit = shop.git.commit_files({"README.md": "docs only\n"}, "docs: a change that does not touch checkout")
    assert shop.push_webhook() == 202
    wait_for(lambda: shop.source()["status"].get("commit") == commit, 60, "the controller to sync the new commit")
    assert len(shop.releases()) == releases_before
    for region in shop.lab.region_contexts:
        assert set(shop.deployed(region).values()) == {"1.5.0"}, region


def test_an_unsigned_webhook_is_refused(shop: Shop) -> None:
    import requests

    proc = shop.controllers[0]
    response = requests.post(f"http://127.0.0.1:{proc.http_port}/webhook/git", data=b"{}",
                             headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}, timeout=5)
    assert response.status_code == 401


def test_an_invalid_plan_creates_no_release_and_surfaces_its_errors(shop: Shop) -> None:
    releases_before = len(shop.releases())
    values = f"apps/{APP}/values.yaml"
    bad = shop.git.commit_files({values: "version: 1.7.0\nimage: {repository: shop/checkout, tag: latest}\n"},
                                "a release with a moving tag")
    shop.push_webhook()
    source = wait_for(lambda: (s := shop.source()).get("status", {}).get("commit") == bad and s, 60,
                      "the invalid commit to be synced")
    status = source["status"]
    assert status["valid"] is False
    assert any(i["file"] == values and i["field"] == "image" and "latest" in i["problem"] for i in status["issues"])
    events = shop.lab.api_client(shop.lab.home_context)
    from kubernetes import client

    found = client.CoreV1Api(events).list_namespaced_event(NAMESPACE).items
    assert any(e.reason == "InvalidCommit" and "latest" in e.message for e in found)
    assert len(shop.releases()) == releases_before
    fixed = shop.git.commit_files({values: "version: 1.5.0\nimage: {repository: shop/checkout, tag: \"1.5.0\"}\n"
                                   "params: {port: 8080, cpu: 100m, memory: 128Mi}\n"
                                   "regionOverrides: {us-east: {replicas: 6}}\n"}, "back to 1.5.0")
    shop.push_webhook()
    wait_for(lambda: shop.source()["status"].get("commit") == fixed and shop.source()["status"].get("valid"), 60,
             "the fix to be synced")


def test_a_late_failure_in_a_low_traffic_region_rolls_it_back_and_the_canary_region_too(shop: Shop) -> None:
    shop.git.bump_app_version(APP, "1.7.1")
    canary_passed = wait_for(
        lambda: (r := shop.release("1.7.1")) and (r.get("status") or {}).get("currentWave", 0) >= 1 and r, 300,
        "the canary region to pass")
    assert canary_passed["status"]["regions"]["eu-canary"]["phase"] == "Succeeded"
    shop.simulator.set_fault(APP, "1.7.1", FaultProfile(error_ratio=0.3))  # onset after the canary region passed
    bad = shop.wait_release("1.7.1", {"RolledBack", "Succeeded"}, timeout_s=300)
    status = bad["status"]
    assert status["phase"] == "RolledBack"
    low = bad["spec"]["waves"][1]["regions"]
    assert status["failedRegion"] in low
    assert status["drains"][0]["region"] == status["failedRegion"]
    assert status["regions"]["eu-canary"]["phase"] == "RolledBack"
    rollback_order = [a["region"] for a in audit(bad, "region-rolled-back")]
    assert rollback_order[0] == status["failedRegion"] and rollback_order[-1] == "eu-canary"
    for region in shop.lab.region_contexts:
        assert set(shop.deployed(region).values()) == {"1.5.0"}, region


def test_the_responder_cli_shows_status_and_history_and_its_actions_are_carried_out(shop: Shop) -> None:
    import json

    from click.testing import CliRunner

    from rollout.cli import main

    kube = ["--kubeconfig", str(shop.lab.kubeconfig), "--context", shop.lab.home_context]
    status = CliRunner().invoke(main, ["status", APP, "-o", "json", *kube])
    assert status.exit_code == 0, status.output
    latest = json.loads(status.output)[0]
    assert latest["version"] == "1.7.1" and latest["status"]["phase"] == "RolledBack"
    text = CliRunner().invoke(main, ["status", APP, *kube], terminal_width=200)
    assert "eu-canary" in text.output and "RolledBack" in text.output

    shop.git.bump_app_version(APP, "1.8.0")
    wait_for(lambda: shop.release("1.8.0"), 60, "release 1.8.0 to be created")
    paused = CliRunner().invoke(main, ["pause", APP, "--reason", "e2e: hold the release", *kube])
    assert paused.exit_code == 0 and "Done" in paused.output, paused.output
    shop.wait_release("1.8.0", {"Paused"}, timeout_s=60)
    resumed = CliRunner().invoke(main, ["resume", APP, "--reason", "e2e: carry on", *kube])
    assert resumed.exit_code == 0, resumed.output
    shop.wait_release("1.8.0", {"Succeeded"}, timeout_s=400)

    history = CliRunner().invoke(main, ["history", APP, "-o", "json", *kube])
    assert history.exit_code == 0, history.output
    data = json.loads(history.output)
    outcomes = {r["version"]: r["outcome"] for r in data["releases"]}
    assert outcomes["1.6.0"] == "RolledBack" and outcomes["1.5.0"] == "Succeeded" and outcomes["1.8.0"] == "Succeeded"
    people = next(r["people"] for r in data["releases"] if r["version"] == "1.8.0")
    assert "pause (e2e: hold the release)" in people and "resume (e2e: carry on)" in people
    assert {a["action"] for a in data["actions"]} >= {"pause", "resume"}
    unknown = CliRunner().invoke(main, ["history", "nope", *kube])
    assert unknown.exit_code != 0 and "unknown app 'nope'" in unknown.output

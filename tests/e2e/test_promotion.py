"""Region-by-region promotion with automated rollback, drain and quarantine, end to end.

Scenarios run in order on one environment (see conftest.py); each leaves checkout on a healthy
release. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client

from config.times import parse_time
from deploy.lab.gitserver import set_app_version
from deploy.lab.simulator.model import FaultProfile
from rollout.cli import main
from tests.e2e.conftest import (
    APP,
    NAMESPACE,
    RESPONDER,
    VIEWER,
    RegionWatcher,
    Shop,
    holds,
    raw_post_status,
    sign,
    wait_for,
)

pytestmark = pytest.mark.e2e
# The example's canary strategy as it is (steps, pauses, analysis); smoke windows of 4 s instead of
# the lab's 8 s: every wave still bakes, and the module's six releases take about 80 s less.
PLAN_OVERRIDES = {"smokeWindow": "4s"}


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


def assert_regions_show_wave_order(watch: RegionWatcher, release: dict[str, Any]) -> None:
    """The same wave order as seen from outside the controller: each region's Deployments (when the
    release's version first ran there, when it alone ran there), sampled every fraction of a second."""
    version = release["spec"]["version"]
    waves = release["spec"]["waves"]
    tolerance = 2 * watch.gap_s + 1.0
    for wave in waves:
        for region in wave["regions"]:
            assert watch.started(region, version) and watch.finished(region, version), (region, version)
    for earlier, later in zip(waves, waves[1:], strict=False):
        done = max(watch.finished(r, version) or 0.0 for r in earlier["regions"])
        begun = min(watch.started(r, version) or 0.0 for r in later["regions"])
        print(
            f"{version}: {later['name']} began {begun - done:.1f}s after {earlier['name']} was done "
            f"(smoke window {earlier['smokeSeconds']:.0f}s, sampling gap {watch.gap_s:.1f}s)"
        )
        assert begun - done >= earlier["smokeSeconds"] - tolerance, (
            f"{later['name']} began {begun - done:.1f}s after {earlier['name']} ran {version} everywhere; "
            f"its smoke window is {earlier['smokeSeconds']}s"
        )


def test_first_release_then_a_good_release_are_promoted_through_every_region_in_wave_order(shop: Shop) -> None:
    shop.start_controller()
    first = shop.wait_release("1.4.0", {"Succeeded"}, timeout_s=400)
    assert_promoted_in_wave_order(first)
    with RegionWatcher(shop) as watch:
        shop.git.bump_app_version(APP, "1.5.0")
        good = shop.wait_release("1.5.0", {"Succeeded"}, timeout_s=400)
    assert_promoted_in_wave_order(good)
    assert_regions_show_wave_order(watch, good)
    assert good["status"]["previousVersion"] == "1.4.0"
    for region in shop.lab.region_contexts:
        assert set(shop.deployed(region).values()) == {"1.5.0"}, region


def test_a_bad_release_is_caught_in_the_canary_region_drained_rolled_back_and_quarantined(shop: Shop) -> None:
    shop.simulator.set_fault(APP, "1.6.0", FaultProfile(error_ratio=0.3))
    with RegionWatcher(shop) as watch:
        shop.git.bump_app_version(APP, "1.6.0")
        bad = shop.wait_release("1.6.0", {"RolledBack", "Succeeded"}, timeout_s=300)
        # the restore is the last step; wait until the weights object shows it (not only the record)
        wait_for(
            lambda: watch.samples and watch.samples[-1].weights["eu-canary"] == 100,
            60,
            "eu-canary's weight back to 100 in the DNSEndpoint",
        )
    status = bad["status"]
    assert status["phase"] == "RolledBack" and status["quarantined"] is True
    assert status["failedRegion"] == "eu-canary"
    later = [r for w in bad["spec"]["waves"][1:] for r in w["regions"]]
    assert all(status["regions"][r]["phase"] == "Pending" for r in later), "later waves untouched"
    for region in later:
        assert set(shop.deployed(region).values()) == {"1.5.0"}, region
        assert watch.started(region, "1.6.0") is None, f"{region} ran 1.6.0 at some point"
    assert set(shop.deployed("eu-canary").values()) == {"1.5.0"}
    assert watch.started("eu-canary", "1.6.0"), "the canary region never ran 1.6.0"
    drain = status["drains"][0]
    assert drain["region"] == "eu-canary" and drain["met"] is True and drain["restoredAt"]
    weights = shop.custom.get_namespaced_custom_object("externaldns.k8s.io", "v1alpha1", NAMESPACE, "dnsendpoints", APP)
    record = next(e for e in weights["spec"]["endpoints"] if e["setIdentifier"] == "eu-canary")
    assert record["providerSpecific"][0]["value"] == "100", "traffic restored once the rollback was healthy"
    # what the weights object showed while it happened, and what Prometheus saw the simulator serve
    drained = watch.weight_below("eu-canary", 100)
    assert drained, f"eu-canary's weight never dropped in the DNSEndpoint (sampled every {watch.gap_s:.1f}s)"
    lowest = min(s.weights["eu-canary"] for s in watch.samples)
    assert lowest <= 1, f"eu-canary drained only to weight {lowest}"
    rate = f'sum(rate(http_requests_total{{app="{APP}",region="eu-canary"}}[WINDOW]))'
    began = watch.started("eu-canary", "1.6.0") or drained[0]
    before = shop.prometheus_at(rate.replace("WINDOW", "10s"), began)
    span = max(3, round(drained[-1] - drained[0]))
    during = shop.prometheus_at(f"min_over_time({rate.replace('WINDOW', '3s')}[{span}s:1s])", drained[-1])
    print(
        f"eu-canary drained for {drained[-1] - drained[0]:.1f}s (lowest weight {lowest}); request rate "
        f"{before} rps before, lowest {during} rps while drained"
    )
    assert before and before > 1, f"no traffic measured in eu-canary before the drain ({before})"
    assert during is not None and during <= 0.1 * before, (
        f"eu-canary still served {during} rps while drained (before: {before} rps)"
    )


def test_the_exact_content_of_a_quarantined_release_never_becomes_a_release_again(shop: Shop) -> None:
    quarantined = shop.release("1.6.0")
    assert quarantined and quarantined["status"]["quarantined"] is True
    bad_files = shop.app_files(quarantined["spec"]["commit"])
    # a different, good release ships after the rollback, so the quarantined one is no longer the latest
    shop.git.bump_app_version(APP, "1.6.1")
    good = shop.wait_release("1.6.1", {"Succeeded"}, timeout_s=400)
    good_files = shop.app_files(good["spec"]["commit"])
    assert good_files != bad_files
    names = [r["metadata"]["name"] for r in shop.releases()]
    regions = {r: shop.region_deployments(r) for r in shop.lab.region_contexts}
    assert all({d["version"] for d in deps.values() if d["replicas"]} == {"1.6.1"} for deps in regions.values())
    skipped = len(shop.log_lines("quarantined content not re-applied"))

    again = shop.git.commit_files(bad_files, "checkout: 1.6.0 again, byte for byte")
    assert shop.push_webhook() == 202
    wait_for(lambda: shop.synced_commit() == again, 60, "the controller to sync the quarantined content")
    assert shop.source()["status"]["valid"] is True
    assert [r["metadata"]["name"] for r in shop.releases()] == names, "a release was created"
    assert len(shop.log_lines("quarantined content not re-applied")) > skipped, "the quarantine branch never ran"
    holds(
        lambda: {r: shop.region_deployments(r) for r in shop.lab.region_contexts} == regions,
        6,
        "every region's Deployments as they were (version, replicas, generation, image)",
    )

    # and back to 1.6.1's exact bytes: already the app's latest release, so nothing is created either
    back = shop.git.commit_files(good_files, "checkout: back to 1.6.1")
    assert shop.push_webhook() == 202
    wait_for(lambda: shop.synced_commit() == back, 60, "the controller to sync 1.6.1's content")
    assert [r["metadata"]["name"] for r in shop.releases()] == names
    assert {r: shop.region_deployments(r) for r in shop.lab.region_contexts} == regions


def test_with_polling_off_a_push_arrives_through_a_signed_webhook_alone_and_bad_ones_are_refused(shop: Shop) -> None:
    shop.stop_controllers()
    started_at = time.time()
    proc = shop.start_controller(identity="controller-webhook-only", poll_seconds=3600)
    coordination = client.CoordinationV1Api(shop.home)
    wait_for(
        lambda: (
            coordination.read_namespaced_lease("rollout-controller", NAMESPACE).spec.holder_identity == proc.identity
        ),
        60,
        "the webhook-only controller to lead",
    )
    wait_for(
        lambda: (
            (seen := parse_time((shop.source().get("status") or {}).get("lastSyncAt"))) is not None
            and seen.timestamp() >= started_at
        ),
        60,
        "its start-up sync (the only poll it makes)",
    )
    names = [r["metadata"]["name"] for r in shop.releases()]
    body = b'{"ref": "refs/heads/main"}'
    commit = shop.git.commit_files({"README.md": "found through the webhook\n"}, "docs: webhook e2e")
    refused = {
        "no signature header": shop.post_webhook(body, {}),
        "wrong secret": shop.post_webhook(body, {"X-Hub-Signature-256": sign(body, "not-the-secret")}),
        "another body's signature": shop.post_webhook(body, {"X-Hub-Signature-256": sign(b"{}")}),
        "6 MiB announced": raw_post_status(
            proc.http_port, {"Content-Length": str(6 * 1024 * 1024), "X-Hub-Signature-256": sign(body)}
        ),
    }
    print(f"refused webhooks: {refused}")
    assert all(400 <= code < 500 for code in refused.values()), refused
    assert refused["no signature header"] in (401, 403) and refused["wrong secret"] in (401, 403), refused
    assert refused["6 MiB announced"] == 413, refused
    holds(lambda: shop.synced_commit() != commit, 10, "no sync without a valid webhook (5x the usual 2s poll)")

    sent = time.monotonic()
    assert shop.push_webhook(body) == 202
    wait_for(lambda: shop.synced_commit() == commit, 10, "the signed webhook to sync the push")
    print(f"signed webhook to synced commit: {time.monotonic() - sent:.1f}s")
    assert [r["metadata"]["name"] for r in shop.releases()] == names
    shop.stop_controllers()
    shop.start_controller()  # the rest of the module relies on polling again


def test_a_broken_rollout_yaml_creates_nothing_says_why_and_its_exact_fix_creates_nothing(shop: Shop) -> None:
    plan_path, values_path = f"apps/{APP}/rollout.yaml", f"apps/{APP}/values.yaml"
    head = shop.git.head()
    plan_bytes, values_bytes = shop.git_show(head, plan_path), shop.git_show(head, values_path)
    names = [r["metadata"]["name"] for r in shop.releases()]
    regions = {r: shop.region_deployments(r) for r in shop.lab.region_contexts}
    plan = yaml.safe_load(plan_bytes)
    plan["waves"][1]["smokeWindow"] = "soon"
    values = set_app_version(values_bytes.decode(), "1.7.0")  # a new version would otherwise make a release
    bad = shop.git.commit_files(
        {plan_path: yaml.safe_dump(plan, sort_keys=False), values_path: values},
        "checkout 1.7.0 with a smoke window that is not a duration",
    )
    shop.push_webhook()
    source = wait_for(
        lambda: (s := shop.source()).get("status", {}).get("commit") == bad and s, 60, "the invalid commit to be synced"
    )
    status = source["status"]
    assert status["valid"] is False
    assert any(
        i["file"] == plan_path and "smokeWindow" in i["field"] and "soon" in i["problem"] for i in status["issues"]
    ), status["issues"]
    found = client.CoreV1Api(shop.home).list_namespaced_event(NAMESPACE).items
    assert any(e.reason == "InvalidCommit" and bad[:12] in e.message and plan_path in e.message for e in found)
    assert [r["metadata"]["name"] for r in shop.releases()] == names
    assert shop.release("1.7.0") is None
    assert {r: shop.region_deployments(r) for r in shop.lab.region_contexts} == regions

    fixed = shop.git.commit_files({plan_path: plan_bytes, values_path: values_bytes}, "back to the exact bytes")
    shop.push_webhook()
    wait_for(lambda: shop.synced_commit() == fixed and shop.source()["status"].get("valid"), 60, "the fix to be synced")
    assert shop.app_files(fixed) == shop.app_files(head)
    assert [r["metadata"]["name"] for r in shop.releases()] == names, "the fix created a release"
    assert {r: shop.region_deployments(r) for r in shop.lab.region_contexts} == regions


def test_a_late_failure_in_a_low_traffic_region_rolls_it_back_and_the_canary_region_too(shop: Shop) -> None:
    shop.git.bump_app_version(APP, "1.7.1")
    canary_passed = wait_for(
        lambda: (r := shop.release("1.7.1")) and (r.get("status") or {}).get("currentWave", 0) >= 1 and r,
        300,
        "the canary region to pass",
    )
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
        assert set(shop.deployed(region).values()) == {"1.6.1"}, region


MUTATING = (
    ("pause", APP),
    ("resume", APP),
    ("promote", APP),
    ("rollback", APP),
    ("abort", APP),
    ("drain", "eu-west"),
    ("restore", "eu-west"),
    ("drill", APP, "--region", "eu-west"),
)


def test_every_responder_command_runs_through_the_cli_as_a_responder_and_a_viewer_is_refused_each_change(
    shop: Shop,
) -> None:
    """The CLI as people use it: their own kubeconfig (a client certificate bound to rollout-responder
    or rollout-viewer), never the lab admin; the controller acts with its ServiceAccount tokens and the
    admission policy checks every action's requester."""

    def cli(*args: str, person: str = RESPONDER) -> Any:
        return CliRunner().invoke(main, [*args, *shop.cli_kube(person)], terminal_width=200)

    status = cli("status", APP, "-o", "json")
    assert status.exit_code == 0, status.output
    latest = json.loads(status.output)[0]
    assert latest["version"] == "1.7.1" and latest["status"]["phase"] == "RolledBack"
    text = cli("status", APP)
    assert "eu-canary" in text.output and "RolledBack" in text.output
    viewed = cli("history", APP, person=VIEWER)
    assert viewed.exit_code == 0 and "1.7.1" in viewed.output, viewed.output

    def actions() -> list[str]:
        listed = shop.custom.list_namespaced_custom_object("rollout.dev", "v1alpha1", NAMESPACE, "releaseactions")
        return sorted(a["metadata"]["name"] for a in listed["items"])

    before = actions()
    for args in MUTATING:
        refused = cli(*args, "--reason", "e2e: a viewer tries", person=VIEWER)
        assert refused.exit_code == 1, (args, refused.output)
        assert (
            f"permission denied: {VIEWER} may not create releaseactions.rollout.dev in namespace {NAMESPACE}"
            in refused.output
        ), (args, refused.output)
        assert "rollout-responder" in refused.output and "Traceback" not in refused.output
    assert actions() == before, "a refused request left an action behind"

    # pause, resume, promote on a release in flight
    shop.git.bump_app_version(APP, "1.8.0")
    wait_for(lambda: shop.release("1.8.0"), 60, "release 1.8.0 to be created")
    paused = cli("pause", APP, "--reason", "e2e: hold the release")
    assert paused.exit_code == 0 and "Done" in paused.output, paused.output
    shop.wait_release("1.8.0", {"Paused"}, timeout_s=60)
    resumed = cli("resume", APP, "--reason", "e2e: carry on")
    assert resumed.exit_code == 0, resumed.output
    promoted = cli("promote", APP, "--full", "--reason", "e2e: skip the smoke windows")
    assert promoted.exit_code == 0 and "Done" in promoted.output, promoted.output
    done = shop.wait_release("1.8.0", {"Succeeded"}, timeout_s=400)
    by = {(a["action"], a.get("by")) for a in done["status"]["audit"]}
    assert {("pause", RESPONDER), ("resume", RESPONDER), ("promote", RESPONDER)} <= by, by
    for region in shop.lab.region_contexts:
        assert set(shop.deployed(region).values()) == {"1.8.0"}, region

    # drain and restore a region: the weights object the simulator routes by shows both
    drained = cli("drain", "eu-west", "--reason", "e2e: maintenance")
    assert drained.exit_code == 0 and "Done" in drained.output, drained.output
    wait_for(lambda: shop.weights()["eu-west"] == 0, 30, "eu-west drained in the DNSEndpoint")
    restored = cli("restore", "eu-west", "--reason", "e2e: maintenance over")
    assert restored.exit_code == 0 and "Done" in restored.output, restored.output
    wait_for(lambda: shop.weights()["eu-west"] == 100, 30, "eu-west restored in the DNSEndpoint")

    # roll back the release that succeeded: every region returns to the one before it
    rolled = cli("rollback", APP, "--reason", "e2e: roll back by hand")
    assert rolled.exit_code == 0, rolled.output
    back = shop.wait_release("1.8.0", {"RolledBack"}, timeout_s=300)["status"]["previousVersion"]
    assert back == "1.6.1"
    wait_for(
        lambda: all(set(shop.deployed(r).values()) == {back} for r in shop.lab.region_contexts),
        120,
        f"every region back on {back}",
    )

    # abort a release in flight: it goes no further and the regions it reached return
    shop.git.bump_app_version(APP, "1.9.0")
    wait_for(
        lambda: (r := shop.release("1.9.0")) and (r.get("status") or {}).get("phase") == "Progressing",
        120,
        "release 1.9.0 to start",
    )
    aborted = cli("abort", APP, "--reason", "e2e: abort in flight")
    assert aborted.exit_code == 0, aborted.output
    stopped = shop.wait_release("1.9.0", {"RolledBack"}, timeout_s=300)
    assert stopped["status"]["previousVersion"] == back
    wait_for(
        lambda: all(set(shop.deployed(r).values()) == {back} for r in shop.lab.region_contexts),
        120,
        f"every region back on {back}",
    )
    assert all(w == 100 for w in shop.weights().values()), shop.weights()

    history = cli("history", APP, "-o", "json")
    assert history.exit_code == 0, history.output
    data = json.loads(history.output)
    outcomes = {r["version"]: r["outcome"] for r in data["releases"]}
    assert outcomes["1.6.0"] == "RolledBack" and outcomes["1.6.1"] == "Succeeded"
    assert outcomes["1.8.0"] == "RolledBack" and outcomes["1.9.0"] == "RolledBack"
    people = next(r["people"] for r in data["releases"] if r["version"] == "1.8.0")
    assert f"{RESPONDER}: pause (e2e: hold the release)" in people and "resume (e2e: carry on)" in people
    requested = {(a["action"], a["by"]) for a in data["actions"]}
    assert {
        (a, RESPONDER) for a in ("pause", "resume", "promote", "drain", "restore", "rollback", "abort")
    } <= requested, requested
    unknown = cli("history", "nope")
    assert unknown.exit_code != 0 and "unknown app 'nope'" in unknown.output


def test_a_force_push_dropping_a_released_commit_deletes_nothing_reapplies_nothing_and_is_reported(shop: Shop) -> None:
    latest = shop.releases()[-1]
    assert shop.git.head() == latest["spec"]["commit"]
    before = {r["metadata"]["name"]: (r["status"]["phase"], r["spec"]["commit"]) for r in shop.releases()}
    regions = {r: shop.region_deployments(r) for r in shop.lab.region_contexts}
    rewritten = shop.git.force_push(base=f"{latest['spec']['commit']}~1")  # the released commit leaves the branch
    assert shop.git.head() == rewritten != latest["spec"]["commit"]
    shop.push_webhook()
    wait_for(lambda: shop.synced_commit() == rewritten, 60, "the rewritten branch to be synced")
    reported = [line for line in shop.log_lines("git.history_rewritten") if rewritten in line]
    assert reported, "the controller did not report the rewritten history"
    # ... where a responder looks: the RolloutSource's status and a Warning Event on it
    assert (shop.source()["status"].get("lastRewrite") or {}).get("commit") == rewritten, shop.source()["status"]
    events = client.CoreV1Api(shop.home).list_namespaced_event(NAMESPACE).items
    warned = [e for e in events if e.reason == "HistoryRewritten" and e.type == "Warning"]
    assert any(rewritten[:12] in e.message for e in warned), [(e.reason, e.message) for e in events]
    holds(
        lambda: {r["metadata"]["name"]: (r["status"]["phase"], r["spec"]["commit"]) for r in shop.releases()} == before,
        10,
        "every release as it was (none deleted, none created, none moved)",
    )
    assert {r: shop.region_deployments(r) for r in shop.lab.region_contexts} == regions, "something was applied"

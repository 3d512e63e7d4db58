"""rollout ui's server logic without sockets: pages from the shared copy, buttons only for people
who may act, and what a POST must carry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollout.store import ACTIONS, RELEASES
from rollout.ui.live import Hub
from rollout.ui.server import UI, is_loopback

from .test_model import FROZEN, action, release

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class FakeBackend:
    namespace = "rollout-system"
    api_client: Any = None

    def __init__(self, refuse: str = "") -> None:
        self.refuse = refuse
        self.submitted: list[tuple[str, str | None, str, str | None]] = []

    def whoami(self) -> str:
        return "rick"

    def submit(self, action: str, app: str | None, reason: str, *, region: str | None = None) -> dict[str, Any]:
        if self.refuse:
            raise RuntimeError(self.refuse)
        self.submitted.append((action, app, reason, region))
        return {"metadata": {"name": f"{action}-x1"}}


def make(may_act: bool, refuse: str = "") -> tuple[UI, FakeBackend, Hub]:
    hub = Hub()
    hub.replace(RELEASES, [release("checkout", "bbb", "t", "Failed", message="error-rate 0.3 > 0.05")])
    hub.replace(ACTIONS, [action("pause-x1", "pause", "t", "Done", app="checkout")])
    backend = FakeBackend(refuse)
    return UI(backend, hub, now=lambda: NOW, access=lambda: may_act), backend, hub


def test_pages_render_from_the_shared_copy() -> None:
    ui, _, _ = make(True)
    fleet = ui.render("/", {}, live_only=False)
    assert fleet is not None and "checkout" in fleet and "error-rate 0.3 &gt; 0.05" in fleet and ui.token in fleet
    assert ui.render("/release/checkout-bbb", {}, live_only=True) is not None
    assert "History of checkout" in (ui.render("/app/checkout", {}, live_only=True) or "")
    assert "Region us-east" in (ui.render("/region/us-east", {}, live_only=True) or "")
    assert ui.render("/release/nope", {}, live_only=True) is None
    assert ui.render("/etc/passwd", {}, live_only=True) is None


def test_buttons_only_for_someone_who_may_create_actions() -> None:
    responder, _, _ = make(True)
    viewer, _, _ = make(False)
    assert 'id="act-pause"' in (responder.render("/release/checkout-bbb", {}, live_only=False) or "")
    assert 'id="act-drain"' in (responder.render("/region/us-east", {}, live_only=False) or "")
    assert "act-" not in (viewer.render("/release/checkout-bbb", {}, live_only=False) or "")
    assert "act-" not in (responder.render("/", {}, live_only=False) or "")  # the fleet acts on nothing


def test_actions_are_checked_before_they_are_sent() -> None:
    ui, backend, _ = make(True)
    assert ui.act({"action": "pause", "app": "checkout", "reason": "  "})[0] == 400
    assert ui.act({"action": "pause", "app": "ghost", "reason": "r"})[0] == 404
    assert ui.act({"action": "drain", "app": "checkout", "region": "eu-west", "reason": "r"})[0] == 400
    assert ui.act({"action": "delete", "app": "checkout", "reason": "r"})[0] == 400
    assert backend.submitted == []
    status, answer = ui.act({"action": "pause", "app": "checkout", "reason": " slow "})
    assert status == 200 and answer["name"] == "pause-x1"
    assert ui.act({"action": "drain", "region": "eu-west", "reason": "maintenance"})[0] == 200
    assert backend.submitted == [("pause", "checkout", "slow", None), ("drain", None, "maintenance", "eu-west")]
    assert ui.action_state("pause-x1") == {"name": "pause-x1", "state": "Done", "message": "ok"}


def test_the_api_servers_refusal_is_passed_on_readable() -> None:
    ui, _, _ = make(True, refuse="permission denied: vera may not create releaseactions.rollout.dev")
    status, answer = ui.act({"action": "pause", "app": "checkout", "reason": "r"})
    assert status == 403 and answer["error"].startswith("permission denied: vera")


def test_hub_counts_changes_and_wakes_waiters() -> None:
    hub = Hub()
    start = hub.version
    hub.apply(RELEASES, "ADDED", release("a", "1", "t"))
    assert hub.wait(start, 0.01) == start + 1 and len(hub.releases()) == 1
    hub.apply(RELEASES, "DELETED", release("a", "1", "t"))
    assert hub.releases() == [] and not hub.synced
    hub.replace(RELEASES, [])
    hub.replace(ACTIONS, [])
    assert hub.synced


@pytest.mark.parametrize(
    ("address", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False)]
)
def test_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_rollout_ui_warns_before_listening_beyond_loopback(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from rollout.cli import main

    missing = str(tmp_path / "no-kubeconfig")
    result = CliRunner().invoke(main, ["ui", "--address", "0.0.0.0", "--kubeconfig", missing])
    assert "warning: listening on 0.0.0.0" in result.output
    assert result.exit_code != 0 and "cannot use kubeconfig" in result.output
    quiet = CliRunner().invoke(main, ["ui", "--kubeconfig", missing])
    assert "warning" not in quiet.output and "cannot use kubeconfig" in quiet.output


def test_pages_show_the_freeze_holding_a_release_and_the_one_formatter_rounds_values() -> None:
    measurement = {"check": "error-ratio", "at": "2026-01-01T11:00:00Z", "verdict": "failure", "value": 0.0123456789}
    rel = release(
        "checkout",
        "bbb",
        "t",
        currentWave=1,
        regions={"eu-canary": {"phase": "Succeeded", "analysis": {"smoke": {"measurements": [measurement]}}}},
        frozen=FROZEN,
        message=FROZEN,
        freezeOverride="",
    )
    ui, _, hub = make(False)
    hub.replace(RELEASES, [rel])
    page = ui.render("/release/checkout-bbb", {}, live_only=True) or ""
    assert 'id="release-frozen"' in page and "year-end trading peak; owner sre@example.com" in page
    assert "until 2026-01-04T08:00:00.000Z" in page and "waiting on a person: frozen" in page
    assert 'id="release-message"' not in page  # the message is the freeze text: said once
    assert "error-ratio=failure (value 1.23%)" in page and "0.0123456789" not in page
    fleet = ui.render("/", {}, live_only=True) or ""
    assert 'data-frozen="1"' in fleet and fleet.count('class="small frozen"') == 3  # the row and its two held regions
    assert "waiting on a person (1)" in fleet
    assert 'data-app="checkout"' in (ui.render("/", {"waiting": ["1"]}, live_only=True) or "")


def test_a_release_at_a_closed_approval_gate_says_so_once_and_waits_on_a_person() -> None:
    from rollout.approvals import Closed

    gate = Closed("main", 2, 1, "groups sre (not the commit's author)", refused="vera: not now")
    rel = release("checkout", "bbb", "t", "Pending", awaitingApproval=gate.marker(), message=gate.text())
    ui, _, hub = make(False)
    hub.replace(RELEASES, [rel])
    page = ui.render("/release/checkout-bbb", {}, live_only=True) or ""
    assert 'id="release-approval"' in page and "awaiting approval for wave main (1/2 from groups sre" in page
    assert "refused by vera: not now" in page and 'id="release-message"' not in page  # said once
    fleet = ui.render("/", {"waiting": ["1"]}, live_only=True) or ""
    assert 'data-app="checkout"' in fleet and "awaiting approval for wave main (1/2)" in fleet

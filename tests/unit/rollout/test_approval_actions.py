"""`rollout approve` / `rollout refuse` as ReleaseActions: their checks (rollout/actions.py), which
release they act on, the outcome written on the action, and the CLI commands (no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes.client.exceptions import ApiException

from config.loader import load_repository
from config.schema import Approval
from config.times import format_time
from rollout.actions import Checked, Rejected, approval_outcome, check, target
from rollout.cli import ops as cli_ops
from rollout.cli.ops import ACTION_COMMANDS, explain, frozen_lines
from rollout.orchestrator import Request
from rollout.release import ApprovalGate, ApprovalRecord, ReleaseStatus
from rollout.sync import approval_gate, candidates_at
from tests.conftest import EXAMPLE
from tests.unit.rollout.test_action_target import rel
from tests.unit.rollout.test_actions import KNOWN

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
APPROVE, REFUSE = (next(c for c in ACTION_COMMANDS if c.name == n) for n in ("approve", "refuse"))


def ra(**spec: Any) -> dict[str, Any]:
    spec.setdefault("reason", "checked the canary dashboards")
    spec.setdefault("requestedBy", "dana")
    return {"metadata": {"name": "approve-x", "creationTimestamp": "2026-11-29T07:00:00Z"}, "spec": spec}


def test_approve_is_checked_and_carries_the_wave_and_the_requesters_groups() -> None:
    ok = check(ra(action="approve", app="checkout", wave="low", requesterGroups=["release-managers"]), KNOWN)
    assert isinstance(ok, Checked) and ok.wave == "low" and ok.groups == ("release-managers",)
    assert ok.request() == Request(
        "approve", "checked the canary dashboards", "dana", wave="low", groups=("release-managers",)
    )
    no_wave = check(ra(action="refuse", app="checkout"), KNOWN)
    assert isinstance(no_wave, Rejected) and "spec.wave is required for refuse: name the wave (--wave NAME)" in (
        no_wave.reason
    )
    stray = check(ra(action="pause", app="checkout", wave="low"), KNOWN)
    assert isinstance(stray, Rejected) and "spec.wave is not allowed for pause" in stray.reason
    bad = check(ra(action="approve", app="checkout", wave="low", requesterGroups="admins"), KNOWN)
    assert isinstance(bad, Rejected) and "spec.requesterGroups must be a list" in bad.reason
    bad_wave = check(ra(action="approve", app="checkout", wave="Low Traffic"), KNOWN)
    assert isinstance(bad_wave, Rejected) and "spec.wave 'Low Traffic' is not a valid name" in bad_wave.reason


def test_approve_acts_on_the_live_release_or_the_pending_one_waiting_at_its_first_gate() -> None:
    ask = Checked("approve", "ok", "dana", "guestbook", wave="w")
    old, live, waiting = rel(1, "Succeeded"), rel(2, "Progressing"), rel(3, "Pending", "awaiting approval")
    assert target(ask, [old, live, waiting]).release == live.name
    assert target(ask, [old, waiting]).release == waiting.name
    refused = target(ask, [old])
    assert refused.release is None and "no release of 'guestbook' is in progress" in refused.note


def test_the_outcome_on_the_action_is_what_the_orchestrator_recorded() -> None:
    status = ReleaseStatus()
    at = format_time(NOW)
    status.approvals = [
        ApprovalRecord("low", "dana", at, counted=True, note="counted: 1/2 approvals for wave low"),
        ApprovalRecord("low", "rick", at, note="not counted: identity not allowed: rick (no groups) is not among"),
    ]
    action = ra(action="approve", app="checkout", wave="low", requestedBy="rick")
    assert approval_outcome(action, status, NOW).startswith("not counted: identity not allowed: rick")
    assert approval_outcome(ra(action="approve", wave="low"), status, NOW) == "counted: 1/2 approvals for wave low"
    assert approval_outcome(ra(action="pause", app="checkout"), status, NOW) == ""


class FakeOps:
    def __init__(self, message: str, state: str = "Done") -> None:
        self.message, self.state = message, state
        self.asked: list[tuple[Any, ...]] = []

    def releases(self, app: str | None = None) -> list[dict[str, Any]]:
        spec = {"app": "checkout", "version": "1.5.0", "commit": "c" * 40}
        return [{"metadata": {"name": "checkout-cccccccccccc"}, "spec": spec, "status": {"phase": "Pending"}}]

    def request(self, action: str, app: str, reason: str, **kw: Any) -> dict[str, Any]:
        self.asked.append((action, app, reason, kw["wave"]))
        return {"status": {"state": self.state, "message": self.message}}


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("counted: 1/1 approvals for wave canary; applied to checkout-cccccccccccc", 0),
        ("not counted: identity not allowed: rick (no groups); applied to checkout-cccccccccccc", 1),
    ],
)
def test_the_cli_says_whether_the_approval_counted(monkeypatch: pytest.MonkeyPatch, message: str, code: int) -> None:
    fake = FakeOps(message)
    monkeypatch.setattr(cli_ops, "_ops", lambda *a: fake)
    result = CliRunner().invoke(APPROVE, ["checkout", "--wave", "canary", "--reason", "dashboards green"])
    assert result.exit_code == code, result.output
    assert fake.asked == [("approve", "checkout", "dashboards green", "canary")]
    assert f"approve checkout wave canary: Done — {message}" in result.output
    assert "acted on release checkout-cccccccccccc (version 1.5.0" in result.output


def test_refuse_needs_a_wave_and_a_reason() -> None:
    result = CliRunner().invoke(REFUSE, ["checkout", "--reason", "not today"])
    assert result.exit_code == 2 and "--wave" in result.output


def test_a_missing_approve_verb_is_explained_by_the_policys_own_message() -> None:
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = (
        '{"message": "... approve needs the verb approve on releaseactions.rollout.dev (ClusterRole '
        'rollout-approver); e2e-vera may not approve or refuse"}'
    )
    text = explain(exc, "create a approve action", "rollout-system", lambda: "e2e-vera")
    assert text.startswith("cannot create a approve action: ") and "rollout-approver" in text


def test_status_shows_the_gate_the_release_waits_at() -> None:
    gate = {"wave": "low", "required": 2, "have": 1, "from": "groups release-managers", "expired": 1}
    assert [t.plain for t in frozen_lines({"status": {"awaitingApproval": gate}})] == [
        "  awaiting approval for wave low: 1/2 approvals from groups release-managers; 1 expired"
    ]


def test_intake_freezes_the_planned_gate_and_the_commit_author_into_the_release() -> None:
    planned = Approval.model_validate(
        {"required": 2, "from": {"users": ["alice"], "groups": ["sre"]}, "notByAuthor": True, "expiresAfter": "8h"}
    )
    assert approval_gate(planned) == ApprovalGate(2, ("alice",), ("sre",), True, 8 * 3600.0)
    assert approval_gate(None) is None
    spec = candidates_at(load_repository(EXAMPLE), "a" * 40, {}, "Bob <bob@example.com>")["checkout"].spec
    assert spec.author == "Bob <bob@example.com>" and all(w.approval is None for w in spec.waves)

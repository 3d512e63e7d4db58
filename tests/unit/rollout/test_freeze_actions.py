"""`rollout freeze` / `unfreeze` / `override-freeze` as ReleaseActions (rollout/actions.py): their
checks, which release an override acts on, and the run-time freezes worked out from the actions
alone (level-triggered: nothing else is stored)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
import pytest
from click.testing import CliRunner

from rollout.actions import Checked, Rejected, check, freeze_note, runtime_freezes, target
from rollout.cli.ops import ACTION_COMMANDS, freeze_lines, frozen_lines, until_time
from tests.unit.rollout.test_action_target import rel
from tests.unit.rollout.test_actions import KNOWN, FakeCache, FakeTraffic, controller

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
FREEZE, UNFREEZE = (next(c for c in ACTION_COMMANDS if c.name == n) for n in ("freeze", "unfreeze"))


def ra(name: str = "a", handled: str | None = None, state: str | None = "Done", **spec: Any) -> dict[str, Any]:
    spec.setdefault("reason", "incident 42")
    spec.setdefault("requestedBy", "alice")
    action: dict[str, Any] = {"metadata": {"name": name, "creationTimestamp": "2026-11-29T07:00:00Z"}, "spec": spec}
    if state:
        action["status"] = {"state": state, "handledAt": handled or "2026-11-29T07:00:00.000Z"}
    return action


def test_freeze_checks() -> None:
    every = check(ra(action="freeze"), KNOWN)
    assert isinstance(every, Checked) and every.app is None and every.until is None
    one = check(ra(action="freeze", app="checkout", region="eu-west", until="2026-12-01T00:00:00Z"), KNOWN)
    assert isinstance(one, Checked) and one.until == datetime(2026, 12, 1, tzinfo=UTC)
    bad = check(ra(action="freeze", until="tomorrow"), KNOWN)
    assert isinstance(bad, Rejected) and "spec.until 'tomorrow' is not an RFC 3339 time" in bad.reason
    unknown = check(ra(action="freeze", app="nope"), KNOWN)
    assert isinstance(unknown, Rejected) and unknown.unknown_name
    wrong = check(ra(action="unfreeze", until="2026-12-01T00:00:00Z"), KNOWN)
    assert isinstance(wrong, Rejected) and "spec.until is not allowed for unfreeze" in wrong.reason
    override = check(ra(action="override-freeze"), KNOWN)
    assert isinstance(override, Rejected) and "spec.app is required for override-freeze" in override.reason
    ok = check(ra(action="override-freeze", app="checkout"), KNOWN)
    assert isinstance(ok, Checked) and ok.request().action == "override-freeze"


def test_override_acts_on_the_live_release_or_lets_a_pending_one_start() -> None:
    ask = Checked("override-freeze", "hotfix", "dave", app="guestbook")
    assert target(ask, [rel(1, "Succeeded"), rel(2, "Pending")]).release == rel(2, "Pending").name
    assert "starts despite freezes" in target(ask, [rel(2, "Pending")]).note
    assert target(ask, [rel(1, "Progressing"), rel(2, "Pending")]).release == rel(1, "Progressing").name
    assert target(ask, [rel(1, "Succeeded")]).release is None


def test_runtime_freezes_until_lifted_or_ended() -> None:
    everything = ra("freeze-all", "2026-11-29T07:00:00.000Z", action="freeze")
    checkout = ra(
        "freeze-co", "2026-11-29T07:01:00.000Z", action="freeze", app="checkout", until="2026-11-29T09:00:00Z"
    )
    ended = ra("freeze-old", action="freeze", until="2026-11-29T07:30:00Z")
    refused = ra("freeze-no", state="Rejected", action="freeze")
    pending = ra("freeze-new", state=None, action="freeze")
    actions = [everything, checkout, ended, refused, pending]
    found = {f.name: f for f in runtime_freezes(actions, NOW)}
    assert sorted(found) == ["freeze-all", "freeze-co"]
    assert found["freeze-co"].apps == ("checkout",) and found["freeze-co"].end == datetime(2026, 11, 29, 9, tzinfo=UTC)
    assert found["freeze-all"].owner == "alice" and found["freeze-all"].source == "ReleaseAction freeze-all"
    assert runtime_freezes(actions, NOW + timedelta(hours=2))[0].name == "freeze-all"
    # an unfreeze of checkout lifts checkout's freeze only; one without app lifts all that came before it
    lift_co = ra("unfreeze-co", "2026-11-29T07:02:00.000Z", action="unfreeze", app="checkout")
    assert [f.name for f in runtime_freezes([*actions, lift_co], NOW)] == ["freeze-all"]
    lift_all = ra("unfreeze-all", "2026-11-29T07:03:00.000Z", action="unfreeze")
    assert runtime_freezes([*actions, lift_all], NOW) == []
    later = ra("freeze-again", "2026-11-29T07:04:00.000Z", action="freeze", app="search")
    assert [f.name for f in runtime_freezes([*actions, lift_all, later], NOW)] == ["freeze-again"]


def test_notes() -> None:
    frozen = Checked("freeze", "r", "alice", app="checkout", until=datetime(2026, 12, 1, tzinfo=UTC))
    assert freeze_note(frozen, []) == (
        "frozen: no release starts a new region for checkout in every region until 2026-12-01T00:00:00.000Z"
    )
    active = runtime_freezes(
        [ra("freeze-co", action="freeze", app="checkout"), ra("freeze-s", action="freeze", app="search")], NOW
    )
    assert freeze_note(Checked("unfreeze", "r", "bob", app="checkout"), active) == "lifted freeze-co"
    assert freeze_note(Checked("unfreeze", "r", "bob"), active) == "lifted freeze-co, freeze-s"
    assert "freezes.yaml windows are lifted in Git" in freeze_note(Checked("unfreeze", "r", "bob"), [])


# --- the CLI's part (no cluster) -----------------------------------------------------------------


def test_until_takes_a_duration_or_a_time() -> None:
    assert until_time("2h", NOW) == "2026-11-29T10:00:00.000Z"
    assert until_time("2026-12-24T18:00:00+01:00", NOW) == "2026-12-24T17:00:00.000Z"
    for bad, words in (("soon", "neither a duration"), ("2026-11-28T00:00:00Z", "in the past")):
        with pytest.raises(click.BadParameter, match=words):
            until_time(bad, NOW)


def test_freeze_needs_an_app_or_all() -> None:
    runner = CliRunner()
    for args in (["--reason", "x"], ["checkout", "--all", "--reason", "x"]):
        result = runner.invoke(FREEZE, args)
        assert result.exit_code == 2 and "name one APP or give --all" in result.output
    result = runner.invoke(UNFREEZE, ["--all", "--reason", "x", "--until", "2h"])
    assert result.exit_code == 2 and "--until applies to freeze only" in result.output


def test_status_shows_the_freeze_and_the_override() -> None:
    release = {
        "status": {
            "frozen": "frozen in eu-west: weekend (quiet; owner sre) until ...",
            "freezeOverride": "dave: hotfix",
        }
    }
    assert [t.plain for t in frozen_lines(release)] == [
        "  frozen in eu-west: weekend (quiet; owner sre) until ...",
        "  freezes overridden by dave: hotfix",
    ]
    lines = freeze_lines([ra("freeze-co", action="freeze", app="checkout", until="2026-11-29T09:00:00Z")], NOW)
    assert [t.plain for t in lines] == [
        "frozen by alice: checkout in all regions: 2026-11-29T07:00:00.000Z - 2026-11-29T09:00:00.000Z"
        " (incident 42) [freeze-co]"
    ]


# --- the controller's part: routing, and the freezes handed to the reconciler ----------------------


def test_the_controller_records_freezes_on_the_actions_and_hands_them_on() -> None:
    ctl, custom, events = controller(FakeTraffic())
    ctl._git_freezes = ()
    freeze = ra("freeze-all-x", state=None, action="freeze", until="2026-11-29T10:00:00Z")
    past = ra("freeze-old", state=None, action="freeze", until="2026-11-29T07:00:00Z")
    ctl._route_actions([freeze, past], {"checkout": []}, NOW)
    assert custom.status["freeze-all-x"]["state"] == "Done"
    assert custom.status["freeze-all-x"]["message"] == (
        "frozen: no release starts a new region for every app in every region until 2026-11-29T10:00:00.000Z"
    )
    assert (
        custom.status["freeze-old"]["state"] == "Rejected" and "in the past" in custom.status["freeze-old"]["message"]
    )
    done = {**freeze, "status": custom.status["freeze-all-x"]}
    ctl.actions = FakeCache([done])
    assert [f.name for f in ctl._freezes(NOW)] == ["freeze-all-x"]
    unfreeze = ra("unfreeze-all-y", state=None, action="unfreeze")
    ctl._route_actions([unfreeze], {"checkout": []}, NOW + timedelta(seconds=1))
    assert custom.status["unfreeze-all-y"]["message"] == "lifted freeze-all-x"
    ctl.actions = FakeCache([done, {**unfreeze, "status": custom.status["unfreeze-all-y"]}])
    assert ctl._freezes(NOW + timedelta(seconds=2)) == ()

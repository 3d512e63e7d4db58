"""Issue 12 (6): responders' commands act on the release that is actually live, and say which;
on a Pending release they say so, pause holds it, the others refuse clearly."""

from __future__ import annotations

import pytest

from rollout.actions import Checked, target
from rollout.cli.ops import acted_on
from rollout.release import PlannedWaveSpec, ReleaseSpec, ReleaseStatus
from rollout.store import StoredRelease


def rel(n: int, phase: str, message: str = "") -> StoredRelease:
    spec = ReleaseSpec("guestbook", str(n) * 40, f"1.{n}.0", "p", "d", (PlannedWaveSpec("w", ("eu-west",), 0, 1),))
    return StoredRelease(spec.name, "1", spec, ReleaseStatus(phase=phase, message=message), f"2026-11-29T01:0{n}:00Z")


def ask(action: str, release: str | None = None) -> Checked:
    return Checked(action, "why", "alice", "guestbook", release=release)


OLD, LIVE, WAITING = rel(1, "Succeeded"), rel(2, "Progressing"), rel(3, "Pending", "waiting for release x")


@pytest.mark.parametrize("action", ["abort", "rollback", "pause", "promote"])
def test_a_command_acts_on_the_live_release_not_the_pending_one_behind_it(action: str) -> None:
    chosen = target(ask(action), [OLD, LIVE, WAITING])
    assert chosen.release == LIVE.name and "is Progressing" in chosen.note


def test_resume_finds_the_paused_release() -> None:
    paused = rel(2, "Paused")
    assert target(ask("resume"), [OLD, paused, WAITING]).release == paused.name
    refused = target(ask("resume"), [OLD, LIVE, WAITING])
    assert refused.release is None and "is Progressing" in refused.note and "Paused" in refused.note


def test_on_a_pending_release_abort_refuses_saying_so_and_pause_holds_it() -> None:
    refused = target(ask("abort"), [OLD, WAITING])
    assert refused.release is None
    assert f"release {WAITING.name} (version 1.3.0) is Pending (waiting for release x)" in refused.note
    assert "nothing to abort" in refused.note and "rollout pause guestbook" in refused.note
    held = target(ask("pause"), [OLD, WAITING])
    assert held.release == WAITING.name and "will not start until resumed" in held.note


def test_rollback_with_nothing_in_progress_returns_from_the_latest_success() -> None:
    assert target(ask("rollback"), [OLD, WAITING]).release == OLD.name


def test_a_release_already_rolling_back_is_named_in_the_refusal() -> None:
    back = rel(2, "RollingBack")
    refused = target(ask("abort"), [OLD, back, WAITING])
    assert refused.release is None and back.name in refused.note and "already rolling back" in refused.note


def test_a_named_release_must_accept_the_action() -> None:
    refused = target(ask("promote", OLD.name), [OLD, LIVE])
    assert refused.release is None and "is Succeeded" in refused.note
    assert target(ask("promote", LIVE.name), [OLD, LIVE]).release == LIVE.name


def test_no_release_in_progress() -> None:
    refused = target(ask("abort"), [OLD])
    assert refused.release is None and "no release of 'guestbook' is in progress" in refused.note
    assert "rollout rollback guestbook" in refused.note
    assert target(ask("abort"), []).note == "no release of 'guestbook' is in progress"


def test_the_cli_says_which_release_it_acted_on() -> None:
    obj = {
        "metadata": {"name": LIVE.name},
        "spec": {"version": "1.2.0", "commit": "2" * 40},
        "status": {"phase": "RollingBack", "message": "abort requested by alice: why"},
    }
    line = acted_on(f"applied to {LIVE.name}", [obj])
    assert line.startswith(f"acted on release {LIVE.name} (version 1.2.0") and "now RollingBack" in line

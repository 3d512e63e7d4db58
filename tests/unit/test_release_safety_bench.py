"""The release-safety bench's pure parts: how a release's end is classified and counted."""

from __future__ import annotations

from bench.release_safety import Outcome, Scenario, needs_responder, outcome_cell, report, stop_reason, visible_regions
from deploy.lab.simulator.model import FaultProfile

WAVES = [
    {"name": "canary", "regions": ["eu-canary"]},
    {"name": "low-traffic", "regions": ["eu-west"]},
    {"name": "high-traffic", "regions": ["us-east"]},
    {"name": "high-traffic-mobile", "regions": ["ap-east"]},
]
SHARES = {"eu-canary": 2.0, "eu-west": 8.0, "us-east": 45.0, "ap-east": 35.0}


def outcome(scenario: Scenario, phase: str, failed: str | None = None, **kw: object) -> Outcome:
    o = Outcome(scenario, "7.0.0", phase, 40.0, WAVES, {"eu-canary": 1.0}, 30.0, 10.0, 1000.0)
    o.failed_region = failed
    o.visible = {"eu-canary", "eu-west", "us-east", "ap-east"} if scenario.bad else set()
    for key, value in kw.items():
        setattr(o, key, value)
    return o


BAD = Scenario("errors +2 %", FaultProfile(error_ratio=0.02))
GOOD = Scenario("good 1")


def test_only_rolled_back_and_succeeded_need_no_responder() -> None:
    assert not needs_responder("RolledBack")
    assert not needs_responder("Succeeded")
    for phase in ("Paused", "Failed", "Progressing", "RollingBack", "None"):
        assert needs_responder(phase)


def test_stop_reason_says_phase_time_and_message() -> None:
    status = {"phase": "Paused", "message": "smoke window\n  inconclusive in eu-west"}
    assert stop_reason(status, 47.2, False) == "Paused at 47 s: smoke window inconclusive in eu-west"
    assert stop_reason({"phase": "Progressing"}, 420.0, True) == "Progressing not ended after 420 s"
    assert stop_reason({}, 420.0, True) == "no release not ended after 420 s"


def test_a_paused_bad_release_is_not_stopped_in_its_first_wave() -> None:
    caught = outcome(BAD, "RolledBack", "eu-canary")
    assert caught.stopped_in_first_wave
    paused = outcome(BAD, "Paused", None, stop_reason="Paused at 47 s", recovery="rolled back by a ReleaseAction")
    assert not paused.stopped_in_first_wave
    assert outcome_cell(paused) == "Paused (responder rolled back)"
    assert outcome_cell(caught) == "RolledBack"
    lost = outcome(BAD, "Paused", None, stop_reason="Paused at 47 s", recovery="not recovered: refused")
    assert outcome_cell(lost) == "Paused (not recovered)"


def test_report_counts_a_paused_good_release_as_not_promoted() -> None:
    lines: list[str] = []
    outcomes = [
        outcome(BAD, "RolledBack", "eu-canary"),
        outcome(BAD, "Paused", None, stop_reason="Paused at 47 s: inconclusive", recovery="rolled back by a ..."),
        outcome(GOOD, "Succeeded"),
        outcome(GOOD, "Paused", stop_reason="Paused at 50 s", recovery="rolled back by a ..."),
    ]
    line = report(outcomes, 10, 0, {}, SHARES, lines.append)
    assert line.startswith("safety: stopped_in_first_wave=1/2 false_rollbacks=1/12 ")
    assert any("not promoted" in x for x in lines)
    assert any(x.startswith("- 7.0.0 (good 1): Paused at 50 s") for x in lines)


def test_visible_regions_are_the_labs_regions_the_fault_is_in() -> None:
    three = WAVES[:3]  # a lab without ap-east (the e2e suite's default)
    assert visible_regions(BAD, three) == {"eu-canary", "eu-west", "us-east"}
    ja = Scenario("ja only", FaultProfile(error_ratio=0.05, regions=("ap-east",)))
    assert visible_regions(ja, WAVES) == {"ap-east"}
    assert visible_regions(ja, three) == set()
    never = Scenario("never ready", never_ready_wave="low-traffic")
    assert visible_regions(never, three) == {"eu-west"}

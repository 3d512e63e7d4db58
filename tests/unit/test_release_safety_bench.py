"""The release-safety bench's pure parts: how a release's end is classified and counted, its plan,
and the in-process judge of `--tradeoff`."""

from __future__ import annotations

import math
from datetime import timedelta

import yaml

from bench.judge_false_alarm import START
from bench.release_safety import (
    CANARY_SMOKE_S,
    CONFIDENCE,
    HEALTHY_QUICK,
    REGIONS,
    SMOKE_S,
    Outcome,
    Scenario,
    Setting,
    look_times,
    needs_responder,
    outcome_cell,
    plan_changes,
    release_level,
    report,
    stop_reason,
    validate_fast,
    visible_regions,
)
from deploy.lab import services
from deploy.lab.simulator.model import FaultProfile
from regions.analysis.sequential import planned_looks

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


def test_the_vectorised_judge_agrees_with_the_engine() -> None:
    """`--tradeoff`'s judge (scipy per window, the engine's looks and levels) gives the engine's
    verdict at the engine's look on the same seeded draws: noise, small and late faults, a
    failureLimit (and a window ending on a failing look within it: a pause), minSamples 8."""
    wrong, stopped = validate_fast(4, 3)
    assert wrong == []
    assert stopped >= 3


def test_look_times_are_the_engines_schedule() -> None:
    for setting in (Setting(0.99), Setting(0.999, 60.0), Setting(0.999, 40.0, 1, 8), Setting(0.99, 17.0)):
        looks = look_times(setting.check, setting.canary_s)
        end = START + timedelta(seconds=setting.canary_s)
        assert len(looks) == planned_looks(setting.check, START, end)
        assert looks[-1] == setting.canary_s and looks == sorted(set(looks))


def test_the_plan_gives_the_canary_wave_the_longest_window() -> None:
    changes = plan_changes(lambda p: (services.EXAMPLE / p).read_text(), set(REGIONS))
    plan = yaml.safe_load(changes["apps/checkout/rollout.yaml"] or "")
    windows = {w["name"]: w["smokeWindow"] for w in plan["waves"]}
    assert windows.pop("canary") == f"{CANARY_SMOKE_S:g}s"
    assert set(windows.values()) == {f"{SMOKE_S:g}s"}
    judged = [c for c in plan["analysis"]["checks"] if "judge" in c]
    assert [c["judge"]["confidence"] for c in judged] == [CONFIDENCE, CONFIDENCE]


def test_release_level_false_alarms_compound_over_check_windows() -> None:
    zero = {r: 0.0 for r in REGIONS} | {"latency": 0.0, "latency (canary)": 0.0}
    assert release_level(zero, HEALTHY_QUICK, 20) == 0.0
    canary_only = zero | {"eu-canary": 0.01}
    # the canary's error-ratio check: 3 healthy canary windows in the lab and 20 noise windows
    assert math.isclose(release_level(canary_only, HEALTHY_QUICK, 20), 1 - 0.99**23)

from __future__ import annotations

import pytest

from config.loader import load_repository
from config.schema import Plan, Region
from config.waves import plan_waves
from tests.conftest import EXAMPLE


def region(name: str, tier: str, share: float, **character: str) -> Region:
    return Region.model_validate(
        {"name": name, "cluster": name, "tier": tier, "trafficShare": share, "characteristics": character}
    )


def auto_plan(max_parallel: int = 3) -> Plan:
    return Plan.model_validate(
        {
            "app": "a",
            "owner": {"team": "t", "contact": "c"},
            "playbook": "https://x",
            "strategy": {"rolling": {}},
            "waves": "auto",
            "autoWaves": {"smokeWindow": "5m", "maxParallel": max_parallel},
        }
    )


def test_auto_waves_follow_canary_low_high_new_character_then_rest() -> None:
    regions = {
        r.name: r
        for r in [
            region("c1", "canary", 0.01, locale="en"),
            region("l1", "low", 0.05, locale="en"),
            region("l2", "low", 0.03, locale="de"),
            region("h1", "high", 0.3, locale="en"),
            region("h2", "high", 0.25, locale="ja"),
            region("h3", "high", 0.2, locale="ja"),
            region("s1", "standard", 0.1, locale="en"),
            region("s2", "standard", 0.06, locale="pt"),
        ]
    }
    waves = [(w.name, w.regions, w.max_parallel) for w in plan_waves(auto_plan(), regions)]
    assert waves == [
        ("canary", ("c1",), 3),
        ("low-traffic", ("l2", "l1"), 3),  # smallest traffic first
        ("high-traffic", ("h1",), 3),  # same character as proven regions: tests scale
        ("character-h2", ("h2",), 1),  # each new character alone, biggest first
        ("character-s2", ("s2",), 1),
        ("rest", ("s1", "h3"), 3),  # the rest in parallel
    ]


def test_every_region_is_in_exactly_one_auto_wave() -> None:
    repo = load_repository(EXAMPLE)
    waves = plan_waves(repo.apps["catalog"].plan, repo.regions)
    placed = [r for w in waves for r in w.regions]
    assert sorted(placed) == sorted(repo.regions)


@pytest.mark.parametrize("app", ["checkout", "search"])
def test_explicit_waves_start_with_the_canary_region(app: str) -> None:
    repo = load_repository(EXAMPLE)
    waves = plan_waves(repo.apps[app].plan, repo.regions)
    assert waves[0].regions == ("eu-canary",)
    assert waves[1].regions == ("eu-west", "ap-south")

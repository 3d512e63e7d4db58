"""The fault profiles of issue 14 on the pure engine (region-scoped errors, a latency creep) and
the Git-side one (pods never Ready in one wave's regions, rendered by the product's renderer)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from config.identity import ReleaseIdentity
from config.loader import load_repository
from config.render import render
from deploy.lab.cluster import FAULT_LABEL
from deploy.lab.scenarios import never_ready_in
from deploy.lab.simulator import faults
from deploy.lab.simulator.engine import Engine
from deploy.lab.simulator.model import Answer, AppSpec, FaultProfile, Track

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "shop"
CANARY = Track("1.1.0", "canary")
APPS = {"shop": AppSpec("shop", base_latency_ms=20)}
CHARS = {
    "ap-east": {"locale": "ja", "clientMix": "mobile"},
    "eu-west": {"locale": "en", "clientMix": "web"},
    "us-east": {"locale": "en", "clientMix": "web"},
}


def _errors(engine: Engine, region: str) -> tuple[int, int]:
    totals = engine.totals()
    errors = sum(n for (r, _, _, _, c), n in totals.items() if r == region and c == "500")
    return errors, sum(n for (r, *_), n in totals.items() if r == region)


def test_errors_only_in_the_regions_of_one_locale() -> None:
    profile = faults.only_where(FaultProfile(error_ratio=0.5), CHARS, locale="en")
    assert profile.regions == ("eu-west", "us-east")
    engine = Engine()
    rates = {(r, "shop", Answer(CANARY)): 100.0 for r in CHARS}
    for t in range(10):
        engine.step(rates, [], APPS, {("shop", CANARY.version): profile}, float(t), 1.0)
    assert _errors(engine, "ap-east") == (0, 1000)
    assert _errors(engine, "eu-west") == (500, 1000)
    assert _errors(engine, "us-east") == (500, 1000)


def test_only_where_refuses_a_character_no_region_has() -> None:
    with pytest.raises(ValueError, match="no region has characteristics"):
        faults.only_where(FaultProfile(error_ratio=0.1), CHARS, locale="fr")


def test_region_scoped_profile_survives_the_control_api_json() -> None:
    profile = FaultProfile(error_ratio=0.1, regions=("us-east",), latency_growth_per_min=0.1)
    again = FaultProfile.from_dict(yaml.safe_load(yaml.safe_dump({**profile.to_dict(), "regions": ["us-east"]})))
    assert again == profile


def test_latency_creeps_from_the_versions_first_traffic_in_each_region() -> None:
    creep = faults.latency_creep(10.0)  # +10 % of base per minute
    assert faults.latency_ms(creep, 20.0, None, 100.0) == pytest.approx(20.0)
    assert faults.latency_ms(creep, 20.0, 100.0, 100.0) == pytest.approx(20.0)
    assert faults.latency_ms(creep, 20.0, 100.0, 160.0) == pytest.approx(22.0)
    assert faults.latency_ms(creep, 20.0, 100.0, 700.0) == pytest.approx(40.0)
    with pytest.raises(ValueError, match="latency_growth_per_min"):
        FaultProfile(latency_growth_per_min=-1)


def test_latency_creep_in_the_engine_grows_the_mean() -> None:
    engine = Engine()
    rates = {("eu-west", "shop", Answer(CANARY)): 100.0}
    profiles = {("shop", CANARY.version): faults.latency_creep(100.0)}  # doubles within a minute

    def mean_over(start: int) -> float:
        before = _histogram(engine)
        for t in range(start, start + 5):
            engine.step(rates, [], APPS, profiles, float(t), 1.0)
        after = _histogram(engine)
        return (after[0] - before[0]) / (after[1] - before[1])

    early = mean_over(0)
    late = mean_over(120)  # two minutes on: about three times the base
    assert 0.018 < early < 0.024
    assert 2.5 < late / early < 3.5


def _histogram(engine: Engine) -> tuple[float, float]:
    for family in engine.collect():
        if family.name == "http_request_duration_seconds":
            total = sum(s.value for s in family.samples if s.name.endswith("_sum"))
            count = sum(s.value for s in family.samples if s.name.endswith("_count"))
            return total, count
    return 0.0, 0.0


def test_never_ready_only_in_the_chosen_waves_regions(tmp_path: Path) -> None:
    repo_dir = tmp_path / "shop"
    shutil.copytree(EXAMPLE, repo_dir)
    changes = never_ready_in(lambda p: (repo_dir / p).read_text(), "checkout", ["eu-west"])
    for path, text in changes.items():
        (repo_dir / path).write_text(text)
    repo = load_repository(repo_dir)
    identity = ReleaseIdentity(commit="a" * 40, version="1.4.0", track="stable")

    def pod_label(region: str) -> str:
        rendered = render(repo, "checkout", region, identity)
        deployment = next(o for o in rendered.objects if o["kind"] == "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["labels"][FAULT_LABEL])

    assert pod_label("eu-west") == "never-ready"
    assert pod_label("eu-canary") == "none"
    assert pod_label("us-east") == "none"


def test_never_ready_names_the_file_when_there_is_no_pod_template() -> None:
    with pytest.raises(ValueError, match="apps/x/manifests/deployment.yaml"):
        never_ready_in(lambda _: "kind: Deployment\n", "x", ["eu-west"])


def test_a_time_bomb_keeps_its_clock_when_the_canary_is_promoted_to_stable() -> None:
    """Errors 15 s after the version's first traffic in a region: the canary track takes 10 s,
    then the version serves as stable; the errors start 5 s into that, not 15 s."""
    engine = Engine()
    profiles = {("shop", "1.1.0"): faults.errors_after(0.25, 1.0)}
    canary = {("eu-west", "shop", Answer(CANARY)): 10.0}
    stable = {("eu-west", "shop", Answer(Track("1.1.0", "stable"))): 10.0}
    for t in range(10):
        engine.step(canary, [], APPS, profiles, float(t), 1.0)
    for t in range(10, 20):
        engine.step(stable, [], APPS, profiles, float(t), 1.0)
    errors = {v: n for (_, _, _, track, code), n in engine.totals().items() if code == "500" for v in [track]}
    assert errors.get("canary", 0) == 0
    assert errors["stable"] == 50  # seconds 15..19 at 10 rps

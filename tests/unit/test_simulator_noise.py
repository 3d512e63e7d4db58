"""The simulator's realistic traffic (TrafficNoise) and the faults of realistic size, on the pure
engine: Poisson counts, per-region baseline errors, a heavy latency tail, reproducible draws."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from deploy.lab.simulator import faults
from deploy.lab.simulator.engine import Engine
from deploy.lab.simulator.model import Answer, AppSpec, FaultProfile, Track, TrafficNoise

STABLE, CANARY = Track("1.0.0", "stable"), Track("1.1.0", "canary")
APPS = {"shop": AppSpec("shop", base_latency_ms=20)}


def _step(engine: Engine, rates: dict, profiles: dict, now: float, dt: float = 1.0) -> None:
    present = {(r, a, ans.track) for (r, a, ans) in rates}
    engine.step(rates, present, APPS, profiles, now, dt)


def _total(engine: Engine, region: str | None = None, version: str | None = None, code: str | None = None) -> int:
    return sum(
        n
        for (r, _, v, _, c), n in engine.totals().items()
        if (region is None or r == region) and (version is None or v == version) and (code is None or c == code)
    )


def _latency(engine: Engine, version: str) -> tuple[list[tuple[float, float]], float, float]:
    """(cumulative buckets, sum, count) of one version's histogram."""
    for family in engine.collect():
        if family.name != "http_request_duration_seconds":
            continue
        rows = [s for s in family.samples if s.labels.get("version") == version]
        buckets = [(float(s.labels["le"]), s.value) for s in rows if s.name.endswith("_bucket")]
        total = next(s.value for s in rows if s.name.endswith("_sum"))
        count = next(s.value for s in rows if s.name.endswith("_count"))
        return buckets, total, count
    raise AssertionError("no latency histogram")


def test_counts_per_tick_are_poisson_around_the_planned_rate() -> None:
    engine = Engine(random.Random(1), noise=TrafficNoise(seed=7))
    rates = {("a", "shop", Answer(STABLE)): 50.0}
    per_tick, before = [], 0
    for i in range(400):
        _step(engine, rates, {}, now=float(i + 1))
        total = _total(engine)
        per_tick.append(total - before)
        before = total
    mean, var = statistics.fmean(per_tick), statistics.pvariance(per_tick)
    assert mean == pytest.approx(50, abs=3 * math.sqrt(50 / 400) + 0.5)
    assert 35 < var < 70  # Poisson: variance = mean (exact counts would give 0)


def test_a_region_without_traffic_still_gets_exactly_zero() -> None:
    engine = Engine(random.Random(1), noise=TrafficNoise(seed=7))
    for i in range(50):
        _step(engine, {("a", "shop", Answer(STABLE)): 0.0}, {}, now=float(i + 1))
    assert _total(engine) == 0


def test_baseline_error_rates_differ_by_region_and_faults_add_to_them() -> None:
    noise = TrafficNoise(seed=3, error_rate=0.001, region_error_rates={"b": 0.02})
    engine = Engine(random.Random(1), noise=noise)
    rates = {
        ("a", "shop", Answer(STABLE)): 1000.0,
        ("b", "shop", Answer(STABLE)): 1000.0,
        ("a", "shop", Answer(CANARY)): 1000.0,
    }
    profiles = {("shop", CANARY.version): faults.small_error_increase(0.3)}
    for i in range(200):
        _step(engine, rates, profiles, now=float(i + 1))

    def ratio(region: str, version: str) -> float:
        return _total(engine, region, version, "500") / _total(engine, region, version)

    # ~200,000 requests each: a binomial ratio's standard deviation is at most 0.0003 here.
    assert ratio("a", STABLE.version) == pytest.approx(0.001, abs=0.0005)
    assert ratio("b", STABLE.version) == pytest.approx(0.02, abs=0.0015)
    assert ratio("a", CANARY.version) == pytest.approx(0.004, abs=0.001)


def test_latency_has_a_heavy_tail_only_with_noise() -> None:
    def slow_share(noise: TrafficNoise | None) -> float:
        engine = Engine(random.Random(1), noise=noise)
        for i in range(100):
            _step(engine, {("a", "shop", Answer(STABLE)): 200.0}, {}, now=float(i + 1))
        buckets, _, count = _latency(engine, STABLE.version)
        under = next(v for le, v in buckets if le == pytest.approx(0.06))  # 3x the 20 ms median
        return 1 - under / count

    assert slow_share(None) < 0.001  # log-normal, sigma 0.25: nothing beyond 3x the median
    assert slow_share(TrafficNoise(seed=5, tail_share=0.03)) == pytest.approx(0.03, abs=0.01)


def test_a_latency_regression_of_twenty_percent() -> None:
    assert faults.latency_ms(faults.latency_regression(20), 20.0) == pytest.approx(24.0)
    assert faults.latency_ms(FaultProfile(extra_latency_ms=5, latency_factor=2), 20.0) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="latency_factor"):
        FaultProfile(latency_factor=0)
    engine = Engine(random.Random(2))
    rates = {("a", "shop", Answer(STABLE)): 200.0, ("a", "shop", Answer(CANARY)): 200.0}
    for i in range(100):
        _step(engine, rates, {("shop", CANARY.version): faults.latency_regression(20)}, now=float(i + 1))
    _, s_sum, s_n = _latency(engine, STABLE.version)
    _, c_sum, c_n = _latency(engine, CANARY.version)
    assert (c_sum / c_n) / (s_sum / s_n) == pytest.approx(1.2, abs=0.03)


def test_errors_start_minutes_after_the_version_first_takes_traffic() -> None:
    engine = Engine(random.Random(1))
    rates = {("a", "shop", Answer(CANARY)): 100.0}
    profiles = {("shop", CANARY.version): faults.errors_after(2, error_ratio=0.1)}
    for i in range(120):  # first traffic at t=1: errors from t=121
        _step(engine, rates, profiles, now=float(i + 1))
    assert _total(engine, code="500") == 0
    for i in range(120, 180):
        _step(engine, rates, profiles, now=float(i + 1))
    assert _total(engine, code="500") == pytest.approx(0.1 * 100 * 60, abs=100)


def test_the_same_seed_draws_the_same_traffic_and_switching_noise_off_restores_exact_counts() -> None:
    def run(engine: Engine, ticks: int = 30) -> dict:
        for i in range(ticks):
            _step(engine, {("a", "shop", Answer(STABLE)): 33.3}, {}, now=float(i + 1))
        return engine.totals()

    assert run(Engine(random.Random(1), noise=TrafficNoise(seed=11))) == run(
        Engine(random.Random(1), noise=TrafficNoise(seed=11))
    )
    engine = Engine(random.Random(1), noise=TrafficNoise(seed=11))
    engine.set_noise(None)
    assert _total(engine) == 0 and sum(run(engine, 10).values()) == 333


def test_noise_from_the_simulator_config_and_bad_fields_rejected() -> None:
    from deploy.lab.simulator.model import RegionSpec
    from deploy.lab.simulator.server import Simulator, SimulatorConfig

    config = SimulatorConfig(
        regions=[RegionSpec("a", "a", 1.0)],
        apps=[AppSpec("shop")],
        source="static",
        noise={"seed": 1, "region_error_rates": {"a": 0.01}},
    )
    sim = Simulator(config)
    assert sim.engine.noise is not None and sim.engine.noise.error_rate_of("a") == 0.01
    assert Simulator(SimulatorConfig(regions=[], source="static")).engine.noise is None
    with pytest.raises(ValueError, match="unknown traffic noise fields"):
        TrafficNoise.from_dict({"sed": 1})
    with pytest.raises(ValueError, match="error rates"):
        TrafficNoise(error_rate=2)

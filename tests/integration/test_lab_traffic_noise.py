"""Realistic traffic in the lab's simulator, scraped by a real Prometheus: Poisson counts,
per-region baseline error rates (the count draws themselves are tested on the pure engine in
tests/unit/test_simulator_noise.py), a latency regression of +20 % and errors that start some time
after the version's rollout (docs/lab-traffic.md, "Realistic traffic").

A static-topology simulator (no clusters) and its own Prometheus, started for this module only.
Bounds are generous (shared 2-core machine); measured figures are printed (run with -s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.lab import prometheus as prom
from deploy.lab.simulator import faults
from deploy.lab.simulator import process as simulator_process
from deploy.lab.simulator.client import SimulatorClient
from deploy.lab.simulator.model import AppSpec, RegionSpec, TrafficNoise
from deploy.lab.simulator.server import SimulatorConfig
from tests.fixtures.traffic import PromQuery, wait_until

pytestmark = pytest.mark.integration

APP, STABLE_V, CANARY_V = "noisy", "1.0.0", "1.1.0"
REGIONS = [RegionSpec("a", "a", 0.7), RegionSpec("b", "b", 0.3)]
NOISE = TrafficNoise(seed=14, error_rate=0.005, region_error_rates={"b": 0.05})


def table(canary_weight: int) -> dict[str, Any]:
    split = [
        {"version": STABLE_V, "track": "stable", "weight": 100 - canary_weight},
        {"version": CANARY_V, "track": "canary", "weight": canary_weight},
    ]
    return {"regions": {r.name: {APP: split} for r in REGIONS}}


@pytest.fixture(scope="module")
def noisy_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatorClient, PromQuery]]:
    state = tmp_path_factory.mktemp("noisy-traffic")
    config = SimulatorConfig(
        regions=REGIONS,
        apps=[AppSpec(APP, rate_rps=1000, base_latency_ms=100)],
        source="static",
        static=table(0),
        seed=1,
        noise=NOISE.to_dict(),
    )
    sim = simulator_process.start(config, state)
    handle = None
    try:
        handle = prom.start(state, prom.PrometheusConfig(scrape_interval_s=1.0), targets={"simulator": [sim.target]})
        prom.wait_for_target(handle, "simulator")
        yield sim.client(), PromQuery(handle.url, 1.0)
    finally:
        if handle:
            prom.stop(handle)
        simulator_process.stop(sim)


def error_ratio(prometheus: PromQuery, selector: str, window: str = "20s") -> float | None:
    errors = prometheus.scalar(f'sum(increase(http_requests_total{{{selector},code="500"}}[{window}]))')
    total = prometheus.scalar(f"sum(increase(http_requests_total{{{selector}}}[{window}]))")
    return None if errors is None or not total else errors / total


def test_noise_is_on_from_the_config_and_each_region_has_its_own_baseline_errors(
    noisy_lab: tuple[SimulatorClient, PromQuery],
) -> None:
    client, prometheus = noisy_lab
    assert client.noise() == NOISE
    client.set_static(table(0))
    # 700 and 300 rps: over 20 s the ratios' standard deviations are about 0.0006 and 0.003.
    ratios, took = wait_until(
        lambda: (
            (a := error_ratio(prometheus, 'region="a"')) is not None
            and (b := error_ratio(prometheus, 'region="b"')) is not None
            and abs(a - 0.005) < 0.003
            and abs(b - 0.05) < 0.015
            and (a, b)
        ),
        90,
        0.5,
        "baseline error ratios 0.5 % in a, 5 % in b",
    )
    print(f"\nbaseline error ratios a={ratios[0]:.4f} b={ratios[1]:.4f} after {took:.1f}s")


def test_a_latency_regression_of_twenty_percent_shows_in_the_median(
    noisy_lab: tuple[SimulatorClient, PromQuery],
) -> None:
    client, prometheus = noisy_lab
    client.set_static(table(50))
    client.set_fault(APP, CANARY_V, faults.latency_regression(20))
    try:
        p50 = 'histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{{version="{v}"}}[10s])))'

        def ratio() -> float | None:
            c, s = prometheus.scalar(p50.format(v=CANARY_V)), prometheus.scalar(p50.format(v=STABLE_V))
            return c / s if c and s and 1.1 < c / s < 1.35 else None

        measured, took = wait_until(ratio, 60, 0.5, "canary median about 1.2x the stable median")
        print(f"\nlatency +20 %: canary/stable p50 = {measured:.3f} after {took:.1f}s")
    finally:
        client.clear_faults()
        client.set_static(table(0))


def test_errors_start_minutes_after_the_version_first_takes_traffic(
    noisy_lab: tuple[SimulatorClient, PromQuery],
) -> None:
    client, prometheus = noisy_lab
    version = "1.2.0"  # never served before: its clock starts when it first takes traffic
    split = [
        {"version": STABLE_V, "track": "stable", "weight": 50},
        {"version": version, "track": "canary", "weight": 50},
    ]
    client.set_fault(APP, version, faults.errors_after(0.25, error_ratio=0.2))  # 15 s after rollout
    try:
        client.set_static({"regions": {r.name: {APP: split} for r in REGIONS}})
        started = time.monotonic()
        sel = f'region="a",version="{version}"'
        # Before the bomb goes off: only region a's baseline errors.
        wait_until(lambda: error_ratio(prometheus, sel, "5s") is not None, 30, 0.2, "the new version's traffic")
        early = error_ratio(prometheus, sel, "5s")
        early_at = time.monotonic() - started
        late, _ = wait_until(
            lambda: (r := error_ratio(prometheus, sel, "5s")) is not None and r > 0.15 and r,
            120,
            0.5,
            "errors after 15 s",
        )
        rose_at = time.monotonic() - started
        print(f"\nerrors after 15 s: ratio {early:.3f} at {early_at:.1f}s, {late:.3f} at {rose_at:.1f}s")
        if early_at < 12:  # measured before the bomb (a loaded machine may be late)
            assert early is not None and early < 0.05
        assert rose_at >= 15
    finally:
        client.clear_faults()
        client.set_static(table(0))

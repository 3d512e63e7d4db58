"""Helpers for the analysis integration tests: a real simulator (static weights; the engine needs
no clusters) scraped every second by a real Prometheus, both from deploy/lab.

Each test gets a fresh canary version, so the simulator's per-version clocks (errors after T
seconds, memory growth from first sight) start when that test routes traffic to it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from config.defaults import DEFAULT_CHECKS
from config.schema import Check
from deploy.lab import prometheus as prom
from deploy.lab.simulator.client import SimulatorClient
from deploy.lab.simulator.model import FaultProfile
from regions.analysis import Analyzer, PrometheusProvider, Target

APP, REGION, STABLE = "shop", "r1", "1.0.0"
APP_RPS = 200.0
INTERVAL = timedelta(seconds=2)
WINDOW = timedelta(seconds=4)  # rate() range: several 1 s scrapes, so a window is never one sample


def fast(checks: tuple[Check, ...] | list[Check], interval: timedelta = INTERVAL) -> list[Check]:
    return [c.model_copy(update={"interval": interval}) for c in checks]


def default_check(name: str) -> Check:
    return next(c for c in fast(DEFAULT_CHECKS) if c.name == name)


@dataclass
class AnalysisLab:
    client: SimulatorClient
    prometheus: prom.PrometheusHandle
    simulator_target: str
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def canary(self, fault: FaultProfile | None = None, weight: int = 20) -> Target:
        """Route `weight` % of the app's traffic to a new canary version with `fault`."""
        version = f"1.1.{next(self._versions)}"
        if fault is not None:
            self.client.set_fault(APP, version, fault)
        self.route(version, weight)
        return Target(app=APP, region=REGION, release="0123456789ab", version=version, stable_version=STABLE)

    def route(self, version: str, weight: int) -> None:
        self.client.set_static(
            {
                "regions": {
                    REGION: {
                        APP: [
                            {"version": STABLE, "track": "stable", "weight": 100 - weight},
                            {"version": version, "track": "canary", "weight": weight},
                        ]
                    }
                }
            }
        )

    def analyzer(self, target: Target, url: str | None = None, min_requests: int = 50) -> Analyzer:
        return Analyzer(
            PrometheusProvider(url or self.prometheus.url, timeout_s=2.0),
            target,
            min_requests=min_requests,
            window=WINDOW,
        )

    def wait_for_canary_data(self, target: Target, url: str | None = None, timeout_s: float = 15.0) -> None:
        """Until Prometheus has a full WINDOW of the canary's requests (deadline, not a sleep)."""
        promql = (
            f'sum(increase(http_requests_total{{app="{APP}",version="{target.version}"}}'
            f"[{int(WINDOW.total_seconds())}s]))"
        )
        deadline = time.monotonic() + timeout_s
        first: float | None = None
        while time.monotonic() < deadline:
            result = prom.query(url or self.prometheus.url, promql)
            if result:
                first = first or time.monotonic()
                if time.monotonic() - first >= WINDOW.total_seconds():
                    return
            time.sleep(0.2)
        raise AssertionError(f"no canary data for {target.version} within {timeout_s}s")


def start_prometheus(state: Path, simulator_target: str) -> prom.PrometheusHandle:
    handle = prom.start(state, prom.PrometheusConfig(scrape_interval_s=1.0), targets={"simulator": [simulator_target]})
    try:
        prom.wait_for_target(handle, "simulator")
    except BaseException:
        prom.stop(handle)
        raise
    return handle

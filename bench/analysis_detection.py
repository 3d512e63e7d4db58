"""How fast the default checks catch each fault profile, and how often they cry wolf.

Starts the lab's traffic simulator (static weights, no clusters) and a Prometheus scraping it every
second, then, with the default checks at a 2 s interval (queries over a 4 s range) and
minRequests 50:

1. detection: per fault profile, routes 20 % of `shop`'s traffic to a fresh canary version, lets a
   smoke window run on healthy data, injects the fault and reports the time from fault onset to
   the failing verdict (repeated --repeat times);
2. false alarms: healthy canaries of --noise-apps other apps run meanwhile; afterwards their
   history is cut into non-overlapping windows that are replayed through the same runner with an
   injected clock (instant queries evaluated at the window's instants), and every window that
   does not PASS is counted (FAIL = false alarm; INCONCLUSIVE reported separately).

    .venv/bin/python -m bench.analysis_detection [--repeat 3] [--windows 50] [--window-s 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from config.defaults import DEFAULT_CHECKS
from deploy.lab import prometheus as prom
from deploy.lab.simulator import process as simulator_process
from deploy.lab.simulator.model import AppSpec, FaultProfile, RegionSpec
from deploy.lab.simulator.server import SimulatorConfig
from regions.analysis import AnalysisRun, Analyzer, PrometheusProvider, RunState, Target, Verdict, run_analysis
from regions.smoke import detected_at

REGION, STABLE, RATE = "r1", "1.0.0", 200.0
INTERVAL, WINDOW = timedelta(seconds=2), timedelta(seconds=4)
CHECKS = [c.model_copy(update={"interval": INTERVAL}) for c in DEFAULT_CHECKS]
MIN_REQUESTS = 50


@dataclass(frozen=True)
class Profile:
    name: str
    fault: FaultProfile
    at_route: bool = False  # the fault counts from first traffic (time bomb, leak): set before routing


PROFILES = [
    Profile("error ratio 30%", FaultProfile(error_ratio=0.3)),
    Profile("error ratio 2%", FaultProfile(error_ratio=0.02)),
    Profile("latency +150 ms", FaultProfile(extra_latency_ms=150)),
    Profile("latency +60 ms", FaultProfile(extra_latency_ms=60)),
    Profile("errors 10% after 10 s", FaultProfile(error_ratio=0.1, errors_after_s=10), at_route=True),
    Profile("memory +6 MB/min", FaultProfile(memory_growth_bytes_per_min=6e6), at_route=True),
]


def now() -> datetime:
    return datetime.now(UTC)


class Table:
    """The simulator's static routing table, one canary per app (thread-safe updates)."""

    def __init__(self, client: Any) -> None:
        self.client, self.lock = client, threading.Lock()
        self.canaries: dict[str, tuple[str, int]] = {}

    def route(self, app: str, version: str, weight: int = 20) -> None:
        with self.lock:
            self.canaries[app] = (version, weight)
            self.client.set_static(
                {
                    "regions": {
                        REGION: {
                            a: [
                                {"version": STABLE, "track": "stable", "weight": 100 - w},
                                {"version": v, "track": "canary", "weight": w},
                            ]
                            for a, (v, w) in self.canaries.items()
                        }
                    }
                }
            )


def wait_for_data(url: str, app: str, version: str, timeout_s: float = 30.0) -> None:
    promql = f'sum(increase(http_requests_total{{app="{app}",version="{version}"}}[4s]))'
    deadline, first = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        if prom.query(url, promql):
            first = first or time.monotonic()
            if time.monotonic() - first >= WINDOW.total_seconds():
                return
        time.sleep(0.2)
    raise RuntimeError(f"no data for {app} {version} within {timeout_s}s")


def target(app: str, version: str) -> Target:
    return Target(app=app, region=REGION, release="bench0000000", version=version, stable_version=STABLE)


def detect(url: str, table: Table, client: Any, profile: Profile, n: int) -> float | None:
    """Seconds from fault onset to the failing verdict (None: not detected in 60 s)."""
    version = f"2.{PROFILES.index(profile)}.{n}"
    routed: datetime | None = None
    if profile.at_route:
        client.set_fault("shop", version, profile.fault)
    table.route("shop", version)
    routed = now()
    wait_for_data(url, "shop", version)  # a canary without a window of data is inconclusive
    onset: list[datetime] = []
    if profile.at_route:
        onset.append(routed + timedelta(seconds=profile.fault.errors_after_s or 0))
    polls = 0

    def on_poll(run: AnalysisRun, state: RunState) -> None:
        nonlocal polls
        polls += 1
        if not profile.at_route and polls == 2:
            client.set_fault("shop", version, profile.fault)
            onset.append(now())

    analyzer = Analyzer(
        PrometheusProvider(url, timeout_s=2), target("shop", version), min_requests=MIN_REQUESTS, window=WINDOW
    )
    result = run_analysis(
        analyzer, CHECKS, duration=timedelta(seconds=60), on_poll=on_poll, deadline=now() + timedelta(seconds=90)
    )
    client.clear_fault("shop", version)
    found = detected_at(result.run, CHECKS)
    if result.outcome is not Verdict.FAILURE or found is None:
        print(f"  {profile.name} #{n}: {result.outcome.value} ({result.state.reason})", file=sys.stderr)
        return None
    failing = result.state.reason.split(":")[0]
    print(f"  {profile.name} #{n}: {(found - onset[0]).total_seconds():.2f}s ({failing})", file=sys.stderr)
    return (found - onset[0]).total_seconds()


class ReplayClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=max(seconds, 0.001))


def replay_window(url: str, app: str, version: str, start: datetime, length: timedelta) -> Verdict:
    clock = ReplayClock(start)
    analyzer = Analyzer(
        PrometheusProvider(url, timeout_s=5), target(app, version), min_requests=MIN_REQUESTS, window=WINDOW
    )
    result = run_analysis(analyzer, CHECKS, duration=length, clock=clock, sleep=clock.sleep)
    if result.outcome is not Verdict.SUCCESS:
        print(f"  noise {app} @ {start:%H:%M:%S}: {result.outcome.value} ({result.state.reason})", file=sys.stderr)
    return result.outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="detections per fault profile")
    parser.add_argument("--windows", type=int, default=50, help="noise-only windows (>= 50)")
    parser.add_argument("--window-s", type=float, default=10.0, help="length of a noise window")
    parser.add_argument("--noise-apps", type=int, default=5, help="healthy canaries recorded in parallel")
    args = parser.parse_args(argv)

    noise_apps = [f"noise-{i}" for i in range(args.noise_apps)]
    apps = [AppSpec("shop", rate_rps=RATE)] + [AppSpec(a, rate_rps=RATE) for a in noise_apps]
    state = Path(tempfile.mkdtemp(prefix="bench-analysis-"))
    sim = simulator_process.start(
        SimulatorConfig(regions=[RegionSpec(REGION, REGION, 1.0)], apps=apps, source="static", static={}, seed=5), state
    )
    handle = None
    try:
        handle = prom.start(state, prom.PrometheusConfig(scrape_interval_s=1.0), targets={"simulator": [sim.target]})
        prom.wait_for_target(handle, "simulator")
        client = sim.client()
        table = Table(client)
        for app in noise_apps:
            table.route(app, "1.1.0")
        noise_from = now()

        print("detection (default checks, 2 s interval, 20 % canary of 200 rps):", file=sys.stderr)
        results: dict[str, list[float | None]] = {}
        for profile in PROFILES:
            results[profile.name] = [detect(handle.url, table, client, profile, n) for n in range(args.repeat)]

        # Noise: enough history for the windows (data must also fill the first query range).
        per_app = -(-args.windows // len(noise_apps))
        needed = noise_from + WINDOW + timedelta(seconds=2) + per_app * timedelta(seconds=args.window_s + 1)
        while now() < needed + timedelta(seconds=2):
            time.sleep(min(5.0, max(0.1, (needed - now()).total_seconds() + 2)))
        outcomes: list[Verdict] = []
        for app in noise_apps:
            start = noise_from + WINDOW + timedelta(seconds=2)
            for _ in range(per_app):
                outcomes.append(replay_window(handle.url, app, "1.1.0", start, timedelta(seconds=args.window_s)))
                start += timedelta(seconds=args.window_s + 1)
    finally:
        if handle is not None:
            prom.stop(handle)
        simulator_process.stop(sim)
        shutil.rmtree(state, ignore_errors=True)

    print("\nfault profile             detections   onset -> failing verdict (s): median / max")
    for name, times in results.items():
        got = [t for t in times if t is not None]
        figures = f"{statistics.median(got):5.2f} / {max(got):5.2f}" if got else "  -- / --"
        print(f"{name:<25} {len(got):>3}/{len(times):<3}      {figures}")
    fails = sum(o is Verdict.FAILURE for o in outcomes)
    inconclusive = sum(o is Verdict.INCONCLUSIVE for o in outcomes)
    print(
        f"\nnoise-only windows: {len(outcomes)} x {args.window_s:g} s, {len(CHECKS)} checks each: "
        f"{fails} false alarm(s) (FAIL), {inconclusive} inconclusive, "
        f"{len(outcomes) - fails - inconclusive} passed"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

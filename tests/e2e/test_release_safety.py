"""Release safety in CI (issue 14 item 6): the release-safety bench's own functions
(`bench/release_safety.py`: its plan, `run_release`, `our_noise_alarms`, `report`) on a small
scenario set in the session lab. Two bad releases the canary region can see (errors +2 %, and a
time bomb: errors 20 % from 3 s after the version's first traffic) go through the controller with
the bench's plan (fixed limits in the canary step, the sequential judge in the smoke windows, the
canary's the longest) on the simulator's noisy traffic, and 10 noise-only smoke windows are judged
in-process. Asserts the suite's first two goals: every bad release stopped in the first wave that
can see it, measured from Prometheus as the bench measures it (no region of a later wave ever
served the version), and 0 false rollbacks."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench import release_safety as bench
from deploy.lab import services
from deploy.lab.controllerproc import ControllerProcess
from deploy.lab.simulator import faults
from deploy.lab.simulator.client import SimulatorClient
from deploy.lab.simulator.model import AppSpec, FaultProfile
from tests.e2e.conftest import APP, WEBHOOK_SECRET, Shop

pytestmark = pytest.mark.e2e

PLAN = bench.bench_plan()
# The module's first release (1.4.0, nothing to compare with) goes out quickly: the bench's plan
# with its fixed limits only and 2 s smoke windows. The bench's whole plan comes with the first bad
# release, in the same commit.
PLAN_OVERRIDES: dict[str, Any] = {
    **PLAN,
    "smokeWindow": "2s",
    "analysis": {**PLAN["analysis"], "checks": [c for c in PLAN["analysis"]["checks"] if "judge" not in c]},
}
# Versions no other module uses: the simulator's faults are per version and outlive modules.
SCENARIOS = (
    ("7.0.0", bench.Scenario("errors +2 %", FaultProfile(error_ratio=0.02))),
    ("7.1.0", bench.Scenario("errors 20 % from 3 s after rollout", faults.errors_after(3 / 60, 0.2), onset_delay_s=3)),
)
NOISE_WINDOWS = 10
SEED = 7


def test_bad_releases_stop_in_their_first_wave_and_noise_rolls_nothing_back(
    shop: Shop, lab_traffic: services.ServicesHandle, simulator: SimulatorClient
) -> None:
    began = time.monotonic()
    regions = set(shop.lab.region_contexts)
    shares = {r: s for r, s in services.region_shares().items() if r in regions}
    assert "eu-canary" in shares, "the test needs the canary region (ROLLOUT_LAB_REGIONS)"
    # the canary region gets the bench's rate (about 220 rps), whatever regions this lab runs
    canary_rps = (
        bench.RATE_RPS * shares["eu-canary"] / sum(s for r, s in services.region_shares().items() if r in bench.REGIONS)
    )
    simulator.set_apps([AppSpec(APP, APP, canary_rps * sum(shares.values()) / shares["eu-canary"])])
    # the bench's controller: judge samples one interval plus one scrape apart (independent)
    controller = ControllerProcess(
        shop.identities.controller,
        shop.lab.home_context,
        shop.git.url,
        shop.state_dir,
        shop.prometheus_url,
        poll_seconds=2.0,
        extra_args=["--analysis-window-seconds", f"{bench.ANALYSIS_WINDOW_S:g}"],
        env={"ROLLOUT_WEBHOOK_SECRET": WEBHOOK_SECRET},
    ).start()
    shop.controllers.append(controller)
    controller.wait_healthy()
    clone = shop.clone_dir
    world = bench.World(
        shop.lab,
        lab_traffic,
        shop.git,
        clone,
        controller,
        (clone / f"apps/{APP}/manifests/deployment.yaml").read_text(),
        (clone / f"apps/{APP}/values.yaml").read_text(),
    )
    initial = world.wait_release("1.4.0", {"Succeeded"}, 120)
    world.waves = [{"name": w["name"], "regions": list(w["regions"])} for w in initial["spec"]["waves"]]
    plan_path = f"apps/{APP}/rollout.yaml"
    plan = {plan_path: bench.plan_changes(lambda p: (clone / p).read_text(), regions)[plan_path]}
    print(f"\n1.4.0 promoted at {time.monotonic() - began:.0f}s; waves {world.waves}")

    outcomes = []
    for i, (version, scenario) in enumerate(SCENARIOS):
        if i == 0:
            # a full judge lookback of 1.4.0 where the faults are seen first (later waves' regions
            # never get a bad version). Not before the time bomb: after a rollback (drained first)
            # that takes 24 s, and the time bomb goes off in the canary step (3 s after the
            # version's first traffic), whose fixed limits stop it and need no baseline.
            bench._wait_baseline(world, "1.4.0", world.waves[0]["regions"])
        outcomes.append(bench.run_release(world, scenario, version, SEED * 1000 + i, print, plan if i == 0 else None))
    alarms = bench.our_noise_alarms(NOISE_WINDOWS, SEED, canary_rps)
    lines: list[str] = []
    line = bench.report(outcomes, NOISE_WINDOWS, alarms, {}, shares, lines.append)
    print("\n".join(lines), f"\n{line}\nin {time.monotonic() - began:.0f}s")

    for o in outcomes:
        assert o.first_visible_wave == 0, f"{o.scenario.name}: the canary wave must see it ({o.visible})"
        assert o.stopped_in_first_wave, f"{o.scenario.name} not stopped in its first wave:\n" + "\n".join(lines)
    assert alarms == 0, f"{alarms} of {NOISE_WINDOWS} noise-only windows failed"
    assert line.startswith(f"safety: stopped_in_first_wave=2/2 false_rollbacks=0/{NOISE_WINDOWS} "), line

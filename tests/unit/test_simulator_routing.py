"""Pure routing math and fault profiles of the traffic simulator (no sockets, no clusters)."""

from __future__ import annotations

import random

import pytest

from deploy.lab.simulator import faults
from deploy.lab.simulator.engine import Engine, split_count
from deploy.lab.simulator.model import (
    TRACK_LABEL,
    VERSION_LABEL,
    Answer,
    AppSpec,
    AppView,
    BackendRef,
    FaultProfile,
    Pod,
    RegionSpec,
    Route,
    Service,
    Track,
)
from deploy.lab.simulator.routing import (
    app_view,
    parse_dns_weights,
    parse_pod,
    parse_route,
    plan,
    region_rates,
    region_split,
)

SHARES = {"us-east": 0.45, "ap-east": 0.35, "eu-west": 0.2}
STABLE, CANARY = Track("1.0.0", "stable"), Track("1.1.0", "canary")


def pod(track: Track, ready: bool = True, app: str = "shop") -> Pod:
    labels = {"app.kubernetes.io/name": app, VERSION_LABEL: track.version, TRACK_LABEL: track.track}
    return Pod(labels, ready)


def canary_view(stable_w: int | None, canary_w: int | None, pods: tuple[Pod, ...] | None = None) -> AppView:
    refs = tuple(
        BackendRef(name, 1 if w is None else w) for name, w in (("shop-stable", stable_w), ("shop-canary", canary_w))
    )
    services = {
        "shop": Service("shop", {"app.kubernetes.io/name": "shop"}),
        "shop-stable": Service("shop-stable", {"app.kubernetes.io/name": "shop", TRACK_LABEL: "stable"}),
        "shop-canary": Service("shop-canary", {"app.kubernetes.io/name": "shop", TRACK_LABEL: "canary"}),
    }
    return AppView(Route(refs), services, pods if pods is not None else (pod(STABLE), pod(STABLE), pod(CANARY)))


# --- global weights ---------------------------------------------------------------------------


def test_region_rates_follow_shares_when_all_weights_full() -> None:
    rates = region_rates(100.0, SHARES, {})
    assert rates == pytest.approx({"us-east": 45.0, "ap-east": 35.0, "eu-west": 20.0})


def test_drained_region_gets_nothing_and_the_others_absorb_its_share() -> None:
    rates = region_rates(100.0, SHARES, {"ap-east": 0})
    assert rates["ap-east"] == 0.0
    assert sum(rates.values()) == pytest.approx(100.0)
    assert rates["us-east"] / rates["eu-west"] == pytest.approx(0.45 / 0.2)


def test_partial_weight_scales_a_region() -> None:
    rates = region_rates(100.0, {"a": 0.5, "b": 0.5}, {"a": 50, "b": 100})
    assert rates == pytest.approx({"a": 100 / 3, "b": 200 / 3})


def test_all_regions_drained_means_no_traffic() -> None:
    assert region_rates(100.0, SHARES, dict.fromkeys(SHARES, 0)) == dict.fromkeys(SHARES, 0.0)


def test_dns_weights_missing_record_or_weight_means_100() -> None:
    endpoint = {
        "spec": {
            "endpoints": [
                {"setIdentifier": "us-east", "providerSpecific": [{"name": "aws/weight", "value": "0"}]},
                {"setIdentifier": "ap-east", "providerSpecific": []},
                {"setIdentifier": "elsewhere", "providerSpecific": [{"name": "aws/weight", "value": "5"}]},
            ]
        }
    }
    assert parse_dns_weights(endpoint, SHARES) == {"us-east": 0.0, "ap-east": 100.0, "eu-west": 100.0}
    assert parse_dns_weights(None, ["a"]) == {"a": 100.0}


# --- inside a region --------------------------------------------------------------------------


def test_httproute_weights_split_between_stable_and_canary() -> None:
    split = region_split(canary_view(90, 10), "shop")
    assert split == pytest.approx({Answer(STABLE): 0.9, Answer(CANARY): 0.1})


def test_missing_backend_weight_counts_as_one() -> None:
    split = region_split(canary_view(None, None), "shop")
    assert split == pytest.approx({Answer(STABLE): 0.5, Answer(CANARY): 0.5})


def test_zero_weight_backend_gets_nothing() -> None:
    assert region_split(canary_view(100, 0), "shop") == {Answer(STABLE): 1.0}


def test_without_route_versions_share_by_ready_pods_of_the_entry_service() -> None:
    view = AppView(
        None,
        {"shop": Service("shop", {"app.kubernetes.io/name": "shop"})},
        (pod(STABLE), pod(STABLE), pod(STABLE), pod(CANARY), pod(CANARY, ready=False)),
    )
    assert region_split(view, "shop") == pytest.approx({Answer(STABLE): 0.75, Answer(CANARY): 0.25})


def test_backend_without_ready_pods_is_unserved_under_the_selector_s_track() -> None:
    split = region_split(canary_view(50, 50, pods=(pod(STABLE), pod(CANARY, ready=False))), "shop")
    assert split == pytest.approx({Answer(STABLE): 0.5, Answer(Track("unknown", "canary"), served=False): 0.5})


def test_blue_green_active_service_selects_the_color() -> None:
    blue, green = Track("1.0.0", "stable"), Track("2.0.0", "stable")
    pods = (
        Pod(
            {
                "app.kubernetes.io/name": "shop",
                VERSION_LABEL: "1.0.0",
                TRACK_LABEL: "stable",
                "rollout.dev/color": "blue",
            }
        ),
        Pod(
            {
                "app.kubernetes.io/name": "shop",
                VERSION_LABEL: "2.0.0",
                TRACK_LABEL: "stable",
                "rollout.dev/color": "green",
            }
        ),
    )
    svc = {"shop": Service("shop", {"app.kubernetes.io/name": "shop", "rollout.dev/color": "green"})}
    assert region_split(AppView(None, svc, pods), "shop") == {Answer(green): 1.0}
    assert Answer(blue) not in region_split(AppView(None, svc, pods), "shop")


def test_app_not_deployed_gets_no_requests() -> None:
    assert region_split(None, "shop") == {}
    assert app_view("shop", routes=[], services=[], pods=[]) is None


def test_plan_combines_global_and_regional_split() -> None:
    regions = [RegionSpec("a", "a", 0.5), RegionSpec("b", "b", 0.5)]
    views = {"a": {"shop": canary_view(80, 20)}, "b": {"shop": canary_view(100, 0)}}
    rates = plan([AppSpec("shop", rate_rps=100)], regions, {"shop": {"a": 100, "b": 100}}, views)
    assert rates == pytest.approx(
        {
            ("a", "shop", Answer(STABLE)): 40.0,
            ("a", "shop", Answer(CANARY)): 10.0,
            ("b", "shop", Answer(STABLE)): 50.0,
        }
    )
    drained = plan([AppSpec("shop", rate_rps=100)], regions, {"shop": {"a": 0}}, views)
    assert drained == pytest.approx({("b", "shop", Answer(STABLE)): 100.0})


def test_parse_route_and_pod_from_kubernetes_objects() -> None:
    route = parse_route(
        {
            "metadata": {"name": "shop", "namespace": "shop"},
            "spec": {
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "shop-stable", "port": 80, "weight": 70},
                            {"name": "shop-canary", "port": 80},
                            {"name": "elsewhere", "namespace": "other", "weight": 5},
                        ]
                    }
                ]
            },
        }
    )
    assert route == Route((BackendRef("shop-stable", 70), BackendRef("shop-canary", 1)))
    running = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    assert parse_pod({"metadata": {"labels": {"a": "b"}}, "status": running}).ready
    assert not parse_pod({"metadata": {"deletionTimestamp": "x"}, "status": running}).ready
    assert not parse_pod({"metadata": {}, "status": {"phase": "Pending"}}).ready


# --- faults over time -------------------------------------------------------------------------


def test_delayed_errors_start_after_first_traffic() -> None:
    profile = FaultProfile(error_ratio=0.5, errors_after_s=30)
    assert faults.error_ratio(profile, None, 100.0) == 0.0
    assert faults.error_ratio(profile, 100.0, 129.9) == 0.0
    assert faults.error_ratio(profile, 100.0, 130.0) == 0.5


def test_memory_grows_per_minute_from_first_seen() -> None:
    profile = FaultProfile(memory_growth_bytes_per_min=1_000_000)
    assert faults.memory_bytes(profile, 100.0, 10.0, 10.0) == 100.0
    assert faults.memory_bytes(profile, 100.0, 10.0, 130.0) == 2_000_100.0


def test_fault_profile_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        FaultProfile(error_ratio=1.5)
    with pytest.raises(ValueError):
        FaultProfile.from_dict({"error_rate": 0.1})


def test_split_count_carries_fractions_so_totals_are_exact() -> None:
    carry, total = 0.0, 0
    for _ in range(100):
        n, carry = split_count(0.3, carry)
        total += n
    assert total == 30


def _run(engine: Engine, rates: dict, profiles: dict, seconds: float, start: float = 0.0, dt: float = 0.1) -> float:
    apps = {"shop": AppSpec("shop", base_latency_ms=20)}
    present = {(r, a, ans.track) for (r, a, ans) in rates}
    now = start
    for _ in range(round(seconds / dt)):
        now += dt
        engine.step(rates, present, apps, profiles, now, dt)
    return now


def _codes(engine: Engine, version: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, _, v, _, code), n in engine.totals().items():
        if v == version:
            out[code] = out.get(code, 0) + n
    return out


def test_engine_error_ratio_and_exact_counts() -> None:
    engine = Engine(random.Random(1))
    rates = {("a", "shop", Answer(STABLE)): 90.0, ("a", "shop", Answer(CANARY)): 10.0}
    _run(engine, rates, {("shop", "1.1.0"): FaultProfile(error_ratio=0.2)}, seconds=10)
    assert _codes(engine, "1.0.0") == {"200": 900, "500": 0}
    assert _codes(engine, "1.1.0") == {"200": 80, "500": 20}


def test_engine_delayed_errors_count_from_first_traffic() -> None:
    engine = Engine(random.Random(1))
    rates = {("a", "shop", Answer(CANARY)): 10.0}
    profile = {("shop", "1.1.0"): FaultProfile(error_ratio=1.0, errors_after_s=5)}
    now = _run(engine, rates, profile, seconds=4.9, start=1000.0)
    assert _codes(engine, "1.1.0").get("500", 0) == 0
    _run(engine, rates, profile, seconds=2.0, start=now)
    assert 10 <= _codes(engine, "1.1.0")["500"] <= 21


def test_engine_latency_fault_shifts_the_histogram() -> None:
    engine = Engine(random.Random(1))
    rates = {("a", "shop", Answer(STABLE)): 50.0, ("a", "shop", Answer(CANARY)): 50.0}
    _run(engine, rates, {("shop", "1.1.0"): FaultProfile(extra_latency_ms=300)}, seconds=5)
    fams = {f.name: f for f in engine.collect()}
    sums = {
        s.labels["version"]: s.value for s in fams["http_request_duration_seconds"].samples if s.name.endswith("_sum")
    }
    counts = {
        s.labels["version"]: s.value for s in fams["http_request_duration_seconds"].samples if s.name.endswith("_count")
    }
    assert sums["1.0.0"] / counts["1.0.0"] == pytest.approx(0.02, rel=0.2)
    assert sums["1.1.0"] / counts["1.1.0"] == pytest.approx(0.32, rel=0.2)


def test_engine_drain_stops_requests_at_once() -> None:
    engine = Engine(random.Random(1))
    now = _run(engine, {("a", "shop", Answer(STABLE)): 7.77}, {}, seconds=1)
    before = engine.totals()
    _run(engine, {}, {}, seconds=5, start=now)
    assert engine.totals() == before


def test_engine_memory_leak_and_vanishing_versions() -> None:
    engine = Engine(random.Random(1))
    apps = {"shop": AppSpec("shop", base_memory_bytes=1000)}
    profiles = {("shop", "1.1.0"): FaultProfile(memory_growth_bytes_per_min=600)}
    engine.step({}, {("a", "shop", CANARY)}, apps, profiles, now=0.0, dt=0.1)
    engine.step({}, {("a", "shop", CANARY)}, apps, profiles, now=30.0, dt=0.1)
    mem = [s for f in engine.collect() if f.name == "app_memory_bytes" for s in f.samples]
    assert [s.value for s in mem] == [1300.0]
    engine.step({}, set(), apps, profiles, now=31.0, dt=0.1)
    assert not [s for f in engine.collect() if f.name == "app_memory_bytes" for s in f.samples]


def test_simulator_tick_with_a_static_table_routes_and_drains() -> None:
    from deploy.lab.simulator.server import Simulator, SimulatorConfig

    split = [
        {"version": "1.0.0", "track": "stable", "weight": 3},
        {"version": "1.1.0", "track": "canary", "weight": 1},
    ]
    table = {"regions": {r: {"shop": split} for r in ("a", "b")}}
    config = SimulatorConfig(
        regions=[RegionSpec("a", "a", 0.5), RegionSpec("b", "b", 0.5)],
        apps=[AppSpec("shop", rate_rps=80)],
        source="static",
        static=table,
        seed=1,
    )
    sim = Simulator(config)
    sim.tick(now=1.0, dt=1.0)
    assert {(r, a, ans.track.track): rps for (r, a, ans), rps in sim.rates().items()} == {
        ("a", "shop", "stable"): 30.0, ("a", "shop", "canary"): 10.0,
        ("b", "shop", "stable"): 30.0, ("b", "shop", "canary"): 10.0,
    }  # fmt: skip
    sim.source.set({**table, "weights": {"shop": {"a": 0}}})  # type: ignore[attr-defined]
    sim.tick(now=2.0, dt=1.0)
    assert {r for (r, _, _) in sim.rates()} == {"b"}
    assert sum(n for (r, *_), n in sim.engine.totals().items() if r == "b") == 40 + 80

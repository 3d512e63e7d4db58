"""bench/scale.py's arithmetic on the controller's API-call counts (pure; the run itself is the lab's)."""

from __future__ import annotations

from bench.scale import region_reads


def test_region_reads_count_the_region_gets_but_namespaces_discovery_and_home() -> None:
    calls = {
        ("eu-west", "GET", "configmaps"): 20.0,
        ("us-east", "GET", "configmaps"): 20.0,
        ("eu-west", "GET", "secrets"): 20.0,
        ("eu-west", "GET", "namespaces"): 20.0,
        ("eu-west", "GET", "discovery"): 7.0,
        ("eu-west", "PATCH", "deployments"): 20.0,
        ("eu-west", "WATCH", "deployments"): 1.0,
        ("home", "GET", "releases"): 3.0,
    }
    assert region_reads(calls) == (60.0, 2)
    assert region_reads({}) == (0.0, 0)

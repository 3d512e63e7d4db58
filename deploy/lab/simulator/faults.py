"""Fault profiles over time, as pure functions of the profile, the clock and first-seen times."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from .model import HEALTHY, FaultProfile


def in_region(profile: FaultProfile, region: str) -> FaultProfile:
    """The profile as it applies in `region`: healthy outside its `regions` (if it names any)."""
    return profile if not profile.regions or region in profile.regions else HEALTHY


def error_ratio(profile: FaultProfile, first_traffic_at: float | None, now: float) -> float:
    """Share of requests answered 500 at `now` (a delayed fault counts from first traffic)."""
    if profile.errors_after_s is None:
        return profile.error_ratio
    if first_traffic_at is None or now - first_traffic_at < profile.errors_after_s:
        return 0.0
    return profile.error_ratio


def latency_ms(profile: FaultProfile, base_ms: float, first_traffic_at: float | None = None, now: float = 0.0) -> float:
    """Median latency at `now`; a creeping profile grows from the version's first traffic."""
    ms = (base_ms + profile.extra_latency_ms) * profile.latency_factor
    if profile.latency_growth_per_min and first_traffic_at is not None:
        ms *= 1.0 + profile.latency_growth_per_min * max(0.0, now - first_traffic_at) / 60.0
    return ms


def memory_bytes(profile: FaultProfile, base_bytes: float, first_seen_at: float, now: float) -> float:
    minutes = max(0.0, now - first_seen_at) / 60.0
    return base_bytes + profile.memory_growth_bytes_per_min * minutes


# Named faults of realistic size (issue 14), for benchmarks and tests.
def small_error_increase(points: float = 0.3) -> FaultProfile:
    """Errors up by `points` percentage points (on top of the region's baseline when noisy)."""
    return FaultProfile(error_ratio=points / 100.0)


def latency_regression(percent: float = 20.0) -> FaultProfile:
    """Every request `percent` % slower."""
    return FaultProfile(latency_factor=1.0 + percent / 100.0)


def errors_after(minutes: float, error_ratio: float = 0.02) -> FaultProfile:
    """`error_ratio` of requests fail from `minutes` after the version first took traffic in a
    region (that region's rollout), none before."""
    return FaultProfile(error_ratio=error_ratio, errors_after_s=minutes * 60.0)


def latency_creep(percent_per_min: float = 5.0) -> FaultProfile:
    """Latency up by `percent_per_min` % of its base every minute the version serves in a region
    (a slow leak seen as latency: nothing at rollout, worse and worse afterwards)."""
    return FaultProfile(latency_growth_per_min=percent_per_min / 100.0)


def only_where(profile: FaultProfile, characteristics: Mapping[str, Mapping[str, str]], **wanted: str) -> FaultProfile:
    """`profile` restricted to the regions whose characteristics match every `wanted` pair, e.g.
    `only_where(small_error_increase(), chars, locale="ja")` (chars: region -> characteristics, as
    in the regions' files). No matching region is an error: the fault would silently vanish."""
    regions = tuple(sorted(r for r, c in characteristics.items() if all(c.get(k) == v for k, v in wanted.items())))
    if not regions:
        raise ValueError(f"no region has characteristics {wanted}; known: {dict(characteristics)}")
    return replace(profile, regions=regions)

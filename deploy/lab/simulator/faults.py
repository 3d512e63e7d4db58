"""Fault profiles over time, as pure functions of the profile, the clock and first-seen times."""

from __future__ import annotations

from .model import FaultProfile


def error_ratio(profile: FaultProfile, first_traffic_at: float | None, now: float) -> float:
    """Share of requests answered 500 at `now` (a delayed fault counts from first traffic)."""
    if profile.errors_after_s is None:
        return profile.error_ratio
    if first_traffic_at is None or now - first_traffic_at < profile.errors_after_s:
        return 0.0
    return profile.error_ratio


def latency_ms(profile: FaultProfile, base_ms: float) -> float:
    return (base_ms + profile.extra_latency_ms) * profile.latency_factor


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

"""Value types shared by the simulator's pure logic, its cluster adapter and its control API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

VERSION_LABEL = "app.kubernetes.io/version"
TRACK_LABEL = "rollout.dev/track"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class FaultProfile:
    """How one (app, version) misbehaves. The default is healthy; fields combine.

    error_ratio: share of its requests answered 500.
    extra_latency_ms: added to every request's latency.
    errors_after_s: if set, error_ratio applies only from this many seconds after the version first
        took traffic in a region (a time bomb per region, as each region runs its own pods).
    memory_growth_bytes_per_min: app_memory_bytes grows this fast from when the version's pods
        first appear in a region (a slow leak).
    latency_factor: multiplies every request's latency (1.2: a +20 % regression), after
        extra_latency_ms.
    latency_growth_per_min: latency creeps up by this share of itself per minute since the version
        first took traffic in a region (0.05: +5 %/min, a leak-like slow degradation).
    regions: the profile applies only in these regions (empty: everywhere), e.g. the regions of
        one locale (`faults.only_where`).

    With traffic noise on (`TrafficNoise`), error_ratio adds to the region's baseline error rate.
    """

    error_ratio: float = 0.0
    extra_latency_ms: float = 0.0
    errors_after_s: float | None = None
    memory_growth_bytes_per_min: float = 0.0
    latency_factor: float = 1.0
    latency_growth_per_min: float = 0.0
    regions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))  # JSON gives a list
        if self.latency_growth_per_min < 0:
            raise ValueError(f"latency_growth_per_min must be >= 0, got {self.latency_growth_per_min}")
        if not 0.0 <= self.error_ratio <= 1.0:
            raise ValueError(f"error_ratio must be within [0, 1], got {self.error_ratio}")
        if self.extra_latency_ms < 0 or self.memory_growth_bytes_per_min < 0:
            raise ValueError("extra_latency_ms and memory_growth_bytes_per_min must be >= 0")
        if self.latency_factor <= 0:
            raise ValueError(f"latency_factor must be > 0, got {self.latency_factor}")
        if self.errors_after_s is not None and self.errors_after_s < 0:
            raise ValueError("errors_after_s must be >= 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultProfile:
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown fault profile fields: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


HEALTHY = FaultProfile()


@dataclass(frozen=True)
class TrafficNoise:
    """Realistic traffic, per simulator (off unless configured: counts are then exact).

    Request counts per tick are drawn from a Poisson law around the planned rate (so a region's
    volume follows its traffic share on average, and a low-traffic region really is sparse);
    each request fails (500) with the region's baseline error rate (`region_error_rates`, else
    `error_rate`) plus its version's fault `error_ratio`; latency is log-normal around the app's
    base latency with a heavy tail: a share `tail_share` of requests takes
    `tail_scale x median x (1 + Pareto(tail_alpha))` (capped at `tail_cap_s`). `seed` makes the
    draws reproducible (ticks follow the wall clock, so a run is reproducible in law, not in count).
    """

    seed: int | None = None
    error_rate: float = 0.001
    region_error_rates: dict[str, float] = field(default_factory=dict, hash=False)
    tail_share: float = 0.02
    tail_alpha: float = 1.5
    tail_scale: float = 3.0
    tail_cap_s: float = 30.0

    def __post_init__(self) -> None:
        rates = [self.error_rate, *self.region_error_rates.values()]
        if not all(0.0 <= r <= 1.0 for r in rates):
            raise ValueError(f"error rates must be within [0, 1], got {rates}")
        if not 0.0 <= self.tail_share <= 1.0 or self.tail_alpha <= 0 or self.tail_scale <= 0 or self.tail_cap_s <= 0:
            raise ValueError("tail_share must be within [0, 1]; tail_alpha, tail_scale and tail_cap_s > 0")

    def error_rate_of(self, region: str) -> float:
        return self.region_error_rates.get(region, self.error_rate)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrafficNoise:
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown traffic noise fields: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AppSpec:
    """An application the simulator sends traffic to: `rate_rps` is its global request rate."""

    name: str
    namespace: str = ""
    rate_rps: float = 20.0
    base_latency_ms: float = 20.0
    base_memory_bytes: float = 128 * 1024 * 1024

    def __post_init__(self) -> None:
        if not self.namespace:
            object.__setattr__(self, "namespace", self.name)  # the conventions' default
        if self.rate_rps < 0 or self.base_latency_ms <= 0:
            raise ValueError("rate_rps must be >= 0 and base_latency_ms > 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppSpec:
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RegionSpec:
    name: str
    context: str
    traffic_share: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegionSpec:
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Track:
    """Who answers a request: a version and a track (the labels of the Ready pod)."""

    version: str
    track: str


@dataclass(frozen=True)
class Pod:
    labels: dict[str, str] = field(hash=False)
    ready: bool = True

    @property
    def answerer(self) -> Track:
        return Track(self.labels.get(VERSION_LABEL, UNKNOWN), self.labels.get(TRACK_LABEL, UNKNOWN))


@dataclass(frozen=True)
class Service:
    name: str
    selector: dict[str, str] | None = field(default=None, hash=False)  # None: no selector, no pods


@dataclass(frozen=True)
class BackendRef:
    service: str
    weight: int = 1


@dataclass(frozen=True)
class Route:
    """HTTPRoute `<app>`: only rules[0].backendRefs matter to the simulator."""

    backends: tuple[BackendRef, ...]


@dataclass(frozen=True)
class AppView:
    """What one region's cluster says about one app (read once per poll)."""

    route: Route | None
    services: dict[str, Service] = field(default_factory=dict, hash=False)
    pods: tuple[Pod, ...] = ()


@dataclass(frozen=True)
class Answer:
    """One destination of an app's traffic in a region: who answers, and whether it can answer."""

    track: Track
    served: bool = True  # False: no Ready endpoint behind the chosen backend -> 503

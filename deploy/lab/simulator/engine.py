"""The simulation: turns a rate plan into counters, latency histograms and memory gauges, per tick.

By default counts are deterministic (a fractional carry per series, no Poisson noise), so a region
with rate 0 gets exactly zero requests and tests do not flake; only latencies are sampled. With a
`TrafficNoise` (per simulator, settable at run time) counts are Poisson draws, errors binomial at the
region's baseline rate plus the fault's, and latency heavy-tailed; a rate of 0 still draws zero.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from . import faults
from .model import HEALTHY, Answer, AppSpec, FaultProfile, Track, TrafficNoise
from .routing import RatePlan

# Fine enough around typical latencies for p99 checks, wide enough for +seconds regressions.
BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25,
    0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0,
)  # fmt: skip
LATENCY_SIGMA = 0.25  # log-normal spread: p99 is about 1.8x the median
UNSERVED_LATENCY_S = 0.001  # a gateway's 503 for a backend without endpoints is immediate
MAX_SAMPLES_PER_TICK = 200  # above this, samples stand for several requests each

SeriesKey = tuple[str, str, str, str]  # region, app, version, track


@dataclass
class _Histogram:
    buckets: list[int]
    sum: float = 0.0
    count: int = 0


@dataclass
class _State:
    requests: dict[tuple[str, str, str, str, str], int] = field(default_factory=dict)
    carry: dict[tuple[str, str, Answer], float] = field(default_factory=dict)
    error_carry: dict[SeriesKey, float] = field(default_factory=dict)
    histograms: dict[SeriesKey, _Histogram] = field(default_factory=dict)
    memory: dict[SeriesKey, float] = field(default_factory=dict)
    # per (region, app, version): a version's canary and, once promoted, stable track share one
    # clock, so a time bomb or a creep does not restart at promotion
    first_traffic: dict[tuple[str, str, str], float] = field(default_factory=dict)
    first_seen: dict[SeriesKey, float] = field(default_factory=dict)


def split_count(expected: float, carry: float) -> tuple[int, float]:
    """Whole requests this tick and the fraction carried to the next one."""
    total = expected + carry
    n = math.floor(total + 1e-9)
    return n, max(0.0, total - n)


class Engine:
    def __init__(
        self,
        rng: random.Random | None = None,
        buckets: tuple[float, ...] = BUCKETS,
        noise: TrafficNoise | None = None,
    ) -> None:
        self._rng = rng or random.Random()
        self._buckets = buckets
        self._lock = threading.Lock()
        self._s = _State()
        self._noise: TrafficNoise | None = None
        self._draw = np.random.default_rng()
        self.set_noise(noise)

    @property
    def noise(self) -> TrafficNoise | None:
        return self._noise

    def set_noise(self, noise: TrafficNoise | None) -> None:
        """Switch realistic traffic on (a fresh generator from its seed) or off (exact counts)."""
        with self._lock:
            self._noise = noise
            self._draw = np.random.default_rng(noise.seed if noise is not None else None)
            self._s.carry.clear()
            self._s.error_carry.clear()

    def step(
        self,
        rates: RatePlan,
        present: Iterable[tuple[str, str, Track]],
        apps: Mapping[str, AppSpec],
        profiles: Mapping[tuple[str, str], FaultProfile],
        now: float,
        dt: float,
    ) -> None:
        """Advance by `dt` seconds ending at `now`. `present`: answerers with Ready pods."""
        with self._lock:
            self._drop_idle_carries(rates)
            for (region, app, answer), rps in rates.items():
                spec = apps.get(app)
                if spec is not None:
                    self._requests(region, spec, answer, rps * dt, profiles, now)
            self._memory(present, apps, profiles, now)

    def _drop_idle_carries(self, rates: RatePlan) -> None:
        # A destination that lost its traffic must not emit a stale fractional request later.
        for key in [k for k in self._s.carry if k not in rates]:
            del self._s.carry[key]

    def _requests(
        self,
        region: str,
        spec: AppSpec,
        answer: Answer,
        expected: float,
        profiles: Mapping[tuple[str, str], FaultProfile],
        now: float,
    ) -> None:
        s = self._s
        ckey = (region, spec.name, answer)
        noise = self._noise
        if noise is None:
            n, s.carry[ckey] = split_count(expected, s.carry.get(ckey, 0.0))
        else:
            n = int(self._draw.poisson(expected)) if expected > 0 else 0
        if n == 0:
            return
        key: SeriesKey = (region, spec.name, answer.track.version, answer.track.track)
        if not answer.served:
            self._count(key, "503", n)
            self._observe(key, [UNSERVED_LATENCY_S], [n])
            return
        first = s.first_traffic.setdefault((region, spec.name, answer.track.version), now)
        profile = faults.in_region(profiles.get((spec.name, answer.track.version), HEALTHY), region)
        ratio = faults.error_ratio(profile, first, now)
        if noise is None:
            errors, s.error_carry[key] = split_count(n * ratio, s.error_carry.get(key, 0.0))
        else:
            errors = int(self._draw.binomial(n, min(1.0, noise.error_rate_of(region) + ratio)))
        errors = min(errors, n)
        self._count(key, "200", n - errors)
        self._count(key, "500", errors)
        median_s = faults.latency_ms(profile, spec.base_latency_ms, first, now) / 1000.0
        samples, weights = self._sample(median_s, n)
        self._observe(key, samples, weights)

    def _count(self, key: SeriesKey, code: str, n: int) -> None:
        # Served versions export their 500 series from the start (at 0), so error-ratio queries
        # see a zero instead of a missing series.
        ckey = (*key, code)
        self._s.requests[ckey] = self._s.requests.get(ckey, 0) + n

    def _sample(self, median_s: float, n: int) -> tuple[list[float], list[int]]:
        k = min(n, MAX_SAMPLES_PER_TICK)
        mu = math.log(median_s)
        noise = self._noise
        if noise is None:
            samples = [self._rng.lognormvariate(mu, LATENCY_SIGMA) for _ in range(k)]
        else:
            body = self._draw.lognormal(mu, LATENCY_SIGMA, k)
            tail = self._draw.random(k) < noise.tail_share
            slow = noise.tail_scale * median_s * (1.0 + self._draw.pareto(noise.tail_alpha, int(tail.sum())))
            body[tail] = np.minimum(slow, noise.tail_cap_s)
            samples = [float(v) for v in body]
        base, extra = divmod(n, k)
        return samples, [base + (1 if i < extra else 0) for i in range(k)]

    def _observe(self, key: SeriesKey, samples: list[float], weights: list[int]) -> None:
        h = self._s.histograms.get(key)
        if h is None:
            h = self._s.histograms[key] = _Histogram([0] * (len(self._buckets) + 1))
        for value, w in zip(samples, weights, strict=True):
            h.buckets[bisect.bisect_left(self._buckets, value)] += w  # le is inclusive
            h.sum += value * w
            h.count += w

    def _memory(
        self,
        present: Iterable[tuple[str, str, Track]],
        apps: Mapping[str, AppSpec],
        profiles: Mapping[tuple[str, str], FaultProfile],
        now: float,
    ) -> None:
        s = self._s
        current: dict[SeriesKey, float] = {}
        for region, app, track in present:
            spec = apps.get(app)
            if spec is None:
                continue
            key: SeriesKey = (region, app, track.version, track.track)
            first = s.first_seen.setdefault(key, now)
            profile = faults.in_region(profiles.get((app, track.version), HEALTHY), region)
            current[key] = faults.memory_bytes(profile, spec.base_memory_bytes, first, now)
        s.memory = current  # versions without pods disappear from the gauge

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily | GaugeMetricFamily]:
        labels = ["region", "app", "version", "track"]
        requests = CounterMetricFamily("http_requests", "Simulated requests.", labels=[*labels, "code"])
        latency = HistogramMetricFamily("http_request_duration_seconds", "Simulated latency.", labels=labels)
        memory = GaugeMetricFamily("app_memory_bytes", "Simulated resident memory.", labels=labels)
        with self._lock:
            for ckey, n in sorted(self._s.requests.items()):
                requests.add_metric(list(ckey), n)
            for key, h in sorted(self._s.histograms.items()):
                latency.add_metric(list(key), self._cumulative(h), h.sum)
            for key, value in sorted(self._s.memory.items()):
                memory.add_metric(list(key), value)
        yield requests
        yield latency
        yield memory

    def _cumulative(self, h: _Histogram) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, n in zip([*map(_fmt, self._buckets), "+Inf"], h.buckets, strict=True):
            running += n
            out.append((bound, float(running)))
        return out

    def totals(self) -> dict[tuple[str, str, str, str, str], int]:
        with self._lock:
            return dict(self._s.requests)


def _fmt(bound: float) -> str:
    return repr(float(bound))


class EngineCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily | GaugeMetricFamily]:
        return self._engine.collect()

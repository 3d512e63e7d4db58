"""The judge's whole-window false-alarm rate on realistic noise, per-look versus sequential.

Pure (no lab, no Prometheus): every smoke window is driven through the engine's own code (the
Analyzer over an in-memory provider, `verdicts.evaluate`, `assess`) on seeded traffic:

- request counts per interval drawn from a Poisson law (`--rps` x interval),
- errors drawn per request (binomial) at a baseline rate,
- latency per request heavy-tailed (log-normal body, 3 % Pareto tail), judged as each interval's
  95th percentile.

A noise-only window (canary and baseline from one law) that FAILS is a false alarm. Each window is
judged twice: the old way (every look at p < 1 - confidence) and sequentially (every look at the
per-look level of regions/analysis/sequential.py). Step faults of a few sizes then start mid-window
and the number of looks from onset to the failing verdict is reported.

    .venv/bin/python -m bench.judge_false_alarm [--quick] [--windows 1000] [--seed 1]

The last line is `judge: alpha=... measured=... (3sigma ...) looks=... detect_looks_median=...`
(the sequential judge; detection over all step faults that were detected).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from config.schema import Check
from regions.analysis.fake import FakeMetricsProvider
from regions.analysis.model import Verdict
from regions.analysis.runner import AnalysisRun, Analyzer, Target
from regions.analysis.sequential import planned_looks, window_level
from regions.analysis.verdicts import judge_window

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
STABLE, NEW = "1.0.0", "2.0.0"


@dataclass(frozen=True)
class Traffic:
    """One track's traffic law, per interval."""

    rps: float = 20.0
    error_rate: float = 0.005
    latency_median_s: float = 0.08
    latency_sigma: float = 0.5
    tail_share: float = 0.03
    tail_alpha: float = 1.5  # Pareto shape: heavy (infinite variance below 2)

    def sample(self, rng: np.random.Generator, intervals: int, interval_s: float, metric: str) -> np.ndarray:
        requests = rng.poisson(self.rps * interval_s, intervals)
        if metric == "error-ratio":
            errors = rng.binomial(requests, self.error_rate)
            return np.where(requests > 0, errors / np.maximum(requests, 1), np.nan)
        out = np.full(intervals, np.nan)
        for i, n in enumerate(requests):
            if n == 0:
                continue
            body = rng.lognormal(math.log(self.latency_median_s), self.latency_sigma, n)
            tail = rng.random(n) < self.tail_share
            body[tail] = self.latency_median_s * 3 * (1 + rng.pareto(self.tail_alpha, int(tail.sum())))
            out[i] = float(np.quantile(body, 0.95))
        return out


def smoke_check(interval_s: float, confidence: float, min_samples: int, failure_limit: int = 0) -> Check:
    return Check.model_validate(
        {
            "name": "judged",
            "query": 'm{version="{{ version }}"}',
            "baselineQuery": 'm{version="{{ version }}"}',
            "judge": {"confidence": confidence, "minSamples": min_samples},
            "interval": f"{interval_s:g}s",
            "failureLimit": failure_limit,
            "inconclusiveLimit": 1000,
        }
    )


def series_provider(canary: np.ndarray, baseline: np.ndarray, origin: datetime, step: timedelta) -> FakeMetricsProvider:
    """Answers `m{version=NEW}` from `canary` and `m{version=STABLE}` from `baseline`, both indexed
    by whole intervals since `origin` (out of range: no data)."""

    def answer(promql: str, at: datetime) -> tuple[float, ...]:
        values = canary if NEW in promql else baseline
        i = round((at - origin) / step)
        if 0 <= i < len(values) and math.isfinite(values[i]):
            return (float(values[i]),)
        return ()

    return FakeMetricsProvider(answer)


def run_window(check: Check, provider: FakeMetricsProvider, window: timedelta, *, sequential: bool) -> AnalysisRun:
    """One smoke window from START, measured at every due instant (as `runner.poll` does, with the
    judge's level per look either sequential or the old `1 - confidence`)."""
    target = Target(app="a", region="r", release="r1", version=NEW, stable_version=STABLE, baseline_at=START)
    analyzer = Analyzer(provider, target)
    run = AnalysisRun(START, START + window)
    level = window_level(check, run.started_at, run.ends_at) if sequential else None
    now = START
    while True:
        state = run.state([check], now)
        if state.done or state.next_due is None:
            return run
        now = max(now, state.next_due)
        run = replace(run, measurements=run.measurements + (analyzer.measure(check, now, level),))


@dataclass(frozen=True)
class Setup:
    interval_s: float = 30.0
    window_s: float = 1200.0
    confidence: float = 0.95
    min_samples: int = 10

    @property
    def check(self) -> Check:
        return smoke_check(self.interval_s, self.confidence, self.min_samples)

    @property
    def looks(self) -> int:
        return planned_looks(self.check, START, START + timedelta(seconds=self.window_s))


def draw_window(
    setup: Setup, metric: str, seed: int, canary_law: Traffic = Traffic(), onset_s: float | None = None
) -> tuple[np.ndarray, np.ndarray, datetime]:
    """Canary and baseline series of one window. Indices start one judge lookback before START;
    the baseline ends at START (just before the rollout), the canary runs to the window's end.
    With `onset_s`, the canary follows `canary_law` from START + onset_s (before: the baseline law)."""
    rng = np.random.default_rng(seed)
    lookback, _ = judge_window(setup.check)
    origin = START - lookback
    total = round((lookback.total_seconds() + setup.window_s) / setup.interval_s) + 2
    baseline = Traffic().sample(rng, total, setup.interval_s, metric)
    canary = Traffic().sample(rng, total, setup.interval_s, metric)
    if onset_s is not None:
        faulty = canary_law.sample(rng, total, setup.interval_s, metric)
        first = round((lookback.total_seconds() + onset_s) / setup.interval_s)
        canary[first:] = faulty[first:]
    return canary, baseline, origin


def failed(run: AnalysisRun, check: Check) -> datetime | None:
    state = run.state([check], run.measurements[-1].at if run.measurements else START)
    if state.outcome is Verdict.FAILURE:
        return next(m.at for m in run.measurements if m.verdict is Verdict.FAILURE)
    return None


def false_alarm_rate(setup: Setup, windows: int, seed: int, *, sequential: bool, metrics: tuple[str, ...]) -> float:
    alarms = total = 0
    check = setup.check
    step = timedelta(seconds=setup.interval_s)
    for metric in metrics:
        for w in range(windows):
            canary, baseline, origin = draw_window(setup, metric, seed * 1_000_003 + w)
            run = run_window(
                check,
                series_provider(canary, baseline, origin, step),
                timedelta(seconds=setup.window_s),
                sequential=sequential,
            )
            alarms += failed(run, check) is not None
            total += 1
    return alarms / total


FAULTS: tuple[tuple[str, str, Traffic], ...] = (
    ("errors +0.3 pp", "error-ratio", Traffic(error_rate=0.008)),
    ("errors +1 pp", "error-ratio", Traffic(error_rate=0.015)),
    ("latency +20 %", "latency", Traffic(latency_median_s=0.096)),
    ("latency +50 %", "latency", Traffic(latency_median_s=0.12)),
)


def detection(setup: Setup, windows: int, seed: int, *, sequential: bool) -> dict[str, list[int | None]]:
    """Per fault: looks from onset (a third into the window) to the failing look; None: missed."""
    check = setup.check
    step = timedelta(seconds=setup.interval_s)
    onset_s = round(setup.window_s / 3 / setup.interval_s) * setup.interval_s
    onset = START + timedelta(seconds=onset_s)
    out: dict[str, list[int | None]] = {}
    for name, metric, law in FAULTS:
        looks: list[int | None] = []
        for w in range(windows):
            canary, baseline, origin = draw_window(setup, metric, seed * 7_000_001 + w, law, onset_s)
            run = run_window(
                check,
                series_provider(canary, baseline, origin, step),
                timedelta(seconds=setup.window_s),
                sequential=sequential,
            )
            at = failed(run, check)
            if at is None or at < onset:
                looks.append(None)  # missed, or a false alarm before the fault
            else:
                looks.append(sum(1 for m in run.measurements if onset <= m.at <= at))
        out[name] = looks
    return out


def band(alpha: float, n: int) -> float:
    return 3 * math.sqrt(alpha * (1 - alpha) / n)


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 noise windows per metric, 20 per fault")
    parser.add_argument("--windows", type=int, default=1000, help="noise-only windows per metric")
    parser.add_argument("--fault-windows", type=int, default=100, help="windows per step fault")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    windows, fault_windows = (200, 20) if args.quick else (args.windows, args.fault_windows)
    setup = Setup()
    alpha = round(1 - setup.confidence, 12)
    check = setup.check
    level = window_level(check, START, START + timedelta(seconds=setup.window_s))
    metrics = ("error-ratio", "latency")
    n = windows * len(metrics)
    began = time.monotonic()
    out(
        f"smoke window {setup.window_s:g} s, interval {setup.interval_s:g} s, minSamples {setup.min_samples}, "
        f"{setup.looks} looks; stated alpha {alpha:g}; sequential per-look level {level:.4g}"
    )
    out(f"{'judging':<12} {'windows':>8} {'false alarms':>13} {'stated':>7} {'3sigma band':>16}")
    measured: dict[bool, float] = {}
    for sequential in (False, True):
        rate = false_alarm_rate(setup, windows, args.seed, sequential=sequential, metrics=metrics)
        measured[sequential] = rate
        lo, hi = max(0.0, alpha - band(alpha, n)), alpha + band(alpha, n)
        name = "sequential" if sequential else "per-look"
        out(f"{name:<12} {n:>8} {rate:>13.4f} {alpha:>7.3g} {f'[{lo:.4f}, {hi:.4f}]':>16}")
    out(f"{'step fault':<16} {'judging':<12} {'detected':>9} {'median looks':>13} {'p90 looks':>10}")
    all_looks: list[int] = []
    for sequential in (False, True):
        for name, looks in detection(setup, fault_windows, args.seed, sequential=sequential).items():
            hit = sorted(x for x in looks if x is not None)
            if sequential:
                all_looks.extend(hit)
            med = f"{statistics.median(hit):g}" if hit else "-"
            p90 = f"{hit[min(len(hit) - 1, int(0.9 * len(hit)))]}" if hit else "-"
            mode = "sequential" if sequential else "per-look"
            out(f"{name:<16} {mode:<12} {len(hit):>4}/{len(looks):<4} {med:>13} {p90:>10}")
    out(f"({time.monotonic() - began:.0f} s)")
    detect = f"{statistics.median(all_looks):g}" if all_looks else "none"
    out(
        f"judge: alpha={alpha:g} measured={measured[True]:.4f} (3sigma {band(alpha, n):.4f}) "
        f"looks={setup.looks} detect_looks_median={detect}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Mann-Whitney judge on fixed, seeded series: noise passes at the stated confidence, a step
change fails, sparse series are inconclusive."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from config.schema import Judge
from regions.analysis.judge import mann_whitney
from regions.analysis.model import Observation, Verdict
from regions.analysis.verdicts import evaluate
from tests.unit.analysis.helpers import T0, check

WINDOWS = 200
N = 20


def _latencies(rng: random.Random, n: int, median_s: float = 0.02, sigma: float = 0.25) -> list[float]:
    return [rng.lognormvariate(math.log(median_s), sigma) for _ in range(n)]


def _error_ratios(rng: random.Random, n: int, p: float = 0.01, requests: int = 400) -> list[float]:
    """Error ratios of `n` windows of `requests` requests each (binomial counts)."""
    draws = np.random.default_rng(rng.getrandbits(32)).binomial(requests, p, n)
    return [float(k) / requests for k in draws]


def _allowed_false_alarms(confidence: float, windows: int) -> int:
    """The stated rate plus three binomial standard deviations (the seeds are fixed, so this is a
    bound that a judge with the wrong tail or a two-sided test at 2x the rate would break)."""
    p = 1 - confidence
    return math.ceil(windows * p + 3 * math.sqrt(windows * p * (1 - p)))


@pytest.mark.parametrize("confidence", [0.95, 0.99])
@pytest.mark.parametrize("kind", ["latency", "error-ratio"])
def test_noise_only_windows_stay_within_the_stated_false_alarm_rate(confidence: float, kind: str) -> None:
    judge = Judge(confidence=confidence, minSamples=10)
    make = _latencies if kind == "latency" else _error_ratios
    alarms = 0
    for seed in range(WINDOWS):
        rng = random.Random(seed)
        result = mann_whitney(judge, make(rng, N), make(rng, N))
        assert result.verdict in (Verdict.SUCCESS, Verdict.FAILURE)
        alarms += result.verdict is Verdict.FAILURE
    assert alarms <= _allowed_false_alarms(confidence, WINDOWS), f"{alarms} false alarms in {WINDOWS} windows"


@pytest.mark.parametrize(("kind", "shift"), [("latency", 1.3), ("error-ratio", 3.0)])
def test_a_step_change_fails(kind: str, shift: float) -> None:
    judge = Judge(confidence=0.95, minSamples=10)
    detected = 0
    for seed in range(50):
        rng = random.Random(1000 + seed)
        if kind == "latency":
            canary, baseline = _latencies(rng, N, 0.02 * shift), _latencies(rng, N)
        else:
            canary, baseline = _error_ratios(rng, N, 0.01 * shift), _error_ratios(rng, N)
        detected += mann_whitney(judge, canary, baseline).verdict is Verdict.FAILURE
    assert detected >= 48


def test_direction_matters() -> None:
    rng = random.Random(7)
    slower, base = _latencies(rng, N, 0.03), _latencies(rng, N)
    assert mann_whitney(Judge(direction="lowerIsBetter"), slower, base).verdict is Verdict.FAILURE
    # higherIsBetter (e.g. throughput): a canary with *higher* values is fine...
    assert mann_whitney(Judge(direction="higherIsBetter"), slower, base).verdict is Verdict.SUCCESS
    # ... and one with lower values fails.
    assert mann_whitney(Judge(direction="higherIsBetter"), base, slower).verdict is Verdict.FAILURE
    # a faster canary is not a failure under lowerIsBetter
    assert mann_whitney(Judge(direction="lowerIsBetter"), base, slower).verdict is Verdict.SUCCESS


@pytest.mark.parametrize(
    ("canary", "baseline"),
    [
        ([1.0] * 9, [1.0] * 20),
        ([1.0] * 20, [1.0] * 9),
        ([], []),
        ([1.0] * 5 + [math.nan] * 10, [1.0] * 20),  # gaps in a range query are not samples
        ([1.0] * 5 + [math.inf] * 10, [1.0] * 20),
    ],
)
def test_sparse_series_are_inconclusive(canary: list[float], baseline: list[float]) -> None:
    result = mann_whitney(Judge(minSamples=10), canary, baseline)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "too few samples" in result.reason


def test_identical_constant_series_pass() -> None:
    result = mann_whitney(Judge(minSamples=10), [0.0] * 12, [0.0] * 12)
    assert (result.verdict, result.p_value) == (Verdict.SUCCESS, 1.0)


def test_judge_check_through_evaluate() -> None:
    rng = random.Random(3)
    c = check(successCondition=None, baselineQuery="b", judge={"minSamples": 10})
    canary, baseline = tuple(_latencies(rng, N, 0.04)), tuple(_latencies(rng, N))
    m = evaluate(c, Observation(value=(0.04,), baseline=(0.02,), canary_samples=canary, baseline_samples=baseline), T0)
    assert m.verdict is Verdict.FAILURE and m.p_value is not None and m.p_value < 0.05
    assert (m.samples, m.baseline_samples) == (N, N)
    sparse = evaluate(
        c, Observation(value=(0.04,), baseline=(0.02,), canary_samples=canary[:3], baseline_samples=baseline), T0
    )
    assert sparse.verdict is Verdict.INCONCLUSIVE
    # a judge and a condition: the worse verdict wins
    both = check(successCondition="result < 0.001", baselineQuery="b", judge={"minSamples": 10})
    m = evaluate(
        both, Observation(value=(0.02,), baseline=(0.02,), canary_samples=baseline, baseline_samples=baseline), T0
    )
    assert m.verdict is Verdict.FAILURE and "successCondition" in m.reason

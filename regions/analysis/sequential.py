"""Sequential judging: the per-look level that keeps a judge's false-alarm rate for a whole
smoke window.

A smoke window asks the judge again every interval. Testing each look at `alpha = 1 - confidence`
would let a healthy release fail the window with a probability that grows with the number of looks
(up to about `looks x alpha`). Instead every look is tested at one constant level `alpha_look`,
chosen so that, with no real difference, the window fails (more than `failureLimit` looks fail)
with probability `alpha`: a Pocock-type boundary, computed for the looks this window really takes.

The looks are not independent: a smoke window compares a sliding window of the last
`w = 2 x minSamples + 1` canary samples (a range query over `2 x minSamples` intervals, both ends
included) with one fixed set of `w` baseline samples (taken just before the region's rollout), and
consecutive looks share `w - 1` canary samples. Under the null hypothesis (all samples independent
draws of one continuous distribution) the ranks are a random permutation, so the joint law of the
looks' Mann-Whitney statistics depends only on `w`, the number of looks and `failureLimit`, never
on the metric's distribution. `pocock_level` draws that law by a seeded simulation of ranks
(deterministic, cached, pure) and returns the per-look level. See
docs/analysis.md ("Sequential judging") for the math and its cost in detection time.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np

from config.schema import Check
from regions.analysis.verdicts import first_due, judge_window

SIMULATIONS = 20_000
_SEED = 20261129
_CHUNK_CELLS = 4_000_000  # simulated samples per chunk (bounds memory at a few tens of MB)


def planned_looks(check: Check, started_at: datetime, ends_at: datetime) -> int:
    """How many judged measurements a smoke window takes: every `interval` from the first due
    (after `minSamples` intervals of data) while before the end, plus the one at the end."""
    span = ends_at - first_due(check, started_at)
    if span <= timedelta(0):
        return 1
    return math.ceil(span / check.interval) + 1


def window_level(check: Check, started_at: datetime, ends_at: datetime | None) -> float | None:
    """The per-look level of `check`'s judge in a smoke window, or None (no judge, or an
    analysis step, which keeps the per-look `1 - confidence`)."""
    if check.judge is None or ends_at is None:
        return None
    looks = planned_looks(check, started_at, ends_at)
    lookback, step = judge_window(check)
    samples = round(lookback / step) + 1  # a range query's points, both ends included
    return pocock_level(round(1.0 - check.judge.confidence, 12), looks, samples, check.failure_limit)


@lru_cache(maxsize=256)
def pocock_level(alpha: float, looks: int, samples: int, failure_limit: int = 0) -> float:
    """The per-look level at which `looks` one-sided Mann-Whitney tests of a sliding window of
    `samples` canary samples against `samples` fixed baseline samples (the window moving by one
    sample per look) fail more than `failure_limit` of them with probability at most `alpha` when
    nothing changed.

    Returned as a p-value threshold halfway between the single-look tail probabilities of the
    critical statistic and the next lower one, so that `p < level` rejects exactly the statistics
    the simulation allows, whichever way the p-value is computed (exact or normal approximation)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if looks < 1 or samples < 1 or failure_limit < 0:
        raise ValueError(f"looks ({looks}) and samples ({samples}) must be >= 1, failure_limit >= 0")
    if looks <= failure_limit:
        return alpha  # the window can never fail on the judge alone: nothing to correct
    w, k = samples, looks
    top = w * w  # U ranges over 0..w*w
    rng = np.random.default_rng(_SEED)
    window_stat = np.zeros(top + 2, dtype=np.int64)  # histogram of the (failure_limit+1)-th largest U
    look_stat = np.zeros(top + 2, dtype=np.int64)  # histogram of every single look's U
    per_chunk = max(1, _CHUNK_CELLS // (w + k - 1 + w))
    done = 0
    while done < SIMULATIONS:
        n = min(per_chunk, SIMULATIONS - done)
        done += n
        baseline = np.sort(rng.random((n, w)), axis=1) + np.arange(n)[:, None]
        canary = rng.random((n, w + k - 1)) + np.arange(n)[:, None]
        # How many baseline samples lie below each canary sample: its contribution to U.
        below = np.searchsorted(baseline.ravel(), canary.ravel()).reshape(n, -1) - (np.arange(n) * w)[:, None]
        sums = np.concatenate([np.zeros((n, 1), dtype=np.int64), np.cumsum(below, axis=1)], axis=1)
        u = sums[:, w:] - sums[:, :-w]  # (n, k): U of each look
        decisive = np.partition(u, k - 1 - failure_limit, axis=1)[:, k - 1 - failure_limit]
        window_stat += np.bincount(decisive, minlength=top + 2)
        look_stat += np.bincount(u.ravel(), minlength=top + 2)
    window_tail = np.cumsum(window_stat[::-1])[::-1] / SIMULATIONS  # P(decisive U >= c)
    look_tail = np.cumsum(look_stat[::-1])[::-1] / look_stat.sum()  # P(single U >= c)
    allowed = np.nonzero(window_tail <= alpha)[0]
    critical = int(allowed[0]) if allowed.size else top + 1
    if critical > top:
        return 0.0  # no statistic is extreme enough: the judge alone never fails this window
    return float((look_tail[critical] + look_tail[critical - 1]) / 2)

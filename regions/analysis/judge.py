"""The statistical judge: is the canary worse than the baseline, beyond noise?

A one-sided Mann-Whitney U test of canary samples against baseline samples. It makes no
assumption about the distribution (latencies and error ratios are far from normal) and only asks
whether canary values tend to be larger (lowerIsBetter) or smaller (higherIsBetter) than
baseline values. With a stated confidence c, a healthy canary is judged a failure in at most about
(1 - c) of windows; tests/unit/analysis/test_judge.py measures that on seeded noise.

A smoke window looks many times; there each look is tested at a lower `level` (see
regions/analysis/sequential.py) so that the whole window keeps the stated rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from config.schema import Judge
from regions.analysis.model import Verdict


@dataclass(frozen=True)
class JudgeResult:
    verdict: Verdict
    reason: str
    p_value: float | None = None
    canary_n: int = 0
    baseline_n: int = 0
    canary_median: float | None = None
    baseline_median: float | None = None


def mann_whitney(
    judge: Judge, canary: Sequence[float], baseline: Sequence[float], level: float | None = None
) -> JudgeResult:
    """Judge two samples. Non-finite values (gaps, NaN) are dropped first; fewer than
    `judge.min_samples` left on either side is INCONCLUSIVE, never SUCCESS. `level` replaces the
    p-value threshold `1 - confidence` (one look of a sequence that keeps `1 - confidence` overall)."""
    c = [float(v) for v in canary if math.isfinite(v)]
    b = [float(v) for v in baseline if math.isfinite(v)]
    medians = {"canary_median": median(c) if c else None, "baseline_median": median(b) if b else None}
    if len(c) < judge.min_samples or len(b) < judge.min_samples:
        why = f"too few samples: canary {len(c)}, baseline {len(b)}, need {judge.min_samples} each"
        return JudgeResult(Verdict.INCONCLUSIVE, why, None, len(c), len(b), **medians)
    alpha = 1.0 - judge.confidence if level is None else level
    of = "" if level is None else f", the per-look level that keeps {1.0 - judge.confidence:.3g} over the window"
    if len(set(c)) == 1 and set(c) == set(b):
        # Identical constant series: no difference at all (scipy would return NaN here).
        return JudgeResult(Verdict.SUCCESS, "canary and baseline are identical", 1.0, len(c), len(b), **medians)
    # lowerIsBetter: the canary is worse when its values tend to be *greater* than the baseline's.
    alternative = "greater" if judge.direction == "lowerIsBetter" else "less"
    # Imported here, not at the top: scipy.stats costs about 87 MiB of RSS, and a controller whose
    # plans use no judge (or that is idle) should not carry it (docs/performance.md).
    from scipy.stats import mannwhitneyu

    p = float(mannwhitneyu(c, b, alternative=alternative, method="auto").pvalue)
    if math.isnan(p):
        return JudgeResult(Verdict.INCONCLUSIVE, "the test gave no p-value", None, len(c), len(b), **medians)
    worse = "higher" if judge.direction == "lowerIsBetter" else "lower"
    if p < alpha:
        return JudgeResult(
            Verdict.FAILURE,
            f"canary is {worse} than baseline (Mann-Whitney p={p:.3g} < {alpha:.3g}{of})",
            p,
            len(c),
            len(b),
            **medians,
        )
    return JudgeResult(
        Verdict.SUCCESS,
        f"no significant difference (Mann-Whitney p={p:.3g} >= {alpha:.3g}{of})",
        p,
        len(c),
        len(b),
        **medians,
    )

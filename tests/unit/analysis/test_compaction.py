"""A run's record stays bounded (regions/analysis/runner.py KEEP_PER_CHECK): older measurements are
folded into counts by verdict, and every verdict is the same as from the whole record."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from config.schema import Check
from regions.analysis.fake import FakeMetricsProvider
from regions.analysis.model import Measurement, Verdict
from regions.analysis.runner import KEEP_PER_CHECK, AnalysisRun, Analyzer, run_analysis
from regions.smoke import detected_at
from tests.unit.analysis.helpers import T0, at, check
from tests.unit.analysis.test_runner import TARGET, Clock

LETTERS = {"s": Verdict.SUCCESS, "f": Verdict.FAILURE, "i": Verdict.INCONCLUSIVE, "e": Verdict.ERROR}


def grown(checks: list[Check], verdicts: dict[str, str], ends_at: datetime | None) -> tuple[AnalysisRun, AnalysisRun]:
    """The same measurements appended one instant at a time to a whole record and to a compacted
    one (as `poll` compacts), stopping where the whole record's run has an outcome."""
    whole = compact = AnalysisRun(T0, ends_at)
    for k in range(max(len(v) for v in verdicts.values())):
        now = at(10 * k)
        fresh = tuple(
            Measurement(c.name, now, LETTERS[verdicts[c.name][k]], reason=f"{c.name}#{k}")
            for c in checks
            if k < len(verdicts[c.name])
        )
        whole = replace(whole, measurements=whole.measurements + fresh)
        compact = replace(compact, measurements=compact.measurements + fresh).compacted(checks)
        assert whole.state(checks, now) == compact.state(checks, now), f"differs after instant {k}"
        if whole.state(checks, now).done:
            break
    return whole, compact


@pytest.mark.parametrize("seed", range(40))
def test_a_compacted_record_gives_the_verdicts_of_the_whole_one(seed: int) -> None:
    rng = random.Random(seed)
    checks = [
        check(name="a", count=10_000, failureLimit=rng.choice([0, 2, 40]), inconclusiveLimit=rng.choice([1, 50])),
        check(name="b", count=10_000, consecutiveErrorLimit=rng.choice([0, 3, 45]), inconclusiveLimit=60),
    ]
    weights = rng.choice([(97, 1, 1, 1), (90, 2, 4, 4), (80, 0, 10, 10)])
    verdicts = {c.name: "".join(rng.choices("sfie", weights=weights, k=200)) for c in checks}
    ends_at = at(10 * rng.choice([50, 150])) if seed % 2 else None
    whole, compact = grown(checks, verdicts, ends_at)
    assert len(compact.measurements) <= 2 * max(KEEP_PER_CHECK, 46)
    assert sum(sum(c.values()) for c in compact.folded.values()) + len(compact.measurements) == len(whole.measurements)
    assert detected_at(compact, checks) == detected_at(whole, checks)


def test_failures_folded_long_ago_still_count_towards_the_failure_limit() -> None:
    c = check(count=10_000, failureLimit=2)
    whole, compact = grown([c], {"c": "ff" + "s" * 100 + "f"}, ends_at=None)
    state = compact.state([c], at(10 * 102))
    assert state.outcome is Verdict.FAILURE and "3 failed measurement(s)" in state.reason
    assert compact.folded["c"]["failure"] == 2  # both were folded, and still counted


def test_an_hour_long_window_keeps_a_bounded_status_that_round_trips() -> None:
    """Four checks every 10 s for an hour: 4 x 361 measurements, of which 4 x KEEP_PER_CHECK are kept."""
    clock = Clock(T0)
    checks = [check(name=n, count=10_000) for n in ("errors", "latency", "saturation", "restarts")]
    provider = FakeMetricsProvider(lambda q, t: (0.0,))
    result = run_analysis(
        Analyzer(provider, TARGET), checks, duration=timedelta(hours=1), clock=clock, sleep=clock.sleep
    )
    assert result.outcome is Verdict.SUCCESS
    assert all("361 of 361 measurements passed" in s.reason for s in result.state.checks)
    status = result.run.to_status()
    assert len(status["measurements"]) == 4 * KEEP_PER_CHECK
    assert len(json.dumps(status)) < 40_000
    again = AnalysisRun.from_status(json.loads(json.dumps(status)))
    assert again == result.run and again.state(checks, clock.now) == result.state

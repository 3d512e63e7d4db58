"""Metric analysis: checks against Prometheus, baseline comparison, a statistical judge, verdicts.

Pure decisions live in `verdicts` and `judge`; the only IO is `Analyzer.measure` through a
`MetricsProvider` (`PrometheusProvider`, or `FakeMetricsProvider` in tests).

Callers:
- the release reconciler (rollout/reconciler.py), once per pass and without blocking:
  `poll(analyzer, checks, run, now)` for a strategy's analysis step (the verdict goes into the
  strategy's snapshot) and for a region's smoke window (the verdict goes to the orchestrator);
  `AnalysisRun.to_status()` / `from_status()` keep every measurement in the Release status;
- `run_analysis(analyzer, checks)` loops `poll` and blocks in between: the detection benchmark
  (bench/analysis_detection.py) and the lab tests, which replay whole windows.
"""

from regions.analysis.judge import JudgeResult, mann_whitney
from regions.analysis.model import (
    CheckState,
    Measurement,
    Observation,
    RunState,
    Verdict,
    verdict_text,
)
from regions.analysis.prometheus import PrometheusProvider
from regions.analysis.provider import MetricsError, MetricsProvider, MetricsUnavailable, QueryRejected
from regions.analysis.runner import (
    AnalysisResult,
    AnalysisRun,
    Analyzer,
    Target,
    poll,
    run_analysis,
)
from regions.analysis.verdicts import (
    UnknownCheck,
    aggregate,
    assess,
    evaluate,
    run_state,
    select_checks,
)

__all__ = [
    "AnalysisResult",
    "AnalysisRun",
    "Analyzer",
    "CheckState",
    "JudgeResult",
    "Measurement",
    "MetricsError",
    "MetricsProvider",
    "MetricsUnavailable",
    "Observation",
    "PrometheusProvider",
    "QueryRejected",
    "RunState",
    "Target",
    "UnknownCheck",
    "Verdict",
    "aggregate",
    "assess",
    "evaluate",
    "mann_whitney",
    "poll",
    "run_analysis",
    "run_state",
    "select_checks",
    "verdict_text",
]

"""Metric analysis: checks against Prometheus, baseline comparison, a statistical judge, verdicts.

Pure decisions live in `verdicts` and `judge`; the only IO is `Analyzer.measure` through a
`MetricsProvider` (`PrometheusProvider`, or `FakeMetricsProvider` in tests).

Callers:
- a strategy's analysis step: `run_analysis(analyzer, checks)` (blocking) or
  `poll(analyzer, checks, run, now)` once per reconcile (non-blocking), outcome in `RunState`;
- the orchestrator's smoke window: `regions.smoke.start(...)` then `poll` every interval;
  `AnalysisRun.to_status()` keeps every measurement for the Release status.
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
    "AnalysisResult", "AnalysisRun", "Analyzer", "CheckState", "JudgeResult", "Measurement",
    "MetricsError", "MetricsProvider", "MetricsUnavailable", "Observation",
    "PrometheusProvider", "QueryRejected", "RunState", "Target", "UnknownCheck", "Verdict",
    "aggregate", "assess", "evaluate", "mann_whitney", "poll", "run_analysis", "run_state",
    "select_checks", "verdict_text",
]

"""Smoke windows (bake time): how long a wave waits, with its checks running, before the next wave.

A window is fixed, or `auto`: twice the mean time it took the app's past failed releases to be
detected ("if problems surfaced after one hour on average, wait two"), clamped to the plan's floor
and ceiling; with no history it is the ceiling, since without evidence the safe side is the long
side. Pure functions: the Git sync sizes each wave's window from the app's history
(`smoke_duration`); the release reconciler runs the window's checks with `regions.analysis.poll`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from config.durations import format_duration
from config.schema import Check, SmokeWindow
from regions.analysis.model import Verdict
from regions.analysis.runner import AnalysisRun
from regions.analysis.verdicts import run_state


@dataclass(frozen=True)
class SmokeDuration:
    """A window's length and why: shown in status and by `rollout plan`."""

    duration: timedelta
    mode: Literal["fixed", "auto"]
    reason: str
    mean_time_to_detect: timedelta | None = None
    failures: int = 0  # past failed releases the mean is taken over

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "duration": format_duration(self.duration),
            "mode": self.mode,
            "reason": self.reason,
            "failures": self.failures,
        }
        if self.mean_time_to_detect is not None:
            out["meanTimeToDetect"] = format_duration(self.mean_time_to_detect)
        return out


def smoke_duration(window: SmokeWindow, times_to_detect: Iterable[timedelta] = ()) -> SmokeDuration:
    """The window's length. `times_to_detect`: for each past failed release of the app, the time
    from the start of its exposure (the region's rollout or smoke window) to the failing verdict.
    Negative entries (clock skew, bad records) are ignored."""
    if window.fixed is not None:
        return SmokeDuration(window.fixed, "fixed", f"fixed {format_duration(window.fixed)}")
    auto = window.auto
    assert auto is not None
    past = [t for t in times_to_detect if t >= timedelta(0)]
    if not past:
        return SmokeDuration(
            auto.ceiling, "auto", f"no failed release in history: the ceiling {format_duration(auto.ceiling)}"
        )
    mean = sum(past, timedelta(0)) / len(past)
    wanted = 2 * mean
    chosen = min(max(wanted, auto.floor), auto.ceiling)
    clamp = (
        ""
        if chosen == wanted
        else f", raised to the floor {format_duration(auto.floor)}"
        if chosen == auto.floor
        else f", cut to the ceiling {format_duration(auto.ceiling)}"
    )
    reason = (
        f"2 x mean time-to-detect {format_duration(mean)} over {len(past)} failed release(s)"
        f" = {format_duration(wanted)}{clamp}"
    )
    return SmokeDuration(chosen, "auto", reason, mean, len(past))


def detected_at(run: AnalysisRun, checks: Sequence[Check]) -> datetime | None:
    """When the run's verdict first became FAILURE (the instant to record for time-to-detect)."""
    ms = sorted(run.measurements, key=lambda m: m.at)
    for i, m in enumerate(ms):
        if i + 1 < len(ms) and ms[i + 1].at == m.at:
            continue  # assess all measurements of one instant together
        state = run_state(checks, ms[: i + 1], m.at, started_at=run.started_at, ends_at=run.ends_at, folded=run.folded)
        if state.outcome is Verdict.FAILURE:
            return m.at
    return None

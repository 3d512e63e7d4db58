"""Value types of the analysis engine: verdicts, observations, measurements and check states.

Everything here is plain data. Measurements round-trip through JSON (`to_json` / `from_json`) so
that a run's full history can live in a Release's status and be replayed later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from config.times import format_time, parse_time


class Verdict(StrEnum):
    """The one verdict of the product: on one measurement, on a check, on a run of checks, on a
    strategy's analysis step and on a smoke window. Only SUCCESS ever counts towards promotion.

    Where a verdict is still being formed (a check or a smoke window still measuring), the value is
    `None`, written "running" in status (`verdict_text`). A check's own verdict may be ERROR; the
    verdict a caller acts on (`CheckState.outcome`, `RunState.outcome`) never is: the check's
    onInconclusive turns ERROR and INCONCLUSIVE into INCONCLUSIVE (pause) or FAILURE (roll back).
    """

    SUCCESS = "success"  # promote
    FAILURE = "failure"  # roll back
    INCONCLUSIVE = "inconclusive"  # no data, NaN, too little traffic, too few samples: pause and alert
    ERROR = "error"  # the measurement could not be taken (query failed, Prometheus unreachable)


RUNNING = "running"  # how status spells a verdict not reached yet (None)


def verdict_text(verdict: Verdict | None) -> str:
    """A verdict as status and metrics spell it; `None` (still measuring) is "running"."""
    return RUNNING if verdict is None else verdict.value


@dataclass(frozen=True)
class Observation:
    """What the metrics provider returned for one check at one instant, before any judgement.

    `value`, `baseline` and `requests` hold one number per series the instant query returned.
    `None` means "not asked" (a check without baselineQuery, a plan without minRequests).
    `canary_samples` / `baseline_samples` are the range-query samples a judge compares.
    `error` is set when a query failed; the other fields are then meaningless.
    """

    value: tuple[float, ...] = ()
    baseline: tuple[float, ...] | None = None
    requests: tuple[float, ...] | None = None
    canary_samples: tuple[float, ...] | None = None
    baseline_samples: tuple[float, ...] | None = None
    error: str | None = None


@dataclass(frozen=True)
class Measurement:
    """One judged measurement of one check: kept for status, the CLI and audit."""

    check: str
    at: datetime
    verdict: Verdict
    value: float | None = None
    baseline: float | None = None
    requests: float | None = None
    reason: str = ""
    p_value: float | None = None
    samples: int | None = None
    baseline_samples: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "at": format_time(self.at), "verdict": self.verdict.value}
        for name in ("value", "baseline", "requests", "p_value"):
            number = getattr(self, name)
            if number is not None:
                out[_camel(name)] = _number_to_json(number)
        for name in ("samples", "baseline_samples"):
            if getattr(self, name) is not None:
                out[_camel(name)] = getattr(self, name)
        if self.reason:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        def number(key: str) -> float | None:
            return None if data.get(key) is None else _number_from_json(data[key])

        return cls(
            check=str(data["check"]),
            at=_parsed(data["at"]),
            verdict=Verdict(data["verdict"]),
            value=number("value"),
            baseline=number("baseline"),
            requests=number("requests"),
            reason=str(data.get("reason", "")),
            p_value=number("pValue"),
            samples=data.get("samples"),
            baseline_samples=data.get("baselineSamples"),
        )


@dataclass(frozen=True)
class CheckState:
    """The state of one check, computed from its measurements by `verdicts.assess`."""

    check: str
    verdict: Verdict | None  # the check's own conclusion; None while it is still measuring
    outcome: Verdict | None  # what the caller acts on (after onInconclusive); never ERROR
    successes: int = 0
    failures: int = 0
    inconclusives: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    next_due: datetime | None = None  # None once the check is done
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "verdict": verdict_text(self.verdict),
            "outcome": verdict_text(self.outcome),
            "successes": self.successes,
            "failures": self.failures,
            "inconclusives": self.inconclusives,
            "errors": self.errors,
            "consecutiveErrors": self.consecutive_errors,
        }
        if self.next_due is not None:
            out["nextDue"] = format_time(self.next_due)
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class RunState:
    """All checks of a run, their aggregate verdict (None: still running) and when the next
    measurement is due."""

    outcome: Verdict | None
    checks: tuple[CheckState, ...] = field(default=())
    next_due: datetime | None = None
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": verdict_text(self.outcome), "checks": [c.to_json() for c in self.checks]}
        if self.next_due is not None:
            out["nextDue"] = format_time(self.next_due)
        if self.reason:
            out["reason"] = self.reason
        return out


def prom_duration(value: timedelta) -> str:
    """A PromQL range duration (`30s`, `1500ms`): whole milliseconds, never zero."""
    ms = max(1, round(value.total_seconds() * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _parsed(text: Any) -> datetime:
    parsed = parse_time(str(text))
    if parsed is None:
        raise ValueError("a measurement without its time ('at')")
    return parsed


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _number_to_json(value: float) -> float | str:
    """JSON has no NaN or infinity; spell them as Prometheus does."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def _number_from_json(value: float | int | str) -> float:
    return float(value)  # float() reads "NaN", "+Inf" and "-Inf"

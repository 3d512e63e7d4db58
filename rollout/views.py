"""Read-side views of Release and ReleaseAction objects, shared by the CLI (`rollout status`,
`history`) and the browser view (`rollout ui`): pure functions of the stored objects and the time,
no IO, no terminal or HTML."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from config.times import parse_time


def active_release(releases: list[dict[str, Any]]) -> dict[str, Any] | None:
    return releases[-1] if releases else None


STATUS_HEADER = ["wave", "region", "phase", "strategy step", "weight", "last verdict", "message"]
WIDE_HEADER = [*STATUS_HEADER, "smoke left", "started", "finished"]


def status_rows(release: dict[str, Any], *, wide: bool = False, now: datetime | None = None) -> list[list[str]]:
    """One row per region, in wave order; `wide` adds the verdict's numbers, the smoke window's
    time left and the region's start and finish. Nothing is cut: the table folds long text."""
    status = release.get("status") or {}
    waves = {r: (i, w["name"]) for i, w in enumerate(release["spec"]["waves"]) for r in w["regions"]}
    now = now or datetime.now(UTC)
    rows = []
    for region, (index, wave) in sorted(waves.items(), key=lambda kv: (kv[1][0], kv[0])):
        state = (status.get("regions") or {}).get(region, {})
        strategy = state.get("strategy") or {}
        step = strategy.get("stepName") or (f"step {strategy['step']}" if "step" in strategy else "")
        weight = "" if state.get("weight") is None else f"{state['weight']}%"
        row = [
            f"{index + 1} {wave}",
            region,
            state.get("phase", "Pending"),
            step,
            weight,
            last_verdict(state, detailed=wide),
            state.get("message", ""),
        ]
        if wide:
            row += [smoke_left(state, now), region_field(state, "startedAt"), region_field(state, "completedAt")]
        rows.append(row)
    return rows


def last_verdict(state: dict[str, Any], *, detailed: bool = False) -> str:
    """The measurement that explains the region (`telling_measurement`) as "check=verdict";
    `detailed` adds its value, threshold and baseline (`measured`) and its reason."""
    m = telling_measurement(state)
    if m is None:
        return ""
    text = f"{m.get('check', '?')}={m.get('verdict', '?')}"
    if not detailed:
        return text
    numbers = measurement_numbers(m)
    text = f"{text} ({numbers})" if numbers else text
    return f"{text}: {m['reason']}" if m.get("reason") else text


_FAILED_PHASES = frozenset({"Failed", "Draining", "RollingBack", "RolledBack"})


def telling_measurement(state: dict[str, Any]) -> dict[str, Any] | None:
    """The measurement a responder needs first: in a failed region the newest failure (else the
    newest that did not pass), in a region paused as inconclusive the newest inconclusive or error
    one; otherwise, and when there is no such one, the newest measurement of any check."""
    runs = [run for run in (state.get("analysis") or {}).values() if isinstance(run, dict)]
    ms: list[dict[str, Any]] = [m for run in runs for m in run.get("measurements", [])]
    if not ms:
        return None
    ms.sort(key=lambda m: str(m.get("at", "")))  # stable: of one instant, the last recorded wins
    wanted: tuple[tuple[str, ...], ...] = ()
    if state.get("phase") in _FAILED_PHASES:
        wanted = (("failure",), ("error", "inconclusive"))
    elif str(state.get("message", "")).startswith("inconclusive"):
        wanted = (("inconclusive", "error"),)
    for verdicts in wanted:
        found = [m for m in ms if m.get("verdict") in verdicts]
        if found:
            return found[-1]
    return ms[-1]


def measurement_numbers(m: dict[str, Any]) -> str:
    """The numbers recorded, in the check's unit: "value 31.2%, threshold 5%, baseline 1.2%"."""
    check = str(m.get("check", ""))
    return ", ".join(f"{k} {measured(check, m[k])}" for k in ("value", "threshold", "baseline") if m.get(k) is not None)


def measured(check: str, value: Any) -> str:
    """A measured number as a responder reads it, in the unit the check's name implies: a ratio as
    a percentage ("error-ratio" 0.0123 -> "1.23%"), a latency or duration in seconds ("latency-p99"
    0.2346 -> "235 ms", 12.5 -> "12.5 s"), memory in bytes ("memory-growth" 17476 -> "17.1 KiB/s":
    a growth is per second); anything else as a number. Three significant digits throughout. The
    one formatter of measurements: `rollout status -o wide` and every page of `rollout ui`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "+Inf" if number > 0 else "-Inf"
    words = set(check.lower().replace("_", "-").split("-"))
    if words & {"ratio", "percent", "fraction", "share"}:
        return f"{significant(number * 100)}%"
    if words & {"latency", "duration", "seconds", "p50", "p90", "p95", "p99", "p999"}:
        return f"{significant(number * 1000)} ms" if abs(number) < 1 and number else f"{significant(number)} s"
    if words & {"memory", "bytes"}:
        per = "/s" if words & {"growth", "rate"} else ""
        for unit in ("B", "KiB", "MiB", "GiB"):
            if abs(number) < 1024 or unit == "GiB":
                return f"{significant(number)} {unit}{per}"
            number /= 1024
    return significant(number)


def significant(number: float, digits: int = 3) -> str:
    """`number` to `digits` significant digits, without an exponent for everyday sizes and without
    trailing zeros: 0.0123456 -> "0.0123", 0.4 -> "0.4", 1.0 -> "1", 123456 -> "123456"."""
    if number == 0:
        return "0"
    size = math.floor(math.log10(abs(number)))
    if size < -4 or size >= 15:
        return f"{number:.{digits - 1}e}"
    places = max(0, digits - 1 - size)
    text = f"{round(number, places):.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def smoke_left(state: dict[str, Any], now: datetime) -> str:
    """Time left in the region's smoke window ("" when it is not in one)."""
    if state.get("phase") != "Smoke":
        return ""
    started = parse_time(region_field(state, "smokeStartedAt") or None)
    seconds = region_field(state, "smokeSeconds")
    ends = started + timedelta(seconds=float(seconds)) if started and seconds else None
    for run in (state.get("analysis") or {}).values():
        if ends is None and isinstance(run, dict):
            ends = parse_time(run.get("endsAt"))
    if ends is None:
        return ""
    left = max(0, int((ends - now).total_seconds()))
    return f"{left // 60}m{left % 60:02d}s"


def history_rows(releases: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for rel in reversed(releases):
        status = rel.get("status") or {}
        started, ended = status.get("startedAt"), status.get("completedAt")
        took = f"{(_t(ended) - _t(started)).total_seconds():.0f}s" if started and ended else ""
        people = [
            f"{a['by']}: {a['action']} ({a['reason']})"
            for a in status.get("audit", [])
            if a.get("by", "controller") != "controller"
        ]
        rows.append(
            [
                rel["metadata"]["name"],
                rel["spec"]["version"],
                status.get("phase", "Pending"),
                rel["metadata"]["creationTimestamp"],
                took,
                status.get("failedRegion") or "",
                "; ".join(people) or "-",
                rendered_by(rel),
            ]
        )
    return rows


def _t(text: str) -> datetime:
    parsed = parse_time(text)
    assert parsed is not None
    return parsed


def action_rows(actions: list[dict[str, Any]], app: str) -> list[list[str]]:
    """Responders' requests touching APP (its own, and region-wide drains/restores), newest first."""
    rows = []
    for action in sorted(actions, key=lambda a: a["metadata"].get("creationTimestamp", ""), reverse=True):
        spec, status = action.get("spec") or {}, action.get("status") or {}
        if spec.get("app") not in (app, None):
            continue
        target = " ".join(p for p in (spec.get("app"), spec.get("region")) if p)
        outcome = " ".join(p for p in (status.get("state", "Pending"), status.get("message", "")) if p)
        rows.append(
            [
                action["metadata"].get("creationTimestamp", ""),
                spec.get("action", ""),
                target,
                spec.get("requestedBy", ""),
                spec.get("reason", ""),
                outcome,  # whole: the table folds it, -o wide and the browser show it all
            ]
        )
    return rows


def rendered_by(release: dict[str, Any]) -> str:
    """The pinned renderer recorded on the Release, e.g. "helm v3.22.0" ("" for Jinja templates)."""
    return ", ".join(f"{tool} {version}" for tool, version in sorted((release["spec"].get("renderers") or {}).items()))


def region_field(state: dict[str, Any], name: str) -> Any:
    """A region status field as stored (camelCase, rollout/release.py) or in its Python spelling."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
    value = state.get(name)
    return state.get(snake) or "" if value is None else value

"""Read-side views of Release and ReleaseAction objects, shared by the CLI (`rollout status`,
`history`) and the browser view (`rollout ui`): pure functions of the stored objects and the time,
no IO, no terminal or HTML."""

from __future__ import annotations

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
        analysis = state.get("analysis") or {}
        row = [
            f"{index + 1} {wave}",
            region,
            state.get("phase", "Pending"),
            step,
            weight,
            last_verdict(analysis, detailed=wide),
            state.get("message", ""),
        ]
        if wide:
            row += [smoke_left(state, now), region_field(state, "startedAt"), region_field(state, "completedAt")]
        rows.append(row)
    return rows


def last_verdict(analysis: dict[str, Any], *, detailed: bool = False) -> str:
    """The newest measurement as "check=verdict"; `detailed` adds its value, baseline and
    threshold when the status records them."""
    latest: dict[str, Any] | None = None
    for run in analysis.values():
        if isinstance(run, dict):
            for m in run.get("measurements", []):
                if latest is None or m["at"] >= latest["at"]:
                    latest = m
    if latest is None:
        return ""
    text = f"{latest['check']}={latest['verdict']}"
    numbers = [f"{key} {latest[key]}" for key in ("value", "threshold", "baseline") if latest.get(key) is not None]
    return f"{text} ({', '.join(numbers)})" if detailed and numbers else text


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

"""The browser view's pages as plain values: pure functions of the stored Release and ReleaseAction
objects and the time, no IO and no HTML (the templates only lay these out). The row helpers of
`rollout status` and `history` (rollout/views.py) are reused, so both views say the same thing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import escape

from config.times import parse_time
from rollout.views import (
    action_rows,
    active_release,
    history_rows,
    last_verdict,
    measured,
    measurement_numbers,
    region_field,
    rendered_by,
    smoke_left,
)

# Each phase has a colour (the CSS class "tone") AND an icon and its name, so nobody has to tell
# red from green: the label alone says it.
_LOOK: dict[str, tuple[str, str]] = {
    "Pending": ("idle", "·"),
    "Waiting": ("warn", "…"),
    "Progressing": ("busy", "▶"),
    "Smoke": ("busy", "◔"),
    "Paused": ("warn", "‖"),
    "Succeeded": ("good", "✓"),
    "Failed": ("bad", "✗"),
    "Draining": ("bad", "↓"),
    "RollingBack": ("bad", "↺"),
    "RolledBack": ("bad", "↶"),
    "Superseded": ("idle", "⤳"),
}
REGION_ACTIONS = ("drain", "restore")
APP_ACTIONS = ("pause", "resume", "promote", "rollback", "abort")


def look(phase: str) -> tuple[str, str]:
    """(tone, icon) of a phase; an unknown phase is shown neutrally with a question mark."""
    return _LOOK.get(phase, ("idle", "?"))


@dataclass(frozen=True)
class Cell:
    """One region of one release."""

    region: str
    phase: str
    tone: str
    icon: str
    wave: int  # 1-based
    weight: str
    smoke_left: str
    step: str
    verdict: str  # the measurement that explains the region (the failing one if it failed); release page only
    message: str
    waiting: str  # why a person is needed here ("" when not)
    frozen: bool  # a freeze keeps this region from starting


@dataclass(frozen=True)
class FleetRow:
    app: str
    release: str
    version: str
    phase: str
    tone: str
    icon: str
    wave: str  # "2/3 main"
    message: str
    waiting: str  # waiting_on_person: why a person is needed ("" when not)
    frozen: str  # status.frozen: the freeze holding the release, its reason, owner and end ("" when none)
    cells: tuple[Cell | None, ...]  # one per fleet region, None where the app is not planned

    @property
    def asks(self) -> str:
        """The reasons it waits on a person but the freeze, which its ❄ marker already shows."""
        return ", ".join(r for r in self.waiting.split(", ") if r and r != "frozen") if self.frozen else self.waiting


@dataclass(frozen=True)
class Fleet:
    regions: tuple[str, ...]
    rows: tuple[FleetRow, ...]

    @property
    def waiting(self) -> int:
        return sum(1 for r in self.rows if r.waiting)


def latest_by_app(releases: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each app's active release (its newest, as `rollout status` shows it)."""
    by_app: dict[str, list[dict[str, Any]]] = {}
    for rel in releases:
        by_app.setdefault(rel["spec"]["app"], []).append(rel)
    out = {}
    for app, rels in sorted(by_app.items()):
        rels.sort(key=lambda r: (r["metadata"].get("creationTimestamp", ""), r["metadata"]["name"]))
        active = active_release(rels)
        if active is not None:
            out[app] = active
    return out


_AT_REST = frozenset({"Pending", "Succeeded", "RolledBack", "Failed"})


def cell(
    release: dict[str, Any], region: str, now: datetime, frozen: frozenset[str] = frozenset(), *, verdict: bool = False
) -> Cell | None:
    """The region of the release (None where it is not planned); `verdict`: with the measurement
    that explains it (only the release page shows it: the fleet's 10,000 cells skip the work)."""
    waves = release["spec"].get("waves") or []
    index = next((i for i, w in enumerate(waves) if region in w.get("regions", [])), None)
    if index is None:
        return None
    state = ((release.get("status") or {}).get("regions") or {}).get(region) or {}
    phase = str(state.get("phase", "Pending"))
    tone, icon = look(phase)
    strategy = state.get("strategy") or {}
    step = strategy.get("stepName") or (f"step {strategy['step']}" if "step" in strategy else "")
    return Cell(
        region=region,
        phase=phase,
        tone=tone,
        icon=icon,
        wave=index + 1,
        # The canary weight inside the region means something only while the region is in flight:
        # a finished rolling or promoted region reports 0, which read as "no traffic".
        weight="" if state.get("weight") is None or phase in _AT_REST else f"{state['weight']}%",
        smoke_left=smoke_left(state, now),
        step=str(step),
        verdict=last_verdict(state, detailed=True) if verdict else "",
        message=str(state.get("message", "")),
        waiting="frozen" if region in frozen else region_waiting(state),
        frozen=region in frozen,
    )


def region_waiting(state: dict[str, Any]) -> str:
    """Why this region waits on a person: an inconclusive analysis, or a strategy's pause step
    without a duration (it waits for `rollout promote`)."""
    message = str(state.get("message", ""))
    if message.startswith("inconclusive"):
        return "inconclusive"
    strategy = state.get("strategy") or {}
    if strategy.get("phase") == "Paused" or "until promoted" in str(strategy.get("message", "")):
        return "awaiting promotion"
    return ""


_SETTLED = frozenset({"Succeeded", "RollingBack", "RolledBack", "Superseded", "Failed"})


def waiting_on_person(release: dict[str, Any]) -> str | None:
    """Why the release waits on a person, or None when it does not. What counts: the release is
    paused (a responder or an inconclusive smoke window paused it); a wave's approval gate is closed
    (status.awaitingApproval: it waits for `rollout approve`); a freeze holds it (status.frozen:
    until the freeze ends, or someone lifts or overrides it); a region's analysis is inconclusive; a
    region's strategy waits for `rollout promote` (a pause step with no duration). The one
    predicate of the fleet's "waiting on a person" filter and of the markers on its rows."""
    status = release.get("status") or {}
    if status.get("phase") in _SETTLED:
        return None  # finished or rolling back: nothing is asked of a person
    reasons = []
    if status.get("phase") == "Paused":
        reasons.append("paused")
    if approval := status.get("awaitingApproval"):
        reasons.append(approval_text(approval))
    if status.get("frozen"):
        reasons.append("frozen")
    regions = status.get("regions") or {}
    reasons += sorted({f"{why} in {name}" for name, state in regions.items() if (why := region_waiting(state or {}))})
    return ", ".join(reasons) or None


def approval_text(approval: Any, *, full: bool = False) -> str:
    """status.awaitingApproval (rollout/approvals.py: wave, required, have, from, expired, refused)
    in words: "awaiting approval for wave main (1/2)"; `full` adds whose approvals count, the
    expired ones and the refusal standing."""
    if not isinstance(approval, dict):
        return "awaiting approval"
    text = "awaiting approval" + (f" for wave {approval['wave']}" if approval.get("wave") else "")
    if approval.get("required") is not None:
        text += f" ({approval.get('have', 0)}/{approval['required']}"
        text += f" from {approval['from']})" if full and approval.get("from") else ")"
    if full and approval.get("expired"):
        text += f"; {approval['expired']} expired"
    if full and approval.get("refused"):
        text += f"; refused by {approval['refused']}"
    return text


def frozen_regions(frozen: str) -> frozenset[str]:
    """The regions a freeze keeps from starting, as status.frozen names them ("frozen in a, b: ...",
    rollout/orchestrator.py); none when the text does not say."""
    if not frozen.startswith("frozen in ") or ": " not in frozen:
        return frozenset()
    return frozenset(r.strip() for r in frozen[len("frozen in ") : frozen.index(": ")].split(","))


def fleet_regions(releases: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    """Every planned region, earliest wave first (canaries on the left), then by name."""
    first: dict[str, int] = {}
    for rel in releases:
        for i, wave in enumerate(rel["spec"].get("waves") or []):
            for region in wave.get("regions", []):
                first[region] = min(first.get(region, i), i)
    return tuple(sorted(first, key=lambda r: (first[r], r)))


def wave_label(release: dict[str, Any]) -> str:
    waves = release["spec"].get("waves") or []
    if not waves:
        return ""
    current = int((release.get("status") or {}).get("currentWave", 0))
    current = min(max(current, 0), len(waves) - 1)
    return f"{current + 1}/{len(waves)} {waves[current]['name']}"


def fleet_view(releases: Iterable[dict[str, Any]], now: datetime, *, waiting_only: bool = False) -> Fleet:
    active = latest_by_app(releases)
    regions = fleet_regions(active.values())
    rows = []
    for app, rel in active.items():
        status = rel.get("status") or {}
        waiting = waiting_on_person(rel) or ""
        if waiting_only and not waiting:
            continue
        frozen = str(status.get("frozen") or "")
        held = frozen_regions(frozen)
        cells = tuple(cell(rel, r, now, held) for r in regions)
        phase = str(status.get("phase", "Pending"))
        tone, icon = look(phase)
        rows.append(
            FleetRow(
                app=app,
                release=rel["metadata"]["name"],
                version=str(rel["spec"].get("version", "")),
                phase=phase,
                tone=tone,
                icon=icon,
                wave=wave_label(rel),
                message=str(status.get("message", "")),
                waiting=waiting,
                frozen=frozen,
                cells=cells,
            )
        )
    return Fleet(regions, tuple(rows))


# --- a release ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wave:
    number: int
    name: str
    smoke_seconds: float
    cells: tuple[Cell, ...]
    started: str  # the first region's start ("" before it starts)
    finished: str  # the last region's finish ("" until every region finished)
    state: str  # "done", "current", "planned"


@dataclass(frozen=True)
class Chart:
    region: str
    check: str
    svg: str
    latest: str  # the newest measurement in words


@dataclass(frozen=True)
class Drain:
    region: str
    started: str
    seconds: str
    target: str
    met: str  # "met", "missed", "" (in progress)
    restored: str
    percent: int  # of the bar: drain seconds against the target, capped at 100


@dataclass(frozen=True)
class AuditLine:
    time: str
    by: str
    action: str
    region: str
    reason: str


@dataclass(frozen=True)
class ReleasePage:
    name: str
    app: str
    version: str
    commit: str
    phase: str
    tone: str
    icon: str
    message: str
    failed_region: str
    waiting: str  # waiting_on_person ("" when nobody is needed)
    approval: str  # the closed approval gate it waits at, in full ("" when none)
    frozen: str  # the freeze holding it: which, why, whose, until when ("" when none)
    freeze_override: str  # who overrode freezes for it, and why ("" when nobody)
    rendered_by: str
    waves: tuple[Wave, ...]
    charts: tuple[Chart, ...]
    drains: tuple[Drain, ...]
    audit: tuple[AuditLine, ...]
    requests: tuple[tuple[str, ...], ...]  # ReleaseActions for the app: requested, action, target, by, reason, outcome


def release_page(release: dict[str, Any], actions: Sequence[dict[str, Any]], now: datetime) -> ReleasePage:
    spec, status = release["spec"], release.get("status") or {}
    regions = status.get("regions") or {}
    current = int(status.get("currentWave", 0))
    frozen = str(status.get("frozen") or "")
    held = frozen_regions(frozen)
    waves = []
    for i, w in enumerate(spec.get("waves") or []):
        found = (cell(release, r, now, held, verdict=True) for r in w.get("regions", []))
        cells = tuple(c for c in found if c is not None)
        states = [regions.get(r) or {} for r in w.get("regions", [])]
        starts = sorted(str(region_field(s, "startedAt")) for s in states if region_field(s, "startedAt"))
        ends = [str(region_field(s, "completedAt")) for s in states]
        finished = max(e for e in ends if e) if ends and all(ends) else ""
        state = "done" if finished else "current" if i == current or starts else "planned"
        waves.append(
            Wave(i + 1, w["name"], float(w.get("smokeSeconds", 0)), cells, starts[0] if starts else "", finished, state)
        )
    charts = []
    for region in sorted(regions):
        for check, points in measurements_by_check(regions[region].get("analysis") or {}).items():
            charts.append(Chart(region, check, chart_svg(points), describe(points[-1])))
    phase = str(status.get("phase", "Pending"))
    tone, icon = look(phase)
    return ReleasePage(
        name=release["metadata"]["name"],
        app=spec["app"],
        version=str(spec.get("version", "")),
        commit=str(spec.get("commit", "")),
        phase=phase,
        tone=tone,
        icon=icon,
        message=str(status.get("message", "")),
        failed_region=str(status.get("failedRegion") or ""),
        waiting=waiting_on_person(release) or "",
        approval=approval_text(gate, full=True) if (gate := status.get("awaitingApproval")) else "",
        frozen=frozen,
        freeze_override=str(status.get("freezeOverride") or ""),
        rendered_by=rendered_by(release),
        waves=tuple(waves),
        charts=tuple(charts),
        drains=tuple(drain(d) for d in status.get("drains") or []),
        audit=tuple(
            AuditLine(
                a.get("time", ""),
                a.get("by", "controller"),
                a.get("action", ""),
                a.get("region") or "",
                a.get("reason", ""),
            )
            for a in reversed(status.get("audit") or [])
        ),
        requests=tuple(tuple(r) for r in action_rows(list(actions), spec["app"])),
    )


def drain(record: dict[str, Any]) -> Drain:
    seconds, target = record.get("seconds"), record.get("targetSeconds")
    met = record.get("met")
    percent = int(min(100.0, 100.0 * float(seconds) / float(target))) if seconds is not None and target else 0
    return Drain(
        region=str(record.get("region", "")),
        started=str(record.get("startedAt", "")),
        seconds="" if seconds is None else f"{float(seconds):.0f}s",
        target="" if target is None else f"{float(target):.0f}s",
        met="" if met is None else "met" if met else "missed",
        restored=str(record.get("restoredAt") or ""),
        percent=percent,
    )


Point = dict[str, Any]


def measurements_by_check(analysis: dict[str, Any]) -> dict[str, list[Point]]:
    """Every run's measurements of a region, per check, oldest first."""
    out: dict[str, list[Point]] = {}
    for run in analysis.values():
        if isinstance(run, dict):
            for m in run.get("measurements", []):
                out.setdefault(str(m.get("check", "?")), []).append(m)
    for points in out.values():
        points.sort(key=lambda m: str(m.get("at", "")))
    return dict(sorted(out.items()))


def describe(m: Point) -> str:
    numbers = measurement_numbers(m)
    text = f"{m.get('verdict', '?')} at {m.get('at', '?')}"
    return f"{text} ({numbers})" if numbers else text


_W, _H, _PAD = 320, 90, 6
_MARK = {"success": "good", "failure": "bad", "inconclusive": "warn", "error": "warn"}


def chart_svg(points: Sequence[Point]) -> str:
    """A small inline SVG: the check's value over time (points shaped and coloured by verdict),
    its threshold (dashed) and baseline (dotted) when recorded. Only numbers reach the markup."""
    times = [parse_time(str(p.get("at"))) for p in points]
    xs = [t.timestamp() if t else 0.0 for t in times]
    series = {k: [_num(p.get(k)) for p in points] for k in ("value", "threshold", "baseline")}
    ys = [y for values in series.values() for y in values if y is not None]
    lo, hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if hi - lo < 1e-12:  # one value: a band of 10% around it (a 0.23 s latency drawn from -0.77 s read wrong)
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    span = (x1 - x0) or 1.0

    def px(x: float) -> float:
        return _PAD + (x - x0) / span * (_W - 2 * _PAD) if len(xs) > 1 else _W / 2

    def py(y: float) -> float:
        return _H - _PAD - (y - lo) / (hi - lo) * (_H - 2 * _PAD)

    parts = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img">']
    for key, css in (("threshold", "threshold"), ("baseline", "baseline"), ("value", "value")):
        line = [(px(x), py(y)) for x, y in zip(xs, series[key], strict=True) if y is not None]
        if line:
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in line)
            parts.append(f'<polyline class="{css}" points="{coords}"/>')
    for x, y, p in zip(xs, series["value"], points, strict=True):
        if y is not None:
            tone = _MARK.get(str(p.get("verdict")), "idle")
            parts.append(f'<circle class="{tone}" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3"/>')
    check = str(points[0].get("check", "")) if points else ""
    top, bottom = escape(measured(check, hi)), escape(measured(check, lo))
    parts.append(f'<text x="{_PAD}" y="12">{top}</text><text x="{_PAD}" y="{_H - 1}">{bottom}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None  # NaN, inf: not drawable


# --- an app's history, a region -----------------------------------------------------------------


HISTORY_HEADER = ("release", "version", "outcome", "created", "took", "failed region", "people", "rendered by")
REQUEST_HEADER = ("requested", "action", "target", "by", "reason", "outcome")


@dataclass(frozen=True)
class HistoryPage:
    app: str
    rows: tuple[tuple[str, ...], ...]
    requests: tuple[tuple[str, ...], ...]


def history_page(app: str, releases: Iterable[dict[str, Any]], actions: Sequence[dict[str, Any]]) -> HistoryPage:
    mine = sorted(
        (r for r in releases if r["spec"]["app"] == app),
        key=lambda r: (r["metadata"].get("creationTimestamp", ""), r["metadata"]["name"]),
    )
    return HistoryPage(
        app,
        tuple(tuple(r) for r in history_rows(mine)),
        tuple(tuple(r) for r in action_rows(list(actions), app)),
    )


@dataclass(frozen=True)
class RegionApp:
    app: str
    release: str
    version: str
    cell: Cell


@dataclass(frozen=True)
class RegionPage:
    region: str
    apps: tuple[RegionApp, ...]
    drain: str  # "drained since ...", "restored at ...", "serving" (no drain recorded)
    drained: bool
    requests: tuple[tuple[str, ...], ...]  # drain/restore requests for the region, newest first


def region_page(
    region: str, releases: Iterable[dict[str, Any]], actions: Sequence[dict[str, Any]], now: datetime
) -> RegionPage:
    all_releases = list(releases)
    apps = []
    for app, rel in latest_by_app(all_releases).items():
        c = cell(rel, region, now)
        if c is not None:
            apps.append(RegionApp(app, rel["metadata"]["name"], str(rel["spec"].get("version", "")), c))
    drains = [
        d for rel in all_releases for d in (rel.get("status") or {}).get("drains") or [] if d.get("region") == region
    ]
    requests = []
    for action in sorted(actions, key=lambda a: a["metadata"].get("creationTimestamp", ""), reverse=True):
        spec, status = action.get("spec") or {}, action.get("status") or {}
        if spec.get("region") == region and spec.get("action") in REGION_ACTIONS and not spec.get("app"):
            outcome = " ".join(p for p in (status.get("state", "Pending"), status.get("message", "")) if p)
            requests.append(
                (
                    action["metadata"].get("creationTimestamp", ""),
                    str(spec.get("action", "")),
                    region,
                    str(spec.get("requestedBy", "")),
                    str(spec.get("reason", "")),
                    outcome,
                )
            )
    text, drained = drain_state(drains, requests)
    return RegionPage(region, tuple(apps), text, drained, tuple(requests))


def drain_state(drains: Sequence[dict[str, Any]], requests: Sequence[tuple[str, ...]]) -> tuple[str, bool]:
    """The region's global traffic as the records say: the newest drain or restore wins."""
    events: list[tuple[str, str]] = []
    for d in drains:
        events.append((str(d.get("startedAt", "")), "drained by a release since"))
        if d.get("restoredAt"):
            events.append((str(d["restoredAt"]), "restored at"))
    for requested, action, *_rest, outcome in requests:
        if outcome.startswith("Done"):
            events.append((requested, "drained by a responder since" if action == "drain" else "restored at"))
    if not events:
        return "serving (no drain recorded)", False
    at, what = max(events)
    return f"{what} {at}", what.startswith("drained")

"""Change freezes: windows during which no release starts a new region. Pure: no IO but the parse.

Two sources, one type. `freezes.yaml` at the repository root holds the planned ones (a holiday, a
weekly quiet time), reviewed in Git like everything else; responders add run-time ones with
`rollout freeze` (a ReleaseAction, turned into a `Freeze` by rollout/actions.py). A freeze covers
some apps (none listed: all) in some regions (none listed: all), either once (`start`..`end`) or
again and again (`cron` in `timeZone`, each time for `duration`). docs/repository.md, "Freezes".

    freezes:
      - name: year-end
        reason: year-end trading peak
        owner: sre@example.com
        start: 2026-12-20T00:00:00+01:00
        end: 2027-01-04T09:00:00+01:00
      - name: weekend
        reason: nobody on call for the shop team at weekends
        owner: shop-team
        apps: [checkout]
        cron: "0 18 * * fri"
        duration: 63h
        timeZone: Europe/Berlin

Recurring windows: `cron` is five crontab fields, read in `timeZone` by APScheduler's CronTrigger
(already a dependency; croniter's future was uncertain). Day-of-week numbers are refused
(APScheduler counts 0 as Monday, crontab as Sunday): write names (mon-fri). `duration` is elapsed
time, so a window across a daylight-saving change is still that long. On the spring-forward day a
start inside the skipped hour happens one hour later by the wall clock; on the autumn day a start
inside the repeated hour happens twice, and the two windows merge into one longer freeze.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from config.durations import format_duration, parse_duration
from config.errors import Issue
from config.times import format_time

FILE = "freezes.yaml"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
FIELDS = frozenset({"name", "reason", "owner", "apps", "regions", "start", "end", "cron", "duration", "timeZone"})
Bad = Callable[[str, str, str], None]  # (field, problem, fix)
MAX_MERGED = 100  # later windows merged into the reported end (cosmetic: each pass looks again)
DST_MARGIN = timedelta(hours=3)  # a start near a daylight-saving change is searched for this much earlier


@dataclass(frozen=True)
class Freeze:
    name: str
    reason: str
    owner: str
    apps: tuple[str, ...] = ()  # empty: every app
    regions: tuple[str, ...] = ()  # empty: every region
    start: datetime | None = None  # a one-off window: start..end (end None: until lifted)
    end: datetime | None = None
    cron: str | None = None  # a recurring window: each start, for `duration`, read in `time_zone`
    duration: timedelta | None = None
    time_zone: str = "UTC"
    source: str = FILE  # where it comes from: freezes.yaml, or the ReleaseAction that set it

    def covers(self, app: str, region: str) -> bool:
        return (not self.apps or app in self.apps) and (not self.regions or region in self.regions)

    def window(self, now: datetime) -> tuple[datetime, datetime | None] | None:
        """The window holding `now` (start, end; end None: no end), or None when `now` is outside."""
        if self.cron is None:
            if self.start is not None and now < self.start:
                return None
            if self.end is not None and now >= self.end:
                return None
            return (self.start or now, self.end)
        assert self.duration is not None
        trigger, zone = _trigger(self.cron, self.time_zone), ZoneInfo(self.time_zone)
        latest = _latest_fire(trigger, zone, now, self.duration + DST_MARGIN)
        if latest is None or now >= latest + self.duration:
            return None
        end = latest + self.duration  # elapsed time, in UTC: not wall-clock arithmetic
        fire = latest.astimezone(zone)
        for _ in range(MAX_MERGED):  # a window that starts before this one ends extends it
            fire = trigger.get_next_fire_time(fire, fire)
            if fire is None or fire.astimezone(UTC) > end:
                break
            end = max(end, fire.astimezone(UTC) + self.duration)
        return (latest, end)

    def describe(self, now: datetime) -> str:
        """`year-end (year-end trading peak; owner sre@...) until 2027-01-04T08:00:00.000Z`."""
        window = self.window(now)
        until = f"until {format_time(window[1])}" if window and window[1] else "until lifted"
        return f"{self.name} ({self.reason}; owner {self.owner}) {until}"


def active_freezes(freezes: Iterable[Freeze], app: str, region: str, now: datetime) -> list[Freeze]:
    """The freezes that cover `app` in `region` at `now`, the one lasting longest first."""
    found = [(f, f.window(now)) for f in freezes if f.covers(app, region)]
    active = [(f, w) for f, w in found if w is not None]
    far = datetime.max.replace(tzinfo=UTC)
    return [f for f, w in sorted(active, key=lambda fw: (fw[1][1] or far, fw[0].name), reverse=True)]


def frozen_until(freezes: Sequence[Freeze], now: datetime) -> datetime | None:
    """When the last of `freezes` ends at the earliest (None: one has no end)."""
    ends = [w[1] for f in freezes if (w := f.window(now)) is not None]
    return None if not ends or any(e is None for e in ends) else max(e for e in ends if e is not None)


# --- parsing ------------------------------------------------------------------------------------


def parse_freezes(
    data: Any,
    issues: list[Issue],
    apps: Iterable[str] | None = None,
    regions: Iterable[str] | None = None,
    shown: str = FILE,
) -> list[Freeze]:
    """The freezes of a loaded freezes.yaml; every problem is added to `issues` naming the file,
    the field and the fix. `apps`/`regions`: the repository's names, to refuse unknown ones."""
    if data is None:
        return []
    if not isinstance(data, Mapping) or set(data) - {"freezes"}:
        issues.append(Issue(shown, "", "must be a mapping with one key, freezes", "write freezes: [...] (a list)"))
        return []
    items = data.get("freezes") or []
    if not isinstance(items, list):
        issues.append(Issue(shown, "freezes", "must be a list", "write one '- name: ...' entry per freeze"))
        return []
    out: list[Freeze] = []
    seen: set[str] = set()
    known_apps = None if apps is None else frozenset(apps)
    known_regions = None if regions is None else frozenset(regions)
    for index, item in enumerate(items):
        where = f"freezes[{index}]"
        freeze = _parse_one(item, where, shown, issues, known_apps, known_regions)
        if freeze is None:
            continue
        if freeze.name in seen:
            issues.append(
                Issue(shown, f"{where}.name", f"{freeze.name!r} is used twice", "give each freeze its own name")
            )
            continue
        seen.add(freeze.name)
        out.append(freeze)
    return out


def _parse_one(
    item: Any,
    where: str,
    shown: str,
    issues: list[Issue],
    known_apps: frozenset[str] | None,
    known_regions: frozenset[str] | None,
) -> Freeze | None:
    if not isinstance(item, Mapping):
        issues.append(Issue(shown, where, "must be a mapping", "write name, reason, owner and a window"))
        return None
    before = len(issues)

    def bad(key: str, problem: str, fix: str) -> None:
        issues.append(Issue(shown, f"{where}.{key}" if key else where, problem, fix))

    for key in sorted(set(map(str, item)) - FIELDS):
        bad(key, "is not a freeze field", f"remove it; fields are {', '.join(sorted(FIELDS))}")
    texts: dict[str, str] = {}
    for key in ("name", "reason", "owner"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            bad(key, "is missing", f"add {key}: (people read it in rollout status and notifications)")
        else:
            texts[key] = value.strip()
    if "name" in texts and not DNS_LABEL.match(texts["name"]):
        bad("name", f"{texts['name']!r} is not a DNS label", "use lowercase letters, digits and '-'")
    scope: dict[str, tuple[str, ...]] = {}
    for key, known in (("apps", known_apps), ("regions", known_regions)):
        value = item.get(key)
        if value is None:
            scope[key] = ()
            continue
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            bad(key, "must be a non-empty list of names", f"write {key}: [a, b], or leave it out for all")
            continue
        unknown = sorted(set(value) - known) if known is not None else []
        if unknown:
            listed = ", ".join(sorted(known or ())) or "none"
            bad(key, f"{', '.join(unknown)} not in the repository (known: {listed})", "check the names")
        scope[key] = tuple(value)
    zone = item.get("timeZone", "UTC")
    if not isinstance(zone, str) or not _zone_ok(zone):
        bad("timeZone", f"{zone!r} is not an IANA time zone", "write e.g. Europe/Berlin, America/New_York or UTC")
        zone = "UTC"
    once = {k for k in ("start", "end") if item.get(k) is not None}
    recurring = {k for k in ("cron", "duration") if item.get(k) is not None}
    start = end = None
    cron = None
    duration = None
    if once and recurring:
        bad("", "has both a one-off window (start/end) and a recurring one (cron/duration)", "keep one of them")
    elif recurring:
        cron, duration = _recurring(item, zone, bad)
    elif once or not recurring:
        if not once:
            bad("", "has no window", "add start and end (one-off) or cron and duration (recurring)")
        start = _instant(item.get("start"), "start", zone, bad) if "start" in once else None
        end = _instant(item.get("end"), "end", zone, bad) if "end" in once else None
        if "end" not in once and once:
            bad("end", "is missing", "add end: (a run-time freeze without end is `rollout freeze`)")
        if start and end and end <= start:
            bad("end", f"{format_time(end)} is not after start {format_time(start)}", "set end after start")
    if len(issues) > before:
        return None
    return Freeze(
        texts["name"],
        texts["reason"],
        texts["owner"],
        scope["apps"],
        scope["regions"],
        start,
        end,
        cron,
        duration,
        zone,
    )


def _recurring(item: Mapping[str, Any], zone: str, bad: Bad) -> tuple[str | None, timedelta | None]:
    cron, duration = item.get("cron"), item.get("duration")
    if cron is None or duration is None:
        bad("duration" if cron is not None else "cron", "is missing", "a recurring freeze needs cron and duration")
        return None, None
    problem = cron_problem(cron, zone)
    if problem:
        bad("cron", problem, "write five crontab fields with day names, e.g. '0 18 * * fri'")
    parsed: timedelta | None = None
    try:
        parsed = parse_duration(str(duration)) if not isinstance(duration, bool | int | float) else None
        if parsed is None:
            bad("duration", f"{duration!r} has no unit", f"write e.g. {duration}h")
    except ValueError as exc:
        bad("duration", str(exc).split("; ")[0], "write e.g. 8h, 2d or 1h30m")
    return (cron if not problem else None), parsed


def cron_problem(cron: Any, zone: str = "UTC") -> str | None:
    """Why `cron` is not a usable five-field crontab expression (None: it is)."""
    if not isinstance(cron, str):
        return f"{cron!r} is not a crontab expression"
    fields = cron.split()
    if len(fields) != 5:
        return f"{cron!r} has {len(fields)} fields, not 5 (minute hour day month weekday)"
    if re.search(r"\d", fields[4]):
        return f"day of week {fields[4]!r} is numeric (0 means Monday to APScheduler, Sunday to cron)"
    try:
        _trigger(cron, zone)
    except ValueError as exc:
        return f"{cron!r} is not a crontab expression ({exc})"
    return None


def _instant(value: Any, key: str, zone: str, bad: Bad) -> datetime | None:
    """An RFC 3339 time; one without an offset is read in the freeze's timeZone."""
    if isinstance(value, datetime):
        parsed: datetime | None = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            bad(key, f"{value!r} is not a time", "write e.g. 2026-12-20T00:00:00+01:00")
            return None
    assert parsed is not None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    return parsed.astimezone(UTC)


def _zone_ok(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _latest_fire(trigger: CronTrigger, zone: ZoneInfo, now: datetime, within: timedelta) -> datetime | None:
    """The last start at or before `now` and no more than `within` before it (UTC), or None.
    CronTrigger only looks forward: probe from ever earlier points (1 min, 2, 4, ... back) until a
    start at or before `now` turns up, then step forward to the last one: a few calls, whatever the
    cron's frequency."""
    step = timedelta(minutes=1)
    while True:
        step = min(step, within)
        fire = trigger.get_next_fire_time(None, (now - step).astimezone(zone))
        if fire is not None and fire.astimezone(UTC) <= now:
            break
        if step >= within:
            return None
        step *= 2
    while True:
        following = trigger.get_next_fire_time(fire, fire)
        if following is None or following.astimezone(UTC) > now:
            found: datetime = fire.astimezone(UTC)
            return found
        fire = following


def _trigger(cron: str, zone: str) -> CronTrigger:
    return CronTrigger.from_crontab(cron, timezone=ZoneInfo(zone))


# --- run-time freezes (ReleaseActions) -----------------------------------------------------------


def runtime_freeze(
    name: str, reason: str, by: str, app: str | None, region: str | None, since: datetime, until: datetime | None
) -> Freeze:
    """A responder's freeze (`rollout freeze`), as the same type as the planned ones."""
    return Freeze(
        name,
        reason,
        by,
        (app,) if app else (),
        (region,) if region else (),
        start=since,
        end=until,
        source=f"ReleaseAction {name}",
    )


def summary(freeze: Freeze) -> str:
    """One line for `rollout freezes`-like listings: scope and window."""
    scope = f"{','.join(freeze.apps) or 'all apps'} in {','.join(freeze.regions) or 'all regions'}"
    if freeze.cron:
        assert freeze.duration is not None
        return f"{scope}: '{freeze.cron}' {freeze.time_zone} for {format_duration(freeze.duration)}"
    ends = format_time(freeze.end) if freeze.end else "until lifted"
    return f"{scope}: {format_time(freeze.start) if freeze.start else 'now'} - {ends}"

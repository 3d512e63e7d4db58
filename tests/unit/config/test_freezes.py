"""config/freezes.py: parsing freezes.yaml (errors name file, field and fix), one-off and recurring
windows in a time zone (across daylight-saving changes), and which app/region a freeze covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.errors import InvalidRepository, Issue
from config.freezes import Freeze, active_freezes, frozen_until, parse_freezes, runtime_freeze
from config.loader import load_repository


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def parse(text: str, apps: tuple[str, ...] = ("shop", "cart"), regions: tuple[str, ...] = ("eu", "us")) -> Any:
    issues: list[Issue] = []
    freezes = parse_freezes(yaml.safe_load(text), issues, apps, regions)
    return freezes, issues


WEEKEND = """
freezes:
  - name: weekend
    reason: nobody on call
    owner: shop-team
    apps: [shop]
    cron: "0 18 * * fri"
    duration: 63h
    timeZone: Europe/Berlin
  - name: year-end
    reason: peak
    owner: sre
    regions: [eu]
    start: 2026-12-20T00:00:00
    end: 2027-01-04T09:00:00+01:00
    timeZone: Europe/Berlin
"""


def test_parses_both_kinds() -> None:
    freezes, issues = parse(WEEKEND)
    assert issues == []
    weekend, year_end = freezes
    assert weekend.cron == "0 18 * * fri" and weekend.duration == timedelta(hours=63)
    assert weekend.apps == ("shop",) and weekend.regions == ()
    assert year_end.start == utc(2026, 12, 19, 23)  # no offset: read in the freeze's timeZone
    assert year_end.end == utc(2027, 1, 4, 8)


def test_one_off_window_and_selection() -> None:
    (_, year_end), _ = parse(WEEKEND)
    assert active_freezes([year_end], "shop", "eu", utc(2026, 12, 19, 22, 59)) == []
    assert active_freezes([year_end], "shop", "eu", utc(2026, 12, 19, 23)) == [year_end]
    assert active_freezes([year_end], "cart", "eu", utc(2026, 12, 25)) == [year_end]  # every app
    assert active_freezes([year_end], "shop", "us", utc(2026, 12, 25)) == []  # eu only
    assert active_freezes([year_end], "shop", "eu", utc(2027, 1, 4, 8)) == []  # end is exclusive
    assert year_end.window(utc(2026, 12, 25)) == (utc(2026, 12, 19, 23), utc(2027, 1, 4, 8))


def test_recurring_window_in_its_time_zone() -> None:
    (weekend, _), _ = parse(WEEKEND)
    # Friday 2026-12-04 18:00 in Berlin (CET, +01:00) is 17:00 UTC; 63h later is Monday 08:00 UTC.
    assert active_freezes([weekend], "shop", "eu", utc(2026, 12, 4, 16, 59)) == []
    assert active_freezes([weekend], "shop", "eu", utc(2026, 12, 4, 17)) == [weekend]
    assert weekend.window(utc(2026, 12, 6, 12)) == (utc(2026, 12, 4, 17), utc(2026, 12, 7, 8))
    assert frozen_until([weekend], utc(2026, 12, 6, 12)) == utc(2026, 12, 7, 8)
    assert active_freezes([weekend], "shop", "us", utc(2026, 12, 7, 7, 59)) == [weekend]
    assert active_freezes([weekend], "shop", "us", utc(2026, 12, 7, 8)) == []
    assert active_freezes([weekend], "cart", "eu", utc(2026, 12, 5)) == []  # shop only
    # in summer (CEST, +02:00) the same wall-clock start is 16:00 UTC
    assert weekend.window(utc(2026, 7, 4)) == (utc(2026, 7, 3, 16), utc(2026, 7, 6, 7))


def test_duration_is_elapsed_time_across_daylight_saving() -> None:
    # Saturday 2026-10-24 22:00 in Berlin (CEST) = 20:00 UTC; clocks go back on Sunday 03:00 -> 02:00.
    night = Freeze("night", "r", "o", cron="0 22 * * sat", duration=timedelta(hours=10), time_zone="Europe/Berlin")
    assert night.window(utc(2026, 10, 25, 5)) == (utc(2026, 10, 24, 20), utc(2026, 10, 25, 6))
    assert night.window(utc(2026, 10, 25, 6)) is None  # 10 elapsed hours: 07:00 CET, not 08:00


def test_start_in_the_skipped_hour_and_in_the_repeated_hour() -> None:
    daily = Freeze("d", "r", "o", cron="30 2 * * *", duration=timedelta(minutes=30), time_zone="Europe/Berlin")
    # 2026-03-29: 02:00 -> 03:00; 02:30 does not exist, the window starts one wall-clock hour later
    assert daily.window(utc(2026, 3, 29, 1, 40)) == (utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2))
    assert daily.window(utc(2026, 3, 29, 0, 40)) is None
    # 2026-10-25: 02:30 happens twice (00:30 and 01:30 UTC); the two windows do not touch here
    assert daily.window(utc(2026, 10, 25, 0, 40)) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1))
    assert daily.window(utc(2026, 10, 25, 1, 40)) == (utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2))
    longer = Freeze("l", "r", "o", cron="30 2 * * *", duration=timedelta(hours=1), time_zone="Europe/Berlin")
    assert longer.window(utc(2026, 10, 25, 0, 40)) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 2, 30))


def test_other_time_zones() -> None:
    nyc = Freeze("n", "r", "o", cron="0 9 * * mon-fri", duration=timedelta(hours=1), time_zone="America/New_York")
    assert nyc.window(utc(2026, 3, 6, 14, 30)) == (utc(2026, 3, 6, 14), utc(2026, 3, 6, 15))  # EST
    assert nyc.window(utc(2026, 3, 9, 13, 30)) == (utc(2026, 3, 9, 13), utc(2026, 3, 9, 14))  # EDT from 03-08
    kolkata = Freeze("k", "r", "o", cron="0 0 1 * *", duration=timedelta(days=1), time_zone="Asia/Kolkata")
    assert kolkata.window(utc(2026, 11, 30, 18, 30)) == (utc(2026, 11, 30, 18, 30), utc(2026, 12, 1, 18, 30))


def test_back_to_back_windows_merge() -> None:
    every_hour = Freeze("h", "r", "o", cron="0 * * * *", duration=timedelta(minutes=90))
    start, end = every_hour.window(utc(2026, 1, 1, 10, 15)) or (None, None)
    assert start == utc(2026, 1, 1, 10)  # the latest start; the ones after it extend the end
    assert end is not None and end > utc(2026, 1, 1, 12)
    every_minute = Freeze("m", "r", "o", cron="* * * * *", duration=timedelta(hours=63))
    assert every_minute.window(utc(2026, 1, 1, 10, 15, 30))[0] == utc(2026, 1, 1, 10, 15)  # type: ignore[index]


def test_runtime_freeze_without_end_and_longest_first() -> None:
    open_ended = runtime_freeze("freeze-x", "incident", "alice", None, None, utc(2026, 1, 1), None)
    short = runtime_freeze("freeze-y", "deploy", "bob", "shop", None, utc(2026, 1, 1), utc(2026, 1, 2))
    assert active_freezes([short, open_ended], "shop", "eu", utc(2026, 1, 1, 1)) == [open_ended, short]
    assert frozen_until([short, open_ended], utc(2026, 1, 1, 1)) is None
    assert frozen_until([short], utc(2026, 1, 1, 1)) == utc(2026, 1, 2)
    assert "until lifted" in open_ended.describe(utc(2026, 1, 1, 1))


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("freezes: {a: 1}", "freezes", "must be a list"),
        ("other: []", "", "one key, freezes"),
        ("freezes: [{name: x, reason: r, owner: o}]", "freezes[0]", "no window"),
        (
            "freezes: [{name: x, owner: o, start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z}]",
            "freezes[0].reason",
            "missing",
        ),
        (
            "freezes: [{name: X_, reason: r, owner: o, start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z}]",
            "freezes[0].name",
            "DNS label",
        ),
        (
            "freezes: [{name: x, reason: r, owner: o, start: 2026-01-02T00:00:00Z, end: 2026-01-01T00:00:00Z}]",
            "freezes[0].end",
            "not after start",
        ),
        ("freezes: [{name: x, reason: r, owner: o, start: 2026-01-01T00:00:00Z}]", "freezes[0].end", "missing"),
        (
            "freezes: [{name: x, reason: r, owner: o, start: soon, end: 2026-01-01T00:00:00Z}]",
            "freezes[0].start",
            "not a time",
        ),
        ("freezes: [{name: x, reason: r, owner: o, cron: '0 18 * * 5', duration: 1h}]", "freezes[0].cron", "numeric"),
        ("freezes: [{name: x, reason: r, owner: o, cron: '0 18 * *', duration: 1h}]", "freezes[0].cron", "4 fields"),
        (
            "freezes: [{name: x, reason: r, owner: o, cron: '0 25 * * *', duration: 1h}]",
            "freezes[0].cron",
            "not a crontab",
        ),
        ("freezes: [{name: x, reason: r, owner: o, cron: '0 1 * * *', duration: 3}]", "freezes[0].duration", "no unit"),
        ("freezes: [{name: x, reason: r, owner: o, cron: '0 1 * * *'}]", "freezes[0].duration", "missing"),
        (
            "freezes: [{name: x, reason: r, owner: o, cron: '0 1 * * *', duration: 1h, timeZone: Mars/Base}]",
            "freezes[0].timeZone",
            "IANA",
        ),
        (
            "freezes: [{name: x, reason: r, owner: o, cron: '0 1 * * *', duration: 1h, start: 2026-01-01T00:00:00Z}]",
            "freezes[0]",
            "both",
        ),
        (
            "freezes: [{name: x, reason: r, owner: o, cron: '0 1 * * *', duration: 1h, apps: [nope]}]",
            "freezes[0].apps",
            "nope not in the repository",
        ),
        (
            "freezes: [{name: x, reason: r, owner: o, cron: '0 1 * * *', duration: 1h, regions: eu}]",
            "freezes[0].regions",
            "list",
        ),
        (
            "freezes: [{name: x, reason: r, owner: o, cron: '0 1 * * *', duration: 1h, when: now}]",
            "freezes[0].when",
            "not a freeze field",
        ),
    ],
)
def test_bad_input_names_file_field_and_fix(text: str, field: str, words: str) -> None:
    freezes, issues = parse(text)
    assert freezes == []
    assert any(i.field == field and words in i.problem for i in issues), issues
    assert all(i.file == "freezes.yaml" and i.fix for i in issues)


def test_duplicate_names() -> None:
    one = "{name: x, reason: r, owner: o, cron: '0 1 * * *', duration: 1h}"
    freezes, issues = parse(f"freezes: [{one}, {one}]")
    assert len(freezes) == 1
    assert [(i.field, i.problem) for i in issues] == [("freezes[1].name", "'x' is used twice")]


def test_empty_file_is_no_freezes() -> None:
    assert parse("") == ([], [])
    assert parse("freezes: []") == ([], [])


# --- in the repository: `rollout validate` / load_repository -----------------------------------


def test_the_repository_loads_freezes_yaml(example_copy: Path) -> None:
    (example_copy / "freezes.yaml").write_text(
        "freezes:\n"
        "  - {name: weekend, reason: quiet, owner: sre, apps: [checkout], regions: [eu-west],"
        " cron: '0 18 * * fri', duration: 63h, timeZone: Europe/Berlin}\n"
    )
    repo = load_repository(example_copy)
    assert [f.name for f in repo.freezes] == ["weekend"] and repo.freezes[0].apps == ("checkout",)


def test_no_freezes_yaml_is_no_freezes(example_copy: Path) -> None:
    assert load_repository(example_copy).freezes == ()


def test_validate_names_the_file_and_field_of_a_bad_freeze(example_copy: Path) -> None:
    (example_copy / "freezes.yaml").write_text(
        "freezes:\n  - {name: x, reason: r, owner: o, apps: [nope], regions: [mars], start: 2026-01-02T00:00:00Z}\n"
    )
    with pytest.raises(InvalidRepository) as raised:
        load_repository(example_copy)
    found = {(i.file, i.field) for i in raised.value.issues}
    assert {("freezes.yaml", "freezes[0].apps"), ("freezes.yaml", "freezes[0].regions")} <= found
    assert ("freezes.yaml", "freezes[0].end") in found
    assert "freezes.yaml: freezes[0].apps: nope not in the repository" in raised.value.summary()

"""rollout ui's page values (rollout/ui/model.py): pure functions of stored objects and the time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rollout.ui import model

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def release(
    app: str,
    commit: str,
    created: str,
    phase: str = "Progressing",
    regions: dict[str, dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{app}-{commit}", "creationTimestamp": created},
        "spec": {
            "app": app,
            "commit": commit * 4,
            "version": f"v-{commit}",
            "waves": [
                {"name": "canary", "regions": ["eu-canary"], "smokeSeconds": 60, "maxParallel": 1},
                {"name": "main", "regions": ["us-east", "eu-west"], "smokeSeconds": 120, "maxParallel": 2},
            ],
        },
        "status": {"phase": phase, "currentWave": status.pop("currentWave", 0), "regions": regions or {}, **status},
    }


def action(name: str, act: str, created: str, state: str = "", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"action": act, "requestedBy": "rick", "reason": "why", **spec},
        "status": {"state": state, "message": "ok"} if state else {},
    }


def test_fleet_takes_each_apps_newest_release_and_orders_regions_by_wave() -> None:
    old = release("checkout", "aaa", "2026-01-01T10:00:00Z", "Succeeded")
    new = release(
        "checkout",
        "bbb",
        "2026-01-01T11:00:00Z",
        regions={
            "eu-canary": {
                "phase": "Smoke",
                "weight": 20,
                "smokeStartedAt": "2026-01-01T11:59:00Z",
                "smokeSeconds": 90,
            }
        },
    )
    other = release("search", "ccc", "2026-01-01T09:00:00Z", "Succeeded")
    fleet = model.fleet_view([new, other, old], NOW)
    assert fleet.regions == ("eu-canary", "eu-west", "us-east")
    assert [r.app for r in fleet.rows] == ["checkout", "search"]
    row = fleet.rows[0]
    assert (row.release, row.wave) == ("checkout-bbb", "1/2 canary")
    canary = row.cells[0]
    assert canary is not None
    assert (canary.phase, canary.tone, canary.icon, canary.weight, canary.smoke_left) == (
        "Smoke",
        "busy",
        "◔",
        "20%",
        "0m30s",
    )
    assert row.cells[1] is not None and row.cells[1].phase == "Pending" and row.cells[1].wave == 2


def test_every_phase_has_an_icon_and_a_colour_and_unknown_ones_are_marked() -> None:
    for phase in ("Pending", "Progressing", "Smoke", "Paused", "Succeeded", "Failed", "RolledBack", "Draining"):
        tone, icon = model.look(phase)
        assert tone and icon and icon != "?"
    assert model.look("Failed")[0] == "bad"
    assert model.look("Sideways") == ("idle", "?")


def test_failed_region_carries_its_reason_and_the_row_its_message() -> None:
    rel = release(
        "checkout",
        "bbb",
        "t",
        "RollingBack",
        regions={"eu-canary": {"phase": "Failed", "message": "error-rate 0.31 > 0.05"}},
        message="eu-canary failed: error-rate",
        failedRegion="eu-canary",
    )
    row = model.fleet_view([rel], NOW).rows[0]
    assert row.tone == "bad" and row.message == "eu-canary failed: error-rate"
    assert row.cells[0] is not None and row.cells[0].tone == "bad"
    assert row.cells[0].message == "error-rate 0.31 > 0.05"


def test_waiting_on_a_person_paused_inconclusive_or_awaiting_approval() -> None:
    paused = release("a", "111", "t", "Paused")
    inconclusive = release(
        "b", "222", "t", regions={"eu-canary": {"phase": "Smoke", "message": "inconclusive: no data"}}
    )
    approval = release(
        "c",
        "333",
        "t",
        regions={
            "eu-canary": {"phase": "Progressing", "strategy": {"phase": "Paused", "message": "paused until promoted"}}
        },
    )
    moving = release("d", "444", "t", regions={"eu-canary": {"phase": "Progressing"}})
    fleet = model.fleet_view([paused, inconclusive, approval, moving], NOW)
    assert {r.app: r.waiting for r in fleet.rows} == {
        "a": "paused",
        "b": "inconclusive in eu-canary",
        "c": "awaiting approval in eu-canary",
        "d": "",
    }
    assert fleet.waiting == 3
    assert [r.app for r in model.fleet_view([paused, inconclusive, approval, moving], NOW, waiting_only=True).rows] == [
        "a",
        "b",
        "c",
    ]


def test_release_page_waves_charts_drains_audit_and_requests() -> None:
    measurements = [
        {"check": "error-rate", "at": "2026-01-01T11:00:00Z", "verdict": "success", "value": 0.01, "threshold": 0.05},
        {"check": "error-rate", "at": "2026-01-01T11:01:00Z", "verdict": "failure", "value": 0.2, "threshold": 0.05},
        {"check": "latency", "at": "2026-01-01T11:00:30Z", "verdict": "success", "value": 120, "baseline": 118},
    ]
    rel = release(
        "checkout",
        "bbb",
        "t",
        "RolledBack",
        currentWave=0,
        regions={
            "eu-canary": {
                "phase": "RolledBack",
                "startedAt": "2026-01-01T10:59:00Z",
                "completedAt": "2026-01-01T11:03:00Z",
                "analysis": {"smoke": {"startedAt": "2026-01-01T11:00:00Z", "measurements": measurements}},
            }
        },
        drains=[{"region": "eu-canary", "startedAt": "x", "seconds": 30, "targetSeconds": 60, "met": True}],
        audit=[
            {"time": "t1", "action": "start", "reason": "new commit"},
            {"time": "t2", "action": "rollback", "reason": "bad", "by": "rick", "region": "eu-canary"},
        ],
    )
    actions = [
        action("rb-1", "rollback", "2026-01-01T11:02:00Z", "Done", app="checkout"),
        action("other", "pause", "2026-01-01T11:02:00Z", app="search"),
        action("drain-1", "drain", "2026-01-01T11:01:00Z", region="eu-west"),
    ]
    page = model.release_page(rel, actions, NOW)
    assert [(w.number, w.name, w.state) for w in page.waves] == [(1, "canary", "done"), (2, "main", "planned")]
    assert page.waves[0].started == "2026-01-01T10:59:00Z" and page.waves[0].finished == "2026-01-01T11:03:00Z"
    assert [(c.region, c.check) for c in page.charts] == [("eu-canary", "error-rate"), ("eu-canary", "latency")]
    error_chart = page.charts[0]
    assert error_chart.svg.count("<circle") == 2 and 'class="bad"' in error_chart.svg
    assert 'class="threshold"' in error_chart.svg and error_chart.latest.startswith("failure")
    assert 'class="baseline"' in page.charts[1].svg
    assert page.drains[0].met == "met" and page.drains[0].percent == 50 and page.drains[0].seconds == "30s"
    assert [a.by for a in page.audit] == ["rick", "controller"]  # newest first
    assert [r[1] for r in page.requests] == ["rollback", "drain"]  # the app's and region-wide ones


def test_chart_survives_no_numbers_nan_and_a_single_point() -> None:
    assert model.chart_svg([]).startswith("<svg")
    one = model.chart_svg([{"at": "2026-01-01T11:00:00Z", "verdict": "error", "value": "NaN"}])
    assert "<circle" not in one and "nan" not in one.lower().replace("class", "")
    single = model.chart_svg([{"at": "2026-01-01T11:00:00Z", "verdict": "success", "value": 3}])
    assert single.count("<circle") == 1


def test_chart_markup_is_only_numbers_and_fixed_names() -> None:
    svg = model.chart_svg([{"at": "2026-01-01T11:00:00Z", "verdict": "<script>", "value": 1, "check": "<b>"}])
    assert "<script>" not in svg and "<b>" not in svg


def test_history_page_newest_first_with_requests() -> None:
    a = release("checkout", "aaa", "2026-01-01T10:00:00Z", "Succeeded")
    b = release("checkout", "bbb", "2026-01-01T11:00:00Z", "RolledBack")
    other = release("search", "ccc", "2026-01-01T12:00:00Z")
    page = model.history_page("checkout", [b, other, a], [action("p", "pause", "t", "Done", app="checkout")])
    assert [r[0] for r in page.rows] == ["checkout-bbb", "checkout-aaa"]
    assert [r[2] for r in page.rows] == ["RolledBack", "Succeeded"]
    assert page.requests[0][1] == "pause" and page.requests[0][5].startswith("Done")


def test_region_page_apps_and_drain_state() -> None:
    rel = release(
        "checkout",
        "bbb",
        "t",
        regions={"us-east": {"phase": "Progressing", "weight": 50}},
        drains=[{"region": "us-east", "startedAt": "2026-01-01T11:00:00Z"}],
    )
    page = model.region_page("us-east", [rel], [], NOW)
    assert [(a.app, a.cell.phase, a.cell.weight) for a in page.apps] == [("checkout", "Progressing", "50%")]
    assert page.drained and page.drain == "drained by a release since 2026-01-01T11:00:00Z"
    restored = model.region_page(
        "us-east", [rel], [action("r", "restore", "2026-01-01T11:30:00Z", "Done", region="us-east")], NOW
    )
    assert not restored.drained and restored.drain == "restored at 2026-01-01T11:30:00Z"
    assert model.region_page("ap-south", [rel], [], NOW).apps == ()
    assert model.region_page("ap-south", [rel], [], NOW).drain == "serving (no drain recorded)"


def test_weight_is_shown_only_while_a_region_is_in_flight() -> None:
    """A finished region reports canary weight 0 (no separate canary any more): shown as "0%" it
    read as "no traffic" on the fleet page of the demo."""
    rel = release(
        "checkout",
        "a",
        "2026-01-01T10:00:00Z",
        regions={"eu-canary": {"phase": "Succeeded", "weight": 0}, "us-east": {"phase": "Progressing", "weight": 10}},
    )
    assert model.cell(rel, "eu-canary", NOW).weight == ""  # type: ignore[union-attr]
    assert model.cell(rel, "us-east", NOW).weight == "10%"  # type: ignore[union-attr]

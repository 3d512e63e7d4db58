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


def test_waiting_on_a_person_paused_inconclusive_or_awaiting_promotion() -> None:
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
        "c": "awaiting promotion in eu-canary",  # a pause step without a duration: `rollout promote`
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


def test_a_single_value_is_drawn_in_a_band_around_it_not_from_below_zero() -> None:
    svg = model.chart_svg(
        [{"at": "2026-01-01T11:00:00Z", "verdict": "success", "value": 0.2346, "check": "latency-p99"}]
    )
    assert ">258 ms</text>" in svg and ">211 ms</text>" in svg


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


# --- measurements as a responder reads them (rollout.views.measured) ------------------------------


def test_measured_values_in_the_unit_the_check_implies_with_three_significant_digits() -> None:
    cases = [
        ("error-ratio", 0.0123456789, "1.23%"),
        ("error-ratio", 0.31, "31%"),
        ("error-ratio", 0, "0%"),
        ("latency-p99", 0.2346, "235 ms"),
        ("latency-p99", 12.3456, "12.3 s"),
        ("request-duration-seconds", 1.0, "1 s"),
        ("memory-growth", 17476.27, "17.1 KiB/s"),
        ("memory-bytes", 3 * 1024**3, "3 GiB"),
        ("request-rate", 1234.5678, "1235"),
        ("request-rate", 0.4, "0.4"),
        ("request-rate", 0.0123456789, "0.0123"),
        ("request-rate", 1.0e-7, "1.00e-07"),
        ("request-rate", "NaN", "NaN"),
        ("request-rate", "+Inf", "+Inf"),
        ("request-rate", "n/a", "n/a"),
    ]
    assert [model.measured(check, value) for check, value, _ in cases] == [want for *_, want in cases]


def test_release_page_and_wide_status_print_no_unrounded_value() -> None:
    """The demo's release page printed 0.0123456789: every page and `rollout status -o wide` now go
    through the one formatter."""
    from rollout.views import status_rows

    measurements = [
        {
            "check": "error-ratio",
            "at": "2026-01-01T11:00:00Z",
            "verdict": "failure",
            "value": 0.0123456789,
            "baseline": 0.00123456789,
        }
    ]
    state = {"phase": "Smoke", "analysis": {"smoke": {"measurements": measurements}}}
    rel = release("checkout", "bbb", "t", regions={"eu-canary": state})
    page = model.release_page(rel, [], NOW)
    canary = page.waves[0].cells[0]
    assert canary.verdict == "error-ratio=failure (value 1.23%, baseline 0.123%)"
    assert page.charts[0].latest == "failure at 2026-01-01T11:00:00Z (value 1.23%, baseline 0.123%)"
    assert ">1.23%</text>" in page.charts[0].svg and "0.0123456789" not in page.charts[0].svg
    assert status_rows(rel, wide=True, now=NOW)[0][5] == canary.verdict


# --- the verdict shown is the one that explains the region ----------------------------------------


def _measured_region(phase: str, message: str = "") -> dict[str, Any]:
    measurements = [
        {"check": "error-ratio", "at": "2026-01-01T11:00:00Z", "verdict": "success", "value": 0.001},
        {
            "check": "error-ratio",
            "at": "2026-01-01T11:00:30Z",
            "verdict": "failure",
            "value": 0.31,
            "baseline": 0.01,
            "reason": "successCondition does not hold: result <= max(1.5 * baseline, 0.001)",
        },
        {
            "check": "request-rate",
            "at": "2026-01-01T11:00:30Z",
            "verdict": "inconclusive",
            "reason": "result: no data (empty result)",
        },
        {"check": "latency-p99", "at": "2026-01-01T11:00:40Z", "verdict": "success", "value": 0.12},
    ]
    return {"phase": phase, "message": message, "analysis": {"smoke": {"measurements": measurements}}}


def test_a_failed_region_shows_its_failing_check_not_the_last_one_measured() -> None:
    for phase in ("Failed", "Draining", "RollingBack", "RolledBack"):
        rel = release("checkout", "bbb", "t", "RollingBack", regions={"eu-canary": _measured_region(phase)})
        verdict = model.release_page(rel, [], NOW).waves[0].cells[0].verdict
        assert verdict == (
            "error-ratio=failure (value 31%, baseline 1%): "
            "successCondition does not hold: result <= max(1.5 * baseline, 0.001)"
        ), phase


def test_an_inconclusive_region_shows_its_inconclusive_check() -> None:
    state = _measured_region("Smoke", "inconclusive: request-rate: no data")
    rel = release("checkout", "bbb", "t", "Paused", regions={"eu-canary": state})
    verdict = model.release_page(rel, [], NOW).waves[0].cells[0].verdict
    assert verdict == "request-rate=inconclusive: result: no data (empty result)"


def test_a_healthy_region_shows_the_latest_measurement() -> None:
    rel = release("checkout", "bbb", "t", regions={"eu-canary": _measured_region("Smoke")})
    assert model.release_page(rel, [], NOW).waves[0].cells[0].verdict == "latency-p99=success (value 120 ms)"
    rolled_back_for_another_region = {
        "phase": "RolledBack",
        "analysis": {
            "smoke": {"measurements": [{"check": "x", "at": "2026-01-01T11:00:00Z", "verdict": "success", "value": 1}]}
        },
    }
    rel = release("checkout", "ccc", "t", "RolledBack", regions={"eu-canary": rolled_back_for_another_region})
    assert model.release_page(rel, [], NOW).waves[0].cells[0].verdict == "x=success (value 1)"


# --- freezes and approval gates: waiting on a person ----------------------------------------------

FROZEN = (
    "frozen in eu-west, us-east: year-end (year-end trading peak; owner sre@example.com) until "
    "2026-01-04T08:00:00.000Z; no new region starts until 2026-01-04T08:00:00.000Z"
)


def test_a_frozen_release_is_marked_on_the_fleet_and_counts_as_waiting_on_a_person() -> None:
    frozen = release(
        "checkout",
        "bbb",
        "t",
        currentWave=1,
        regions={"eu-canary": {"phase": "Succeeded"}},
        frozen=FROZEN,
        message=FROZEN,
    )
    pending_frozen = release("search", "ccc", "t", "Pending", frozen=FROZEN.replace("eu-west, us-east", "eu-canary"))
    moving = release("cart", "ddd", "t", regions={"eu-canary": {"phase": "Progressing"}})
    fleet = model.fleet_view([frozen, pending_frozen, moving], NOW)
    rows = {r.app: r for r in fleet.rows}
    assert rows["checkout"].frozen == FROZEN and rows["checkout"].waiting == "frozen"
    assert rows["checkout"].asks == ""  # the ❄ marker says it; ⚑ only for other reasons
    assert rows["search"].waiting == "frozen"  # a freeze keeps a Pending release from starting at all
    assert rows["cart"].frozen == "" and rows["cart"].waiting == ""
    assert fleet.waiting == 2
    assert [r.app for r in model.fleet_view([frozen, pending_frozen, moving], NOW, waiting_only=True).rows] == [
        "checkout",
        "search",
    ]
    assert {c.region: c.frozen for c in rows["checkout"].cells if c} == {
        "eu-canary": False,
        "eu-west": True,
        "us-east": True,
    }
    unfrozen = release("checkout", "bbb", "t", "RolledBack", frozen="")
    assert model.waiting_on_person(unfrozen) is None


def test_the_release_page_says_which_freeze_holds_it_whose_and_until_when() -> None:
    rel = release(
        "checkout",
        "bbb",
        "t",
        frozen=FROZEN,
        message=FROZEN,
        freezeOverride="rick: hotfix for the checkout outage",
    )
    page = model.release_page(rel, [], NOW)
    assert page.frozen == FROZEN and page.waiting == "frozen"
    assert page.freeze_override == "rick: hotfix for the checkout outage"
    assert [c.region for w in page.waves for c in w.cells if c.frozen] == ["us-east", "eu-west"]


def test_awaiting_approval_counts_as_waiting_on_a_person() -> None:
    gate = {"wave": "main", "required": 2, "have": 1, "from": "groups sre"}
    rel = release("checkout", "bbb", "t", currentWave=1, awaitingApproval=gate)
    assert model.waiting_on_person(rel) == "awaiting approval for wave main (1/2)"
    assert model.waiting_on_person(release("a", "b", "t", "Pending", awaitingApproval=True)) == "awaiting approval"
    fleet = model.fleet_view([rel], NOW, waiting_only=True)
    assert [r.waiting for r in fleet.rows] == ["awaiting approval for wave main (1/2)"]
    gate |= {"expired": 1, "refused": "vera: not during the incident"}
    page = model.release_page(release("checkout", "bbb", "t", currentWave=1, awaitingApproval=gate), [], NOW)
    assert page.approval == (
        "awaiting approval for wave main (1/2 from groups sre); 1 expired; refused by vera: not during the incident"
    )

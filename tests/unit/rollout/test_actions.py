"""ReleaseAction checks (rollout/actions.py): every malformed action with the reason it is Rejected
with, and the controller's routing keeps going whatever one action does."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from rollout import actions
from rollout.actions import Checked, Known, Rejected, check
from rollout.controller import Controller

KNOWN = Known(
    apps=frozenset({"checkout", "search"}),
    regions=frozenset({"eu-canary", "eu-west", "us-east"}),
    releases={"checkout-1-0-0": "checkout", "checkout-1-1-0": "checkout", "search-2-0-0": "search"},
)
NOW = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)


def ra(**spec: Any) -> dict[str, Any]:
    spec.setdefault("reason", "incident 42")
    return {"metadata": {"name": "a-1", "creationTimestamp": "2026-11-29T01:00:00Z"}, "spec": spec}


MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("no spec", {"metadata": {"name": "x"}}, "spec is missing"),
    ("spec not an object", {"metadata": {"name": "x"}, "spec": ["drain"]}, "spec is missing or not an object"),
    ("unknown action", ra(action="delete", app="checkout"), "spec.action 'delete' is not one of"),
    ("action not a string", ra(action=["drain"], region="eu-west"), "is not one of"),
    (
        "no reason",
        {"metadata": {"name": "x"}, "spec": {"action": "pause", "app": "checkout"}},
        "spec.reason is required for pause",
    ),
    ("blank reason", ra(action="pause", app="checkout", reason="   "), "spec.reason is required"),
    ("huge reason", ra(action="pause", app="checkout", reason="x" * 5000), "keep it under 1024"),
    ("requestedBy not a string", ra(action="pause", app="checkout", requestedBy={"u": 1}), "spec.requestedBy"),
    ("drain without region", ra(action="drain"), "spec.region is required for drain: name the region"),
    ("restore without region", ra(action="restore", app="checkout"), "spec.region is required for restore"),
    ("drill without app", ra(action="drill", region="eu-west"), "spec.app is required for drill"),
    ("drill without region", ra(action="drill", app="checkout"), "spec.region is required for drill"),
    ("pause without app", ra(action="pause"), "spec.app is required for pause: name the app (rollout pause APP)"),
    ("rollback without app", ra(action="rollback"), "spec.app is required for rollback"),
    (
        "toRelease on pause",
        ra(action="pause", app="checkout", toRelease="checkout-1-0-0"),
        "spec.toRelease is not allowed for pause: it applies to rollback only",
    ),
    (
        "full on rollback",
        ra(action="rollback", app="checkout", full=True),
        "spec.full is not allowed for rollback: it applies to drill, promote only",
    ),
    (
        "release on drain",
        ra(action="drain", region="eu-west", release="checkout-1-0-0"),
        "spec.release is not allowed for drain",
    ),
    (
        "unknown field",
        ra(action="pause", app="checkout", colour="red"),
        "spec.colour is not allowed for pause: it is not a ReleaseAction field",
    ),
    ("full not a boolean", ra(action="promote", app="checkout", full="yes"), "spec.full must be true or false"),
    ("region not a name", ra(action="drain", region="EU West!"), "spec.region 'EU West!' is not a valid name"),
    ("region not a string", ra(action="drain", region=7), "spec.region 7 is not a valid name"),
    ("app not a name", ra(action="pause", app="../etc"), "spec.app '../etc' is not a valid name"),
    (
        "made-up region",
        ra(action="restore", region="mars-1"),
        "spec.region 'mars-1' is not a region of the repository (regions: eu-canary, eu-west, us-east)",
    ),
    (
        "made-up region for an app",
        ra(action="drain", app="checkout", region="eu-nowhere"),
        "spec.region 'eu-nowhere' is not a region",
    ),
    (
        "made-up app",
        ra(action="pause", app="payments"),
        "spec.app 'payments' is not an app of the repository (apps: checkout, search)",
    ),
    ("made-up app for a drain", ra(action="drain", app="payments", region="eu-west"), "spec.app 'payments'"),
    ("drill in a made-up region", ra(action="drill", app="checkout", region="moon"), "spec.region 'moon'"),
    (
        "unknown release",
        ra(action="pause", app="checkout", release="checkout-9-9-9"),
        "spec.release 'checkout-9-9-9' does not exist",
    ),
    (
        "another app's release",
        ra(action="pause", app="checkout", release="search-2-0-0"),
        "spec.release 'search-2-0-0' is a release of 'search', not of 'checkout'",
    ),
    (
        "rollback to another app's release",
        ra(action="rollback", app="checkout", toRelease="search-2-0-0"),
        "spec.toRelease 'search-2-0-0' is a release of 'search'",
    ),
]


@pytest.mark.parametrize(("case", "action", "reason"), MALFORMED, ids=[c for c, _, _ in MALFORMED])
def test_malformed_action_is_rejected_with_its_reason(case: str, action: dict[str, Any], reason: str) -> None:
    result = check(action, KNOWN)
    assert isinstance(result, Rejected), f"{case}: accepted as {result}"
    assert reason in result.reason, f"{case}: {result.reason}"


def test_nothing_is_known_before_the_first_sync_so_every_name_is_refused() -> None:
    empty = Known(frozenset(), frozenset(), {})
    result = check(ra(action="drain", region="eu-west"), empty)
    assert isinstance(result, Rejected) and "(regions: none yet)" in result.reason


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (
            ra(action="drain", region="eu-west", requestedBy="rick"),
            Checked("drain", "incident 42", "rick", region="eu-west"),
        ),
        (
            ra(action="restore", region="us-east", app="checkout"),
            Checked("restore", "incident 42", "unknown", app="checkout", region="us-east"),
        ),
        (
            ra(action="rollback", app="checkout", toRelease="checkout-1-0-0", release="checkout-1-1-0"),
            Checked(
                "rollback",
                "incident 42",
                "unknown",
                app="checkout",
                release="checkout-1-1-0",
                to_release="checkout-1-0-0",
            ),
        ),
        (
            ra(action="promote", app="checkout", full=True, region="eu-canary"),
            Checked("promote", "incident 42", "unknown", app="checkout", region="eu-canary", full=True),
        ),
        (
            ra(action="drill", app="search", region="us-east", force=True),
            Checked("drill", "incident 42", "unknown", app="search", region="us-east", full=True),
        ),
        (
            ra(action="pause", app="checkout", region=None),  # an explicit null is the field left out
            Checked("pause", "incident 42", "unknown", app="checkout"),
        ),
    ],
)
def test_well_formed_actions_pass_with_their_fields(action: dict[str, Any], expected: Checked) -> None:
    assert check(action, KNOWN) == expected


def test_every_action_kind_has_its_fields_declared() -> None:
    assert set(actions.FIELDS) == actions.ALL_ACTIONS


# --- the controller's routing: one action's failure is that action's only --------------------------


class FakeCache:
    def __init__(self, items: list[dict[str, Any]]):
        self._items = items
        self.put_objects: list[dict[str, Any]] = []

    def items(self) -> list[dict[str, Any]]:
        return list(self._items)

    def put(self, obj: dict[str, Any]) -> None:
        self.put_objects.append(obj)


class FakeCustom:
    def __init__(self) -> None:
        self.status: dict[str, dict[str, Any]] = {}

    def patch_namespaced_custom_object_status(
        self, group: str, version: str, ns: str, plural: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self.status[name] = body["status"]
        return {"apiVersion": f"{group}/{version}", "kind": "ReleaseAction", "metadata": {"name": name}, **body}


class FakeEvents:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str]] = []

    def record(self, kind: str, name: str, reason: str, message: str, warning: bool, now: datetime) -> None:
        self.recorded.append((name, reason, message))


class FakeTraffic:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, int]]] = []
        self.fail_with = fail_with

    def set_weights(self, app: str, weights: dict[str, int]) -> bool:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((app, dict(weights)))
        return True


def controller(traffic: FakeTraffic) -> tuple[Controller, FakeCustom, FakeEvents]:
    ctl = Controller.__new__(Controller)  # no clusters: only the routing is under test
    custom, events = FakeCustom(), FakeEvents()
    ctl.s = SimpleNamespace(regions_hint=["eu-canary", "eu-west", "us-east"], namespace="rollout-system")
    ctl._custom = custom
    ctl._events = events
    ctl.actions = FakeCache([])
    ctl.releases = FakeCache([])
    ctl.sync = SimpleNamespace(last_status={"valid": True})
    ctl._reconciler = SimpleNamespace(traffic=traffic)
    ctl._drills = None
    return ctl, custom, events


def named(name: str, **spec: Any) -> dict[str, Any]:
    action = ra(**spec)
    action["metadata"]["name"] = name
    return action


def test_a_malformed_action_is_rejected_with_an_event_and_the_next_one_is_carried_out() -> None:
    traffic = FakeTraffic()
    ctl, custom, events = controller(traffic)
    pending = [
        named("bad-drain", action="drain"),
        named("made-up", action="restore", region="mars-1"),
        named("good", action="drain", region="eu-west", app="checkout"),
    ]
    ctl._route_actions(pending, {"checkout": []}, NOW)
    assert custom.status["bad-drain"]["state"] == "Rejected"
    assert "spec.region is required for drain" in custom.status["bad-drain"]["message"]
    assert custom.status["made-up"]["state"] == "Rejected"
    assert [(n, r) for n, r, _ in events.recorded] == [("bad-drain", "ActionRejected"), ("made-up", "ActionRejected")]
    assert custom.status["good"]["state"] == "Done"
    assert traffic.calls == [("checkout", {"eu-west": 0})]


def test_an_unexpected_error_fails_that_action_only() -> None:
    ctl, custom, events = controller(FakeTraffic(fail_with=KeyError("region")))
    ctl._route_actions([named("boom", action="drain", region="eu-west", app="checkout")], {"checkout": []}, NOW)
    assert custom.status["boom"]["state"] == "Failed"
    assert "KeyError" in custom.status["boom"]["message"]
    assert events.recorded and events.recorded[0][1] == "ActionFailed"


def test_a_transient_api_error_leaves_the_action_for_the_next_pass() -> None:
    ctl, custom, events = controller(FakeTraffic(fail_with=ApiException(status=503, reason="unavailable")))
    ctl._route_actions([named("later", action="drain", region="eu-west", app="checkout")], {"checkout": []}, NOW)
    assert "later" not in custom.status and not events.recorded


def test_before_the_first_sync_an_unknown_name_waits_and_a_malformed_action_is_rejected() -> None:
    ctl, custom, events = controller(FakeTraffic())
    ctl.sync = SimpleNamespace(last_status={})  # no sync finished yet: the repository's names are not loaded
    ctl._route_actions(
        [named("early", action="drain", region="eu-later", app="checkout"), named("broken", action="drain")],
        {"checkout": []},
        NOW,
    )
    assert "early" not in custom.status and custom.status["broken"]["state"] == "Rejected"
    ctl.sync = SimpleNamespace(last_status={"valid": True})
    ctl._route_actions([named("early", action="drain", region="eu-later", app="checkout")], {"checkout": []}, NOW)
    assert custom.status["early"]["state"] == "Rejected"


def test_a_release_action_without_a_release_is_rejected_and_a_valid_one_is_routed() -> None:
    ctl, custom, _ = controller(FakeTraffic())
    routed = ctl._route_actions([named("nothing", action="pause", app="checkout")], {"checkout": []}, NOW)
    assert custom.status["nothing"]["state"] == "Rejected" and not routed

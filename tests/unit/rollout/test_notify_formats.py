"""Notifications people use (issue 17 item 5): each target's format (the signed generic JSON, a Slack
incoming-webhook message, a Teams Adaptive Card), routing by event and minimum severity with
failures reaching every target, no credential in any message, and the schema refusing unknown
formats and severities with file, field and fix. The end-to-end check posts through the real
Dispatcher to a real loopback HTTP receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from config.loader import InvalidRepository, load_repository
from config.schema import Notification, NotificationEvent
from rollout.notify import (
    SEVERITY,
    SIGNATURE_HEADER,
    Destinations,
    Dispatcher,
    Notice,
    SigningKeys,
    Webhooks,
    WebhookTarget,
    sign,
    slack,
    targets,
    teams,
    wave_of,
)
from rollout.release import PlannedWaveSpec

NOW = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
TOKEN = "ghp_s3cretT0ken"
NOTICE = Notice(
    event="failed",
    app="checkout",
    release="checkout-1-6-0",
    version="1.6.0",
    reason=f"error rate 4.1% > 1%; fetch of https://bot:{TOKEN}@git.example.com/shop.git was slow",
    owner="payments",
    contact="#payments-oncall",
    playbook=f"https://{TOKEN}@wiki.example.com/checkout/playbook",
    region="eu-west",
    warning=True,
    wave="europe",
)


def of(event: str, **changes: Any) -> Notice:
    return Notice(**{**NOTICE.__dict__, "event": event, **changes})


# --- shapes ------------------------------------------------------------------------------------------


def texts(value: Any) -> list[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


def test_a_slack_message_is_an_incoming_webhook_body_with_a_header_and_fields() -> None:
    body = slack(NOTICE, NOW)
    assert body["text"].startswith("checkout 1.6.0 in eu-west (wave europe): ")  # the notification's fallback
    header, reason, facts, link = body["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert header["text"]["text"] == "[critical] checkout 1.6.0: failed in eu-west"
    assert reason["type"] == "section" and "error rate 4.1% &gt; 1%" in reason["text"]["text"]  # escaped
    assert "https://***@git.example.com/shop.git" in reason["text"]["text"] and TOKEN not in json.dumps(body)
    assert [f["text"].split("\n")[0] for f in facts["fields"]] == [
        "*App*",
        "*Version*",
        "*Region*",
        "*Wave*",
        "*Owner*",
        "*Severity*",
        "*Release*",
    ]
    assert "*Wave*\neurope" in [f["text"] for f in facts["fields"]]
    assert "*Owner*\npayments (#payments-oncall)" in [f["text"] for f in facts["fields"]]
    assert link["text"]["text"].startswith("<https://wiki.example.com/checkout/playbook|Open the playbook>")
    long = slack(of("failed", app="a" * 200), NOW)
    assert len(long["blocks"][0]["text"]["text"]) == 150  # Slack's header limit


def test_a_teams_message_carries_an_adaptive_card() -> None:
    body = teams(of("frozen", region=None, wave="americas", reason="frozen by holiday until 2026-12-27"), NOW)
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title, reason, facts, _ = card["body"]
    assert title["text"] == "[warning] checkout 1.6.0: frozen" and title["color"] == "Warning"
    assert reason["text"] == "frozen by holiday until 2026-12-27"
    assert {f["title"]: f["value"] for f in facts["facts"]} == {
        "App": "checkout",
        "Version": "1.6.0",
        "Region": "-",
        "Wave": "americas",
        "Owner": "payments (#payments-oncall)",
        "Severity": "warning",
        "Release": "checkout-1-6-0",
        "Playbook": "https://wiki.example.com/checkout/playbook",  # the credential dropped, the link works
    }
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open the playbook", "url": "https://wiki.example.com/checkout/playbook"}
    ]
    assert TOKEN not in json.dumps(body)


def test_every_event_has_a_severity_and_failures_are_critical() -> None:
    assert set(get_args(NotificationEvent)) <= set(SEVERITY)  # a new event gets its row in the table
    assert SEVERITY["failed"] == SEVERITY["rolledBack"] == "critical"
    assert SEVERITY["frozen"] == SEVERITY["awaitingApproval"] == "warning"
    assert SEVERITY["promoted"] == SEVERITY["succeeded"] == "info"


ROUTES = [
    # (events, minSeverity, event, delivered)
    (("promoted", "succeeded"), "info", "promoted", True),
    (("promoted", "succeeded"), "warning", "promoted", False),
    (("frozen",), "warning", "frozen", True),
    (("frozen",), "critical", "frozen", False),
    (("rolledBack",), "critical", "rolledBack", True),
    (("frozen",), "info", "rolledBack", False),
    (("succeeded",), "info", "failed", True),  # failures always
    ((), "critical", "failed", True),
]


@pytest.mark.parametrize(("events", "minimum", "event", "delivered"), ROUTES)
def test_routing_by_event_and_severity(events: tuple[str, ...], minimum: str, event: str, delivered: bool) -> None:
    assert WebhookTarget("https://h/x", events, min_severity=minimum).wants(event) is delivered


def test_the_wave_is_the_regions_or_the_one_the_release_is_at() -> None:
    waves = [PlannedWaveSpec("canary", ("eu-canary",), 5, 1), PlannedWaveSpec("europe", ("eu-west", "eu-north"), 5, 1)]
    assert wave_of(waves, "eu-north") == "europe"
    assert wave_of(waves, None, 1) == "europe"
    assert wave_of(waves, None, 0) == "canary"
    assert wave_of(waves, "us-east") is None and wave_of(waves, None, 7) is None


def test_targets_come_from_the_plan_with_their_format_and_minimum() -> None:
    plan_entries = [
        Notification.model_validate({"webhook": "https://hooks.slack.com/services/T/B/x", "format": "slack"}),
        Notification.model_validate(
            {"webhook": "https://teams.example.com/wf", "format": "teams", "minSeverity": "critical"}
        ),
        Notification.model_validate({"webhook": "https://ops.example.com/hook"}),
    ]
    assert [(t.format, t.min_severity) for t in targets(plan_entries)] == [
        ("slack", "info"),
        ("teams", "critical"),
        ("generic", "info"),
    ]


@pytest.mark.parametrize(
    ("entry", "field", "problem"),
    [
        ({"format": "discord"}, "notifications[0].format", "'generic', 'slack' or 'teams'"),
        ({"minSeverity": "page"}, "notifications[0].minSeverity", "'info', 'warning' or 'critical'"),
        ({"min_severity": "info", "formatt": "slack"}, "notifications[0].formatt", "Extra inputs"),
    ],
)
def test_validate_refuses_unknown_formats_and_severities(
    example_copy: Path, entry: dict[str, str], field: str, problem: str
) -> None:
    path = example_copy / "apps" / "checkout" / "rollout.yaml"
    plan = yaml.safe_load(path.read_text())
    plan["notifications"] = [{"webhook": "https://hooks.example.com/x", **entry}]
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    with pytest.raises(InvalidRepository) as raised:
        load_repository(example_copy)
    matching = [
        i
        for i in raised.value.issues
        if i.file == "apps/checkout/rollout.yaml" and i.field == field and problem in i.problem
    ]
    assert matching and all(i.fix for i in matching), raised.value.summary()


# --- through the real dispatcher to a real HTTP receiver --------------------------------------------


class Receiver:
    """A loopback HTTP server recording (path, headers, body) of every POST and answering 200."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append((self.path, dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(body) for p, _, body in self.received if p == f"/hooks/{path}"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def test_each_target_gets_its_format_failures_reach_all_and_no_credential_leaves(
    receiver: Receiver, tmp_path: Path
) -> None:
    (tmp_path / "checkout.key").write_text("op-key")
    allow = Destinations.parse([receiver.url("")])
    worker = Dispatcher(allow, SigningKeys.parse([f"checkout={tmp_path}/checkout.key"]), deadline_s=5).start()
    plan = [
        Notification.model_validate({"webhook": receiver.url("slack"), "format": "slack", "events": ["succeeded"]}),
        Notification.model_validate(
            {"webhook": receiver.url("teams"), "format": "teams", "events": ["frozen"], "minSeverity": "critical"}
        ),
        Notification.model_validate({"webhook": receiver.url("generic"), "events": ["frozen", "succeeded"]}),
    ]
    hooks = Webhooks(targets(plan), dispatcher=worker)
    try:
        hooks.emit(NOTICE, NOW)  # failed: every target, whatever it subscribed to
        hooks.emit(of("frozen", region=None), NOW)  # generic only: below the teams target's minimum
        hooks.emit(of("succeeded", region=None, wave=None), NOW)  # slack and generic
        assert worker.join(10)
    finally:
        worker.stop()
    assert all(outcome == "delivered" for _, outcome in worker.outcomes), worker.outcomes
    assert len(receiver.received) == 6

    slack_bodies, teams_bodies, generic_bodies = (receiver.bodies(p) for p in ("slack", "teams", "generic"))
    assert [b["blocks"][0]["text"]["text"] for b in slack_bodies] == [
        "[critical] checkout 1.6.0: failed in eu-west",
        "[info] checkout 1.6.0: succeeded",
    ]
    (card,) = [b["attachments"][0]["content"] for b in teams_bodies]
    assert card["body"][0]["text"] == "[critical] checkout 1.6.0: failed in eu-west"
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Playbook"] == "https://wiki.example.com/checkout/playbook"  # userinfo removed
    assert [b["event"] for b in generic_bodies] == ["failed", "frozen", "succeeded"]
    assert generic_bodies[0]["wave"] == "europe" and generic_bodies[0]["region"] == "eu-west"
    assert set(generic_bodies[0]) >= {"app", "version", "region", "wave", "owner", "reason", "playbook", "summary"}

    for path, headers, body in receiver.received:
        assert TOKEN not in body.decode(), path  # not in the reason's repository URL nor the playbook link
        assert headers[SIGNATURE_HEADER] == sign(body, b"op-key")  # every shape is signed with the op's key
    for message in slack_bodies[:1] + [card] + generic_bodies[:1]:
        shown = " ".join(texts(message))
        for value in ("checkout", "1.6.0", "eu-west", "europe", "payments", "error rate", "wiki.example.com/checkout"):
            assert value in shown, (value, shown)


# --- Kubernetes Events ---------------------------------------------------------------------------------


class _Events:
    def __init__(self) -> None:
        self.created: list[Any] = []

    def create_namespaced_event(self, namespace: str, body: Any) -> None:
        self.created.append(body)


def _event_message(notice: Notice) -> str:
    from rollout.notify import KubernetesEvents

    sink = KubernetesEvents.__new__(KubernetesEvents)  # no API client: the CoreV1Api is replaced below
    sink._api = _Events()  # type: ignore[assignment]
    sink._namespace, sink._component = "rollout-system", "rollout-controller"
    sink.emit(notice, NOW)
    (body,) = sink._api.created  # type: ignore[attr-defined]
    assert body.involved_object.name == notice.release and body.type == "Warning"
    return str(body.message)


def test_an_event_names_the_region_and_its_wave_and_carries_no_credential() -> None:
    message = _event_message(NOTICE)
    assert "checkout 1.6.0 in eu-west (wave europe): error rate 4.1% > 1%" in message
    assert TOKEN not in message and "#payments-oncall" in message


def test_an_event_without_a_region_names_the_wave_the_release_is_at() -> None:
    assert "checkout 1.6.0 at wave europe: " in _event_message(of("paused", region=None))
    assert "checkout 1.6.0: " in _event_message(of("paused", region=None, wave=None))

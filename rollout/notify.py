"""Telling people: Kubernetes Events on the Release and signed webhook notifications.

Every notification carries app, release, version, region, wave, owner, reason and the playbook
link, so the person paged at 3 a.m. has the context in the message itself; URL credentials that
slipped into a reason or a link are removed from every message.

A target chooses its shape (`format`: the signed generic JSON, a Slack incoming-webhook message or
a Teams Adaptive Card) and what reaches it (`events` and `minSeverity`, with each event's severity
in SEVERITY); a failure reaches every target whatever it chose.

Webhook notifications never run on the reconcile path: `Webhooks.emit` only puts a message on a
bounded queue (full: the message is dropped and logged), and one worker thread posts it with one
total deadline per message (connect, send and the response head), no redirects followed. The
repository names the URL, the operator decides where messages may go (`--notify-allow` URL
prefixes) and which key signs an app's messages (`--notify-key APP=FILE`); the repository can
neither pick a key nor receive a signature made with the controller's own secrets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import http.client
import json
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from config.schema import Notification
from config.times import format_time
from rollout.gitsync.pure import redact_text

log = structlog.get_logger("rollout.notify")
SIGNATURE_HEADER = "X-Rollout-Signature-256"


@dataclass(frozen=True)
class Notice:
    event: str
    app: str
    release: str
    version: str
    reason: str
    owner: str
    contact: str
    playbook: str
    region: str | None = None
    warning: bool = False
    wave: str | None = None  # the wave of `region`, or the wave the release is at (None: not known)


Severity = Literal["info", "warning", "critical"]
RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
# Every event's severity, the one table routing reads: an event not listed is a warning.
SEVERITY: dict[str, Severity] = {
    "started": "info",
    "promoted": "info",
    "succeeded": "info",
    "paused": "warning",
    "drained": "warning",
    "frozen": "warning",
    "freezeOverride": "warning",
    "awaitingApproval": "warning",
    "waitingForDependency": "info",  # release groups: the dependency's region is not passed yet
    "failed": "critical",
    "rolledBack": "critical",
}
ALWAYS_DELIVERED = frozenset({"failed"})  # issue 17: failures always notified, whatever the filters


def severity(event: str) -> Severity:
    return SEVERITY.get(event, "warning")


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    events: tuple[str, ...]
    secret_env: str | None = None  # no longer honoured (config refuses it): keys are the operator's
    format: str = "generic"  # generic | slack | teams
    min_severity: str = "info"

    def wants(self, event: str) -> bool:
        if event in ALWAYS_DELIVERED:
            return True
        return event in self.events and RANK[severity(event)] >= RANK.get(self.min_severity, 0)


def targets(notifications: Iterable[Notification]) -> list[WebhookTarget]:
    """The plan's `notifications` as webhook targets."""
    return [WebhookTarget(n.webhook, tuple(n.events), n.secret_env, n.format, n.min_severity) for n in notifications]


class _Wave(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def regions(self) -> tuple[str, ...]: ...


def wave_of(waves: Iterable[_Wave], region: str | None, current: int | None = None) -> str | None:
    """The wave holding `region`; without a region, the wave at index `current` (where the release is)."""
    listed = list(waves)
    for wave in listed:
        if region is not None and region in wave.regions:
            return wave.name
    if region is None and current is not None and 0 <= current < len(listed):
        return listed[current].name
    return None


def sign(body: bytes, key: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(body: bytes, key: bytes, signature: str | None) -> bool:
    return bool(signature) and hmac.compare_digest(sign(body, key), signature or "")


class EventSink(Protocol):
    def emit(self, notice: Notice, now: datetime) -> None: ...


class KubernetesEvents:
    """core/v1 Events on the Release object in the home cluster."""

    def __init__(self, api_client: client.ApiClient, namespace: str, component: str = "rollout-controller"):
        self._api = client.CoreV1Api(api_client)
        self._namespace = namespace
        self._component = component

    def emit(self, notice: Notice, now: datetime) -> None:
        # the same redaction as the webhooks' bodies: an Event is readable by anyone who may list them
        shown = _without_credentials(notice)
        self.record("Release", notice.release, _reason(notice.event), _message(shown), notice.warning, now)

    def record(self, kind: str, name: str, reason: str, message: str, warning: bool, now: datetime) -> None:
        """An Event on one of our objects (rollout.dev/v1alpha1 `kind`/`name`)."""
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{name}.", namespace=self._namespace),
            involved_object=client.V1ObjectReference(
                api_version="rollout.dev/v1alpha1", kind=kind, name=name, namespace=self._namespace
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            source=client.V1EventSource(component=self._component),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        try:
            self._api.create_namespaced_event(self._namespace, body)
        except ApiException as exc:  # an event is worth less than the reconcile that made it
            log.warning("event not recorded", object=f"{kind}/{name}", status=exc.status)


class Webhooks:
    """The plan's notification webhooks; `emit` only queues (see the module's docstring)."""

    def __init__(self, targets: list[WebhookTarget], timeout: float = 5.0, dispatcher: Dispatcher | None = None):
        self._targets = targets
        self._dispatcher = dispatcher

    def emit(self, notice: Notice, now: datetime) -> None:
        chosen = [t for t in self._targets if t.wants(notice.event)]
        if not chosen:
            return
        dispatcher = self._dispatcher or _installed
        if dispatcher is None:
            log.warning(
                "notification not sent: the operator allows no destination (--notify-allow)",
                app=notice.app,
                kind=notice.event,
            )
            return
        bodies: dict[str, bytes] = {}
        for target in chosen:
            shape = target.format if target.format in RENDERERS else "generic"
            if shape not in bodies:
                bodies[shape] = json.dumps(RENDERERS[shape](notice, now), sort_keys=True).encode()
            dispatcher.submit(Delivery(target.url, notice.app, notice.event, bodies[shape]))


# --- message shapes -------------------------------------------------------------------------------


def _without_credentials(notice: Notice) -> Notice:
    """The notice with URL userinfo (user:token@) replaced in every text field and dropped from the
    playbook link (so that it still opens)."""
    link = urlsplit(notice.playbook)
    playbook = (
        urlunsplit(link._replace(netloc=link.netloc.rpartition("@")[2])) if "@" in link.netloc else notice.playbook
    )
    notice = dataclasses.replace(notice, playbook=playbook)
    region = redact_text(notice.region) if notice.region is not None else None
    wave = redact_text(notice.wave) if notice.wave is not None else None
    return dataclasses.replace(
        notice,
        **{name: redact_text(getattr(notice, name)) for name in _TEXT_FIELDS},  # type: ignore[arg-type]
        region=region,
        wave=wave,
    )


_TEXT_FIELDS = ("event", "app", "release", "version", "reason", "owner", "contact", "playbook")


def generic(notice: Notice, now: datetime) -> dict[str, Any]:
    """The signed JSON: every field of the notice, the time and a one-line summary."""
    notice = _without_credentials(notice)
    return {**asdict(notice), "time": format_time(now), "summary": _message(notice)}


def _title(notice: Notice) -> str:
    where = f" in {notice.region}" if notice.region else ""
    return f"[{severity(notice.event)}] {notice.app} {notice.version}: {notice.event}{where}"


def _facts(notice: Notice) -> list[tuple[str, str]]:
    owner = f"{notice.owner} ({notice.contact})" if notice.contact else notice.owner
    return [
        ("App", notice.app),
        ("Version", notice.version),
        ("Region", notice.region or "-"),
        ("Wave", notice.wave or "-"),
        ("Owner", owner or "-"),
        ("Severity", severity(notice.event)),
        ("Release", notice.release),
        ("Playbook", notice.playbook or "-"),
    ]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(notice: Notice, now: datetime) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` (the notification's fallback) and Block Kit blocks,
    a header (plain text, at most 150 characters), the reason, and the facts as section fields (at
    most 10, each at most 2000 characters)."""
    notice = _without_credentials(notice)
    fields = [
        {"type": "mrkdwn", "text": f"*{name}*\n{_slack_escape(value)}"[:2000]}
        for name, value in _facts(notice)
        if name != "Playbook"
    ]
    playbook = f"<{notice.playbook}|Open the playbook>" if notice.playbook else "no playbook"
    return {
        "text": _message(notice),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _title(notice)[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(notice.reason or "-")[:3000]}},
            {"type": "section", "fields": fields[:10]},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{playbook} · {format_time(now)}"}},
        ],
    }


def teams(notice: Notice, now: datetime) -> dict[str, Any]:
    """A Teams message carrying an Adaptive Card (version 1.4): what Teams Workflows webhooks accept
    (they take no MessageCard, the retired Office 365 connectors' format)."""
    notice = _without_credentials(notice)
    critical = severity(notice.event) == "critical"
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": _title(notice),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
                "color": "Attention" if critical else "Warning" if severity(notice.event) == "warning" else "Default",
            },
            {"type": "TextBlock", "text": notice.reason or "-", "wrap": True},
            {"type": "FactSet", "facts": [{"title": n, "value": v} for n, v in _facts(notice)]},
            {"type": "TextBlock", "text": format_time(now), "isSubtle": True, "size": "Small"},
        ],
    }
    if notice.playbook:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the playbook", "url": notice.playbook}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


RENDERERS: dict[str, Callable[[Notice, datetime], dict[str, Any]]] = {
    "generic": generic,
    "slack": slack,
    "teams": teams,
}


# --- the operator's side: destinations and keys --------------------------------------------------


class NotifyConfigError(ValueError):
    """An operator flag that cannot be used (the controller refuses to start with it)."""


@dataclass(frozen=True)
class _Prefix:
    scheme: str
    host: str
    port: int
    path: str


def _port(scheme: str, port: int | None) -> int:
    return port if port is not None else (443 if scheme == "https" else 80)


@dataclass(frozen=True)
class Destinations:
    """URL prefixes the operator allows notifications to (scheme, host, port and path prefix)."""

    prefixes: tuple[_Prefix, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Destinations:
        parsed = []
        for entry in entries:
            parts = urlsplit(entry.strip())
            if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc:
                raise NotifyConfigError(
                    f"--notify-allow {entry!r}: write a URL prefix such as "
                    f"https://hooks.example.com/services/ (no user, no credentials)"
                )
            try:
                port = _port(parts.scheme, parts.port)
            except ValueError:
                raise NotifyConfigError(f"--notify-allow {entry!r}: invalid port") from None
            path = parts.path or "/"
            parsed.append(_Prefix(parts.scheme, parts.hostname.lower(), port, path))
        return cls(tuple(parsed))

    def problem(self, url: str) -> str | None:
        """None when `url` may receive notifications, else why not."""
        try:
            parts = urlsplit(url)
            port = _port(parts.scheme, parts.port)
        except ValueError:
            return f"{url!r} is not a valid URL"
        if parts.scheme not in ("https", "http") or not parts.hostname:
            return f"{url!r} is not an http(s) URL"
        if "@" in parts.netloc:
            return f"{url!r} carries credentials; put them in the operator's key, not in the URL"
        lowered = parts.path.lower()
        if any(seg in (".", "..") for seg in parts.path.split("/")) or "%2e" in lowered or "\\" in parts.path:
            return f"{url!r} has dot segments in its path"
        host, path = parts.hostname.lower(), parts.path or "/"
        for p in self.prefixes:
            if (p.scheme, p.host, p.port) != (parts.scheme, host, port):
                continue
            if p.path == "/" or path == p.path.rstrip("/") or path.startswith(p.path.rstrip("/") + "/"):
                return None
        return (
            f"{parts.scheme}://{parts.netloc}{path} is not allowed by the operator; ask them to add it "
            f"to --notify-allow"
            if self.prefixes
            else "the operator allows no notification destination (--notify-allow)"
        )


class KeyRefused(Exception):
    """An operator key that must not be used (the controller's own secret, empty, unreadable)."""


@dataclass(frozen=True)
class SigningKeys:
    """app -> file holding the HMAC key for that app's notifications, read at each use (rotation)."""

    files: Mapping[str, Path]
    forbidden: tuple[bytes, ...] = ()  # the controller's own secrets: never a signing key

    @classmethod
    def parse(cls, entries: Iterable[str], forbidden: Iterable[bytes | None] = ()) -> SigningKeys:
        files: dict[str, Path] = {}
        for entry in entries:
            app, sep, path = entry.partition("=")
            if not sep or not app.strip() or not path.strip():
                raise NotifyConfigError(f"--notify-key {entry!r}: write APP=/path/to/key-file")
            files[app.strip()] = Path(path.strip()).expanduser().resolve()
        return cls(files, tuple(f for f in forbidden if f))

    def key(self, app: str) -> bytes | None:
        path = self.files.get(app)
        if path is None:
            return None
        try:
            key = path.read_bytes().strip()
        except OSError as exc:
            raise KeyRefused(f"signing key for {app} unreadable: {path}: {exc.strerror}") from None
        if not key:
            raise KeyRefused(f"signing key for {app} is empty: {path}")
        if any(hmac.compare_digest(key, f) for f in self.forbidden):
            raise KeyRefused(f"signing key for {app} ({path}) is one of the controller's own secrets")
        return key


# --- delivery --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    url: str
    app: str
    event: str
    body: bytes


class DeadlineExceeded(Exception):
    pass


def post(url: str, body: bytes, headers: Mapping[str, str], deadline_s: float) -> int:
    """POST and return the response status, all within `deadline_s` (connect, send, response head):
    a watchdog shuts the socket at the deadline whatever the server trickles. No redirects."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", _port(parts.scheme, parts.port)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=deadline_s, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=deadline_s)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # plain shutdown: safe beside a TLS read

    watchdog = threading.Timer(deadline_s, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", target, body=body, headers=dict(headers))
        status = conn.getresponse().status
    except Exception as exc:
        if expired.is_set():
            raise DeadlineExceeded(f"no answer within {deadline_s:g}s") from exc
        raise
    finally:
        watchdog.cancel()
        conn.close()
    if expired.is_set():
        raise DeadlineExceeded(f"no answer within {deadline_s:g}s")
    return status


class Dispatcher:
    """A bounded queue of notifications and the one worker that posts them."""

    def __init__(
        self,
        destinations: Destinations,
        keys: SigningKeys,
        capacity: int = 100,
        deadline_s: float = 10.0,
        poster: Callable[[str, bytes, Mapping[str, str], float], int] = post,
    ):
        self.destinations = destinations
        self.keys = keys
        self.deadline_s = deadline_s
        self._poster = poster
        self._queue: queue.Queue[Delivery | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._work, name="notify", daemon=True)
        self.outcomes: list[tuple[str, str]] = []  # (url, outcome) of the last deliveries, for diagnosis
        self.dropped = 0

    def start(self) -> Dispatcher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout)

    def submit(self, delivery: Delivery) -> bool:
        """Queue a delivery; never blocks. False when refused (destination) or dropped (queue full)."""
        problem = self.destinations.problem(delivery.url)
        if problem is not None:
            log.warning("notification refused", app=delivery.app, kind=delivery.event, reason=problem)
            self._record(delivery.url, f"refused: {problem}")
            return False
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            self.dropped += 1
            log.warning("notification dropped: queue full", app=delivery.app, kind=delivery.event, dropped=self.dropped)
            return False
        return True

    def join(self, timeout: float) -> bool:
        """Wait until the queue is empty and processed (tests, shutdown); True when it was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    def deliver(self, delivery: Delivery) -> str:
        """Post one delivery now (the worker's step); returns the outcome."""
        headers = {"Content-Type": "application/json", "User-Agent": "regional-rollout"}
        try:
            key = self.keys.key(delivery.app)
        except KeyRefused as exc:
            return f"not sent: {exc}"
        if key is not None:
            headers[SIGNATURE_HEADER] = sign(delivery.body, key)
        try:
            status = self._poster(delivery.url, delivery.body, headers, self.deadline_s)
        except DeadlineExceeded as exc:
            return f"timed out: {exc}"
        except Exception as exc:  # noqa: BLE001 - DNS, TLS, refused: the message is lost, the loop is not
            return f"failed: {type(exc).__name__}"
        if 300 <= status < 400:
            return f"refused: redirect {status} not followed"
        return "delivered" if status < 300 else f"failed: HTTP {status}"

    def _work(self) -> None:
        while True:
            delivery = self._queue.get()
            try:
                if delivery is None:
                    return
                outcome = self.deliver(delivery)
                self._record(delivery.url, outcome)
                if outcome != "delivered":
                    log.warning("notification not delivered", app=delivery.app, kind=delivery.event, outcome=outcome)
            except Exception:  # noqa: BLE001 - the worker outlives any one message
                log.exception("notification worker error")
            finally:
                self._queue.task_done()

    def _record(self, url: str, outcome: str) -> None:
        self.outcomes.append((url, outcome))
        del self.outcomes[:-100]


_installed: Dispatcher | None = None


def install(dispatcher: Dispatcher | None) -> None:
    """The process's dispatcher, used by every `Webhooks` (the controller installs it at start)."""
    global _installed  # noqa: PLW0603 - one queue and worker per process
    _installed = dispatcher


def _reason(event: str) -> str:
    return {
        "started": "ReleaseStarted",
        "promoted": "WavePromoted",
        "failed": "ReleaseFailed",
        "drained": "RegionDrained",
        "rolledBack": "ReleaseRolledBack",
        "paused": "ReleasePaused",
        "succeeded": "ReleaseSucceeded",
    }.get(event, event[:1].upper() + event[1:])


def _message(notice: Notice) -> str:
    # the wave too: "failed in eu-west" alone does not say how far the release had got
    wave = f" (wave {notice.wave})" if notice.wave else ""
    where = f" in {notice.region}{wave}" if notice.region else f" at wave {notice.wave}" if notice.wave else ""
    return (
        f"{notice.app} {notice.version}{where}: {notice.reason} "
        f"(owner {notice.owner}, {notice.contact}; playbook {notice.playbook})"
    )

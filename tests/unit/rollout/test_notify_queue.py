"""Notifications off the reconcile path (rollout/notify.py): the operator's allow-list and keys as
tables, then the queue and worker against real loopback servers that trickle, redirect or answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rollout import notify
from rollout.notify import (
    SIGNATURE_HEADER,
    Delivery,
    Destinations,
    Dispatcher,
    KeyRefused,
    Notice,
    NotifyConfigError,
    SigningKeys,
    Webhooks,
    WebhookTarget,
    sign,
)

ALLOW = Destinations.parse(["https://hooks.example.com/payments/", "http://alerts.internal:8080/hook"])
NOW = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
NOTICE = Notice(
    "failed",
    "checkout",
    "checkout-1-2-0",
    "1.2.0",
    "error rate",
    "payments",
    "#pay",
    "https://wiki/checkout",
    region="eu-west",
    warning=True,
)

URLS = [
    ("https://hooks.example.com/payments/team-a", None),
    ("https://hooks.example.com/payments/", None),
    ("https://hooks.example.com/payments", None),
    ("https://HOOKS.example.com:443/payments/x?a=1", None),
    ("http://alerts.internal:8080/hook", None),
    ("http://alerts.internal:8080/hook/sub", None),
    ("https://hooks.example.com/payments-evil/x", "not allowed by the operator"),
    ("https://hooks.example.com/other", "not allowed by the operator"),
    ("https://hooks.example.com.evil.io/payments/", "not allowed by the operator"),
    ("http://hooks.example.com/payments/", "not allowed by the operator"),  # scheme is part of the grant
    ("https://hooks.example.com:8443/payments/", "not allowed by the operator"),
    ("http://alerts.internal/hook", "not allowed by the operator"),  # port 80, granted 8080
    ("http://alerts.internal:8080/hooked", "not allowed by the operator"),
    ("https://hooks.example.com/payments/../admin", "dot segments"),
    ("https://hooks.example.com/payments/%2e%2e/admin", "dot segments"),
    ("https://user:pw@hooks.example.com/payments/", "carries credentials"),
    ("http://kubernetes.default.svc/api", "not allowed by the operator"),
    ("file:///etc/passwd", "not an http(s) URL"),
    ("https://hooks.example.com:99999/payments/", "not a valid URL"),
]


@pytest.mark.parametrize(("url", "problem"), URLS, ids=[u for u, _ in URLS])
def test_destinations_are_the_operators_prefixes(url: str, problem: str | None) -> None:
    found = ALLOW.problem(url)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_no_allow_list_allows_nothing() -> None:
    assert "allows no notification destination" in (Destinations().problem("https://hooks.example.com/") or "")


@pytest.mark.parametrize("entry", ["hooks.example.com", "ftp://x/", "https://u:p@x/", "https://x:abc/"])
def test_a_malformed_allow_entry_stops_the_start(entry: str) -> None:
    with pytest.raises(NotifyConfigError, match="--notify-allow"):
        Destinations.parse([entry])


def test_signing_keys_come_from_the_operators_files_and_never_the_controllers_secrets(tmp_path: Path) -> None:
    (tmp_path / "pay.key").write_text("payments-key\n")
    (tmp_path / "stolen.key").write_text("the-webhook-secret")
    (tmp_path / "empty.key").write_text("")
    keys = SigningKeys.parse(
        [
            f"checkout={tmp_path}/pay.key",
            f"search={tmp_path}/stolen.key",
            f"cart={tmp_path}/empty.key",
            f"gone={tmp_path}/missing.key",
        ],
        forbidden=[b"the-webhook-secret", None],
    )
    assert keys.key("checkout") == b"payments-key"
    assert keys.key("nobody") is None
    with pytest.raises(KeyRefused, match="controller's own secrets"):
        keys.key("search")
    with pytest.raises(KeyRefused, match="empty"):
        keys.key("cart")
    with pytest.raises(KeyRefused, match="unreadable"):
        keys.key("gone")
    with pytest.raises(NotifyConfigError, match="APP=/path"):
        SigningKeys.parse(["checkout"])


# --- servers ------------------------------------------------------------------------------------------


class Server:
    """A loopback server answering each connection with `behaviour`; records what it received."""

    def __init__(self, behaviour: str, status: int = 200, location: str = ""):
        self.behaviour, self.status, self.location = behaviour, status, location
        self.requests: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            while len(body) < length:
                body += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + body)
            if self.behaviour == "trickle":  # one byte of the status line every 0.4 s, for ever
                for byte in b"HTTP/1.1 200 OK\r\n" * 100:
                    if self._stop.is_set():
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        return
                    time.sleep(0.4)
            else:
                extra = f"Location: {self.location}\r\n" if self.location else ""
                conn.sendall(f"HTTP/1.1 {self.status} X\r\n{extra}Content-Length: 0\r\n\r\n".encode())

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for server in made:
        server.close()


def dispatcher(*urls: str, keys: SigningKeys | None = None, capacity: int = 10, deadline: float = 1.0) -> Dispatcher:
    allow = Destinations.parse([u.rsplit("/", 1)[0] + "/" for u in urls])
    return Dispatcher(allow, keys or SigningKeys({}), capacity=capacity, deadline_s=deadline).start()


def test_a_trickling_server_does_not_slow_the_emitter_and_is_cut_at_the_deadline(servers: list[Server]) -> None:
    slow, good = Server("trickle"), Server("answer")
    servers += [slow, good]
    worker = dispatcher(slow.url, good.url, deadline=1.0)
    try:
        hooks = Webhooks(
            [WebhookTarget(slow.url, ("failed",)), WebhookTarget(good.url, ("failed",))], dispatcher=worker
        )
        started = time.monotonic()
        hooks.emit(NOTICE, NOW)  # what the reconcile pass calls
        emitted = time.monotonic() - started
        assert emitted < 0.05, f"emit took {emitted:.3f}s: it must only queue"
        assert worker.join(timeout=5), "the worker did not finish within the deadlines"
        took = time.monotonic() - started
        outcomes = dict(worker.outcomes)
        assert outcomes[slow.url].startswith("timed out"), outcomes
        assert outcomes[good.url] == "delivered" and len(good.requests) == 1
        assert took < 2.0, f"the trickling server held the worker {took:.1f}s (deadline 1s)"
    finally:
        worker.stop()


def test_redirects_are_not_followed(servers: list[Server]) -> None:
    target = Server("answer")
    redirect = Server("answer", status=302, location=target.url)
    servers += [target, redirect]
    worker = dispatcher(redirect.url, target.url)
    try:
        assert worker.submit(Delivery(redirect.url, "checkout", "failed", b"{}"))
        assert worker.join(5)
        assert dict(worker.outcomes)[redirect.url] == "refused: redirect 302 not followed"
        assert target.requests == []
    finally:
        worker.stop()


def test_a_destination_outside_the_grant_is_never_contacted(servers: list[Server]) -> None:
    outside = Server("answer")
    servers.append(outside)
    worker = dispatcher("https://hooks.example.com/payments/x")
    try:
        assert not worker.submit(Delivery(outside.url, "checkout", "failed", b"{}"))
        assert worker.join(2) and outside.requests == []
        assert "not allowed by the operator" in dict(worker.outcomes)[outside.url]
    finally:
        worker.stop()


def test_a_full_queue_drops_without_blocking() -> None:
    worker = Dispatcher(Destinations.parse(["https://hooks.example.com/"]), SigningKeys({}), capacity=2)
    # not started: nothing drains the queue
    delivery = Delivery("https://hooks.example.com/x", "checkout", "failed", b"{}")
    started = time.monotonic()
    results = [worker.submit(delivery) for _ in range(5)]
    assert results == [True, True, False, False, False] and worker.dropped == 3
    assert time.monotonic() - started < 0.05


def test_messages_are_signed_with_the_operators_key_for_the_app_only(
    servers: list[Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server("answer")
    servers.append(server)
    (tmp_path / "checkout.key").write_text("op-key")
    monkeypatch.setenv("ROLLOUT_WEBHOOK_SECRET", "controller-secret")
    worker = dispatcher(server.url, keys=SigningKeys.parse([f"checkout={tmp_path}/checkout.key"]))
    try:
        # secret_env naming the controller's own secret is ignored (config refuses it anyway)
        Webhooks([WebhookTarget(server.url, ("failed",), "ROLLOUT_WEBHOOK_SECRET")], dispatcher=worker).emit(
            NOTICE, NOW
        )
        other = Notice(**{**NOTICE.__dict__, "app": "search"})
        Webhooks([WebhookTarget(server.url, ("failed",))], dispatcher=worker).emit(other, NOW)
        assert worker.join(5) and len(server.requests) == 2
        signed, unsigned = sorted(server.requests, key=lambda r: b"search" in r)
        head, _, body = signed.partition(b"\r\n\r\n")
        assert f"{SIGNATURE_HEADER}: {sign(body, b'op-key')}".encode().lower() in head.lower()
        assert sign(body, b"controller-secret").encode() not in head
        assert SIGNATURE_HEADER.lower().encode() not in unsigned.lower()
    finally:
        worker.stop()


def test_without_an_installed_dispatcher_nothing_is_sent(servers: list[Server]) -> None:
    server = Server("answer")
    servers.append(server)
    notify.install(None)
    Webhooks([WebhookTarget(server.url, ("failed",))]).emit(NOTICE, NOW)
    time.sleep(0.2)  # nothing to wait for: a request would arrive within this
    assert server.requests == []


def test_the_installed_dispatcher_is_what_the_reconciler_reaches(servers: list[Server]) -> None:
    server = Server("answer")
    servers.append(server)
    worker = dispatcher(server.url)
    notify.install(worker)
    try:
        paused = Notice(**{**NOTICE.__dict__, "event": "paused"})
        Webhooks([WebhookTarget(server.url, ("paused",)), WebhookTarget(server.url, ("succeeded",))]).emit(paused, NOW)
        assert worker.join(5) and len(server.requests) == 1  # only the target subscribed to "paused"
    finally:
        notify.install(None)
        worker.stop()


def test_the_repository_can_no_longer_name_the_signing_key() -> None:
    from pydantic import ValidationError

    from config.schema import Notification

    with pytest.raises(ValidationError, match="secretEnv is not accepted: the repository cannot choose"):
        Notification.model_validate({"webhook": "https://hooks.example.com/x", "secretEnv": "ROLLOUT_WEBHOOK_SECRET"})
    assert Notification.model_validate({"webhook": "https://hooks.example.com/x"}).secret_env is None

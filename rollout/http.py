"""The controller's HTTP endpoints: /healthz, /readyz and /metrics on one listener, the Git push
webhook (/webhook/git) on another.

Listeners. Probes and metrics: `--http-host`/`--http-port`, 127.0.0.1 by default (the Deployment
binds the pod IP, which the kubelet and Prometheus reach). The webhook: `--webhook-host`/
`--webhook-port`; without `--webhook-port` it shares the probes listener (a terminal or the lab,
on 127.0.0.1), with it the two are separate and the webhook port serves nothing else.

The webhook accepts GitHub/Gitea-style `X-Hub-Signature-256: sha256=<hmac>` over the raw body. The
body is never parsed: an accepted push only means "sync the branch now", so it can carry nothing
the controller trusts. A request is refused, in this order and before any byte of its body is
read, when: the webhook has no key (403); it is chunked or has no, several, a negative or a
non-numeric Content-Length (411/400); the length is over the cap (413); the signature header is
missing (401, "missing") or not `sha256=<64 hex>` (401, "malformed"). Then at most the announced
length is read, within the request deadline (408), and the HMAC is checked (401, "does not match").

Replay window: a delivery whose forge id (X-GitHub-Delivery, X-Gitea-Delivery, X-Gogs-Delivery) was
accepted in the last `replay_seconds` is refused (409). Bodies are not deduplicated: two pushes may
legitimately carry the same body (a minimal payload), and forges sign no timestamp. What a replay
(or a captured body under a fresh id) can do is bounded instead: the body is never used, so it can
only ask for one more fetch of the branch head, coalesced with any pending one.

Bounds: every connection has one deadline for the whole request (headers and body, enforced by a
watchdog that shuts the socket: a client sending one byte per second cannot hold a thread), per
read socket timeouts, and at most `max_in_flight` connections per listener; the next one is
answered 503 at once. A follower answers a valid push 503 with Retry-After: the sender (or its
redelivery) reaches the leader through the Service, and the leader's poll picks the commit up
within `--poll-seconds` anyway.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rollout.metrics import REGISTRY
from rollout.notify import verify

log = structlog.get_logger("rollout.http")
PUSH_SIGNATURE_HEADER = "X-Hub-Signature-256"
DELIVERY_HEADERS = ("X-GitHub-Delivery", "X-Gitea-Delivery", "X-Gogs-Delivery")
WEBHOOK_PATH = "/webhook/git"
MAX_BODY = 5 * 1024 * 1024
SIGNATURE = re.compile(r"^sha256=[0-9a-f]{64}$")
LENGTH = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class Limits:
    max_body: int = MAX_BODY
    request_seconds: float = 10.0  # the whole request: headers and body
    max_in_flight: int = 8  # connections handled at once per listener; the next gets 503
    replay_seconds: float = 600.0
    replay_entries: int = 4096
    retry_after_seconds: int = 5


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    retry_after: int | None = None


def check_head(headers: Message, key: bytes | None, limits: Limits) -> Refusal | int:
    """The webhook request's headers, checked before its body is read: the Content-Length to read,
    or why the request is refused."""
    if key is None:
        return Refusal(403, "webhook disabled: no secret configured")
    if headers.get("Transfer-Encoding") is not None:
        return Refusal(411, "chunked bodies are not accepted; send Content-Length")
    lengths = headers.get_all("Content-Length") or []
    if not lengths:
        return Refusal(411, "Content-Length required")
    if len(lengths) > 1 or not LENGTH.match(lengths[0].strip()):
        return Refusal(400, "invalid Content-Length")
    length = int(lengths[0].strip())
    if length > limits.max_body:
        return Refusal(413, f"too large: at most {limits.max_body} bytes")
    signature = headers.get(PUSH_SIGNATURE_HEADER)
    if signature is None or not signature.strip():
        return Refusal(401, f"missing signature: {PUSH_SIGNATURE_HEADER} header required")
    if not SIGNATURE.match(signature.strip()):
        return Refusal(401, "malformed signature: expected sha256=<64 hex digits>")
    return length


def check_body(body: bytes, key: bytes, signature: str) -> Refusal | None:
    if not verify(body, key, signature.strip()):
        return Refusal(401, "bad signature: does not match the body")
    return None


def delivery_keys(headers: Message) -> tuple[str, ...]:
    """What identifies one delivery: the forge's delivery ids (none: no replay check)."""
    return tuple(
        f"{h.lower()}:{headers.get(h, '').strip()[:200]}" for h in DELIVERY_HEADERS if headers.get(h, "").strip()
    )


class ReplayGuard:
    """Deliveries accepted in the last `window` seconds, bounded to `capacity` entries."""

    def __init__(self, window: float, capacity: int, clock: Callable[[], float] = time.monotonic):
        self._window = window
        self._capacity = capacity
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, keys: Iterable[str]) -> bool:
        with self._lock:
            self._expire(self._clock())
            return any(k in self._seen for k in keys)

    def record(self, keys: Iterable[str]) -> None:
        with self._lock:
            now = self._clock()
            for k in keys:
                self._seen[k] = now
                self._seen.move_to_end(k)
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)

    def _expire(self, now: float) -> None:
        while self._seen:
            first, at = next(iter(self._seen.items()))
            if now - at < self._window:
                return
            del self._seen[first]


class _Server(ThreadingHTTPServer):
    """A threading server with a bounded number of connections in flight."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], limits: Limits):
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_in_flight)
        if ":" in address[0]:  # an IPv6 pod IP
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _busy(request, self.limits.retry_after_seconds)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _busy(request: socket.socket, retry_after: int) -> None:
    body = b"busy\n"
    head = (
        f"HTTP/1.0 503 Service Unavailable\r\nRetry-After: {retry_after}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):
        request.settimeout(1.0)
        request.sendall(head + body)


class Endpoints:
    def __init__(
        self,
        host: str,
        port: int,
        webhook_key: bytes | None,
        on_push: Callable[[], bool],
        ready: Callable[[], bool],
        *,
        webhook_host: str | None = None,
        webhook_port: int | None = None,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._key = webhook_key
        self._on_push = on_push
        self._ready = ready
        self.limits = limits or Limits()
        self.replays = ReplayGuard(self.limits.replay_seconds, self.limits.replay_entries, clock)
        shared = webhook_port is None
        self._probes = _Server((host, port), self._handler(probes=True, webhook=shared), self.limits)
        self._servers = [self._probes]
        self._webhook = self._probes
        if not shared:
            assert webhook_port is not None
            self._webhook = _Server(
                (webhook_host or host, webhook_port), self._handler(probes=False, webhook=True), self.limits
            )
            self._servers.append(self._webhook)
        self._threads = [
            threading.Thread(target=s.serve_forever, name=f"http-{i}", daemon=True) for i, s in enumerate(self._servers)
        ]

    @property
    def port(self) -> int:
        """The probes and /metrics port."""
        return int(self._probes.server_address[1])

    @property
    def webhook_port(self) -> int:
        return int(self._webhook.server_address[1])

    @property
    def separate(self) -> bool:
        return self._webhook is not self._probes

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def _push(self, headers: Message, body: bytes) -> Refusal | None:
        """A verified push: refused as a replay, handed to the leader, or refused by a follower."""
        keys = delivery_keys(headers)
        if self.replays.seen(keys):
            return Refusal(409, "duplicate delivery: already received")
        if not self._on_push():
            return Refusal(503, "not the leader: retry", retry_after=self.limits.retry_after_seconds)
        self.replays.record(keys)
        return None

    def _handler(self, *, probes: bool, webhook: bool) -> type[BaseHTTPRequestHandler]:
        endpoints = self
        limits = self.limits

        class Handler(BaseHTTPRequestHandler):
            timeout = limits.request_seconds  # each socket read; the watchdog bounds the whole request

            def setup(self) -> None:
                super().setup()
                self.expired = False
                self._watchdog = threading.Timer(limits.request_seconds, self._expire)
                self._watchdog.daemon = True
                self._watchdog.start()

            def finish(self) -> None:
                self._watchdog.cancel()
                with contextlib.suppress(OSError):
                    super().finish()

            def _expire(self) -> None:
                self.expired = True
                with contextlib.suppress(OSError):  # a blocked read returns at once; the reply can still go out
                    self.connection.shutdown(socket.SHUT_RD)

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if not probes:
                    self._reply(404, b"not found")
                elif self.path == "/healthz":
                    self._reply(200, b"ok")
                elif self.path == "/readyz":
                    self._reply(200, b"ready") if endpoints._ready() else self._reply(503, b"not ready")
                elif self.path == "/metrics":
                    self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                else:
                    self._reply(404, b"not found")

            def do_POST(self) -> None:  # noqa: N802
                if not webhook or self.path != WEBHOOK_PATH:
                    self._reply(404, b"not found")
                    return
                if self.expired:  # the headers trickled in past the deadline
                    self._refuse(Refusal(408, "request timed out"))
                    return
                head = check_head(self.headers, endpoints._key, limits)
                if isinstance(head, Refusal):
                    self._refuse(head)
                    return
                assert endpoints._key is not None
                timed_out = False
                try:
                    body = self.rfile.read(head)
                except (TimeoutError, OSError):
                    body, timed_out = b"", True
                if len(body) < head:
                    self._refuse(
                        Refusal(408, "request timed out")
                        if self.expired or timed_out
                        else Refusal(400, "body shorter than Content-Length")
                    )
                    return
                refusal = check_body(body, endpoints._key, self.headers[PUSH_SIGNATURE_HEADER]) or endpoints._push(
                    self.headers, body
                )
                if refusal is not None:
                    self._refuse(refusal)
                    return
                self._reply(202, b"sync scheduled")

            def _refuse(self, refusal: Refusal) -> None:
                if refusal.status in (401, 403, 409):
                    log.warning(
                        "webhook refused", status=refusal.status, reason=refusal.message, client=self.client_address[0]
                    )
                extra = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else {}
                self.close_connection = True
                self._reply(refusal.status, refusal.message.encode() + b"\n", extra=extra)

            def _reply(
                self, code: int, body: bytes, content_type: str = "text/plain", extra: dict[str, str] | None = None
            ) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in (extra or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    self.close_connection = True  # the client went away: nothing to tell it

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # structlog carries what matters; per-request lines would drown it

        return Handler

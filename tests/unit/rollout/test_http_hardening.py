"""The webhook and probes endpoints (rollout/http.py): the pure request checks as a table, then the
real server in-process on loopback sockets, driven by raw clients that misbehave (negative or huge
Content-Length, a body or headers trickled byte by byte, no or wrong signature, replays, floods)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from email.message import Message

import pytest

from rollout.http import Endpoints, Limits, Refusal, ReplayGuard, check_head, delivery_keys
from rollout.notify import sign

KEY = b"test-webhook-key"
BODY = b'{"ref": "refs/heads/main", "after": "abc"}'
LIMITS = Limits(max_body=1024, request_seconds=1.0, max_in_flight=2, replay_seconds=60, retry_after_seconds=7)


def headers(**values: str) -> Message:
    message = Message()
    for name, value in values.items():
        message[name.replace("_", "-")] = value
    return message


# --- the pure checks --------------------------------------------------------------------------------

SIG = sign(BODY, KEY)
HEADS: list[tuple[str, bytes | None, Message, int, str]] = [
    ("no key configured", None, headers(Content_Length="10", X_Hub_Signature_256=SIG), 403, "webhook disabled"),
    ("chunked", KEY, headers(Transfer_Encoding="chunked", X_Hub_Signature_256=SIG), 411, "chunked"),
    ("chunked with a length", KEY, headers(Transfer_Encoding="chunked", Content_Length="5"), 411, "chunked"),
    ("no Content-Length", KEY, headers(X_Hub_Signature_256=SIG), 411, "Content-Length required"),
    ("negative Content-Length", KEY, headers(Content_Length="-1", X_Hub_Signature_256=SIG), 400, "invalid"),
    ("non-numeric Content-Length", KEY, headers(Content_Length="12abc", X_Hub_Signature_256=SIG), 400, "invalid"),
    ("huge Content-Length", KEY, headers(Content_Length="9" * 40, X_Hub_Signature_256=SIG), 400, "invalid"),
    ("over the cap", KEY, headers(Content_Length="1025", X_Hub_Signature_256=SIG), 413, "at most 1024 bytes"),
    ("missing signature", KEY, headers(Content_Length="10"), 401, "missing signature"),
    ("empty signature", KEY, headers(Content_Length="10", X_Hub_Signature_256=" "), 401, "missing signature"),
    ("sha1 signature", KEY, headers(Content_Length="10", X_Hub_Signature_256="sha1=abc"), 401, "malformed"),
    ("short signature", KEY, headers(Content_Length="10", X_Hub_Signature_256="sha256=abc"), 401, "malformed"),
]


@pytest.mark.parametrize(("case", "key", "head", "status", "text"), HEADS, ids=[h[0] for h in HEADS])
def test_request_head_refused_before_the_body(
    case: str, key: bytes | None, head: Message, status: int, text: str
) -> None:
    result = check_head(head, key, LIMITS)
    assert isinstance(result, Refusal), f"{case}: accepted"
    assert (result.status, text in result.message) == (status, True), f"{case}: {result}"


def test_two_content_lengths_are_refused() -> None:
    head = headers(X_Hub_Signature_256=SIG)
    head["Content-Length"] = "5"
    head["Content-Length"] = "50"
    result = check_head(head, KEY, LIMITS)
    assert isinstance(result, Refusal) and result.status == 400


def test_a_well_formed_head_gives_the_length_to_read() -> None:
    assert check_head(headers(Content_Length=str(len(BODY)), X_Hub_Signature_256=SIG), KEY, LIMITS) == len(BODY)


def test_replay_guard_forgets_after_the_window_and_stays_bounded() -> None:
    now = [0.0]
    guard = ReplayGuard(window=60, capacity=3, clock=lambda: now[0])
    guard.record(["id:a", "id:b"])
    assert guard.seen(["id:b"]) and guard.seen(["id:a", "id:zzz"])
    now[0] = 59.9
    assert guard.seen(["id:a"])
    now[0] = 60.0
    assert not guard.seen(["id:a"]) and not guard.seen(["id:b"])
    guard.record(["k1", "k2", "k3", "k4"])
    assert not guard.seen(["k1"]) and guard.seen(["k4"])


def test_delivery_keys_are_the_forges_ids() -> None:
    assert delivery_keys(headers(X_GitHub_Delivery="d-1", X_Gitea_Delivery="g-1")) == (
        "x-github-delivery:d-1",
        "x-gitea-delivery:g-1",
    )
    assert delivery_keys(headers()) == ()  # no id: nothing to compare, no replay check


# --- the real server ----------------------------------------------------------------------------------


class Leader:
    def __init__(self) -> None:
        self.leading = True
        self.pushes = 0

    def __call__(self) -> bool:
        if self.leading:
            self.pushes += 1
        return self.leading


@pytest.fixture
def leader() -> Leader:
    return Leader()


@pytest.fixture
def server(leader: Leader) -> Iterator[Endpoints]:
    endpoints = Endpoints(
        "127.0.0.1", 0, KEY, leader, lambda: True, webhook_host="127.0.0.1", webhook_port=0, limits=LIMITS
    )
    endpoints.start()
    yield endpoints
    endpoints.stop()


def raw(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; return (status, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), fields, body


def post(
    port: int, body: bytes = BODY, signature: str | None = None, extra: str = "", length: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    sig = sign(body, KEY) if signature is None else signature
    head = f"POST /webhook/git HTTP/1.1\r\nHost: x\r\nContent-Length: {length or len(body)}\r\n"
    if sig:
        head += f"X-Hub-Signature-256: {sig}\r\n"
    return raw(port, (head + extra + "\r\n").encode() + body)


def test_a_signed_push_is_accepted_and_handed_to_the_leader(server: Endpoints, leader: Leader) -> None:
    status, _, body = post(server.webhook_port)
    assert (status, body) == (202, b"sync scheduled") and leader.pushes == 1


def test_negative_content_length_is_refused_without_reading(server: Endpoints, leader: Leader) -> None:
    status, _, body = raw(
        server.webhook_port,
        b"POST /webhook/git HTTP/1.1\r\nContent-Length: -1\r\n"
        b"X-Hub-Signature-256: " + sign(b"", KEY).encode() + b"\r\n\r\n",
    )
    assert status == 400 and b"invalid Content-Length" in body and leader.pushes == 0


def test_an_oversized_body_is_refused_from_its_header_alone(server: Endpoints) -> None:
    with socket.create_connection(("127.0.0.1", server.webhook_port), timeout=5) as sock:
        sock.sendall(
            b"POST /webhook/git HTTP/1.1\r\nContent-Length: 100000000\r\n"
            b"X-Hub-Signature-256: " + SIG.encode() + b"\r\n\r\n"
        )  # not one byte of the body
        started = time.monotonic()
        status, _, body = read_answer(sock)
    assert status == 413 and b"at most 1024" in body and time.monotonic() - started < 0.9


def test_a_missing_signature_and_a_wrong_one_are_told_apart(server: Endpoints, leader: Leader) -> None:
    missing = post(server.webhook_port, signature="")
    wrong = post(server.webhook_port, signature=sign(BODY, b"another key"))
    assert missing[0] == 401 and b"missing signature" in missing[2]
    assert wrong[0] == 401 and b"does not match" in wrong[2]
    assert leader.pushes == 0


def test_a_slow_body_times_out_within_the_request_deadline(server: Endpoints, leader: Leader) -> None:
    with socket.create_connection(("127.0.0.1", server.webhook_port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(
            f"POST /webhook/git HTTP/1.1\r\nContent-Length: {len(BODY)}\r\nX-Hub-Signature-256: {SIG}\r\n\r\n".encode()
        )
        status = None
        for byte in BODY:  # one byte every 0.3 s: each read is quick, the request never ends
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.3)
            if time.monotonic() - started > 1.5:
                break
        status, _, body = read_answer(sock)
        took = time.monotonic() - started
    assert status == 408 and b"timed out" in body
    assert took < 2.5, f"answered after {took:.1f}s; the deadline is {LIMITS.request_seconds}s"
    assert leader.pushes == 0


def test_trickled_headers_are_cut_at_the_deadline(server: Endpoints) -> None:
    with socket.create_connection(("127.0.0.1", server.webhook_port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /webhook/git HTTP/1.1\r\n")
        closed = False
        while time.monotonic() - started < 4:
            try:
                sock.sendall(b"X")  # a header line that never ends
                sock.settimeout(0.25)
                if sock.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
            else:
                closed = True  # an answer (an error status) and then the close
                break
        took = time.monotonic() - started
    assert closed and took < 2.5, f"connection still held after {took:.1f}s"


def test_a_replayed_delivery_is_refused(server: Endpoints, leader: Leader) -> None:
    assert post(server.webhook_port, extra="X-GitHub-Delivery: d-1\r\n")[0] == 202
    same = post(server.webhook_port, extra="X-GitHub-Delivery: d-1\r\n")
    other = BODY.replace(b"abc", b"def")
    same_id_other_body = post(server.webhook_port, body=other, extra="X-GitHub-Delivery: d-1\r\n")
    assert same[0] == 409 and b"duplicate delivery" in same[2] and same_id_other_body[0] == 409
    assert leader.pushes == 1
    # a new delivery, and pushes without an id (the same minimal body twice), are accepted
    assert post(server.webhook_port, extra="X-GitHub-Delivery: d-2\r\n")[0] == 202
    assert post(server.webhook_port)[0] == 202 and post(server.webhook_port)[0] == 202
    assert leader.pushes == 4


def test_a_follower_asks_the_sender_to_retry_and_does_not_burn_the_delivery(server: Endpoints, leader: Leader) -> None:
    leader.leading = False
    status, fields, body = post(server.webhook_port, extra="X-GitHub-Delivery: d-9\r\n")
    assert status == 503 and fields.get("Retry-After") == "7" and b"not the leader" in body
    leader.leading = True
    assert post(server.webhook_port, extra="X-GitHub-Delivery: d-9\r\n")[0] == 202  # the retry lands


def test_connections_beyond_the_bound_get_503_at_once(server: Endpoints) -> None:
    idle = [
        socket.create_connection(("127.0.0.1", server.webhook_port), timeout=5) for _ in range(LIMITS.max_in_flight)
    ]
    try:
        deadline = time.monotonic() + 5  # until the accept loop has taken the idle ones
        while True:
            started = time.monotonic()
            status, fields, _ = post(server.webhook_port)
            if status == 503 or time.monotonic() > deadline:
                break
        assert status == 503 and fields.get("Retry-After") == "7"
        assert time.monotonic() - started < 0.5
        assert raw(server.port, b"GET /healthz HTTP/1.0\r\n\r\n")[0] == 200  # probes have their own slots
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # slots come back once the idle ones are closed or cut
        if post(server.webhook_port, body=b'{"n": 1}')[0] == 202:
            break
        time.sleep(0.1)
    else:
        pytest.fail("slots never came back")


def test_probes_and_metrics_are_not_on_the_webhook_port(server: Endpoints) -> None:
    assert server.separate and server.port != server.webhook_port
    assert raw(server.webhook_port, b"GET /metrics HTTP/1.0\r\n\r\n")[0] == 404
    assert raw(server.webhook_port, b"GET /healthz HTTP/1.0\r\n\r\n")[0] == 404
    assert raw(server.port, b"GET /metrics HTTP/1.0\r\n\r\n")[0] == 200
    assert raw(server.port, b"GET /readyz HTTP/1.0\r\n\r\n")[0] == 200
    assert post(server.port)[0] == 404


def test_without_a_webhook_port_one_listener_serves_both(leader: Leader) -> None:
    endpoints = Endpoints("127.0.0.1", 0, KEY, leader, lambda: True, limits=LIMITS)
    endpoints.start()
    try:
        assert not endpoints.separate and endpoints.port == endpoints.webhook_port
        assert raw(endpoints.port, b"GET /healthz HTTP/1.0\r\n\r\n")[0] == 200
        assert post(endpoints.port)[0] == 202
    finally:
        endpoints.stop()


def test_an_ipv6_pod_ip_can_be_bound(leader: Leader) -> None:
    try:
        endpoints = Endpoints("::1", 0, KEY, leader, lambda: True, limits=LIMITS)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    endpoints.start()
    try:
        with socket.create_connection(("::1", endpoints.port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert read_answer(sock)[0] == 200
    finally:
        endpoints.stop()

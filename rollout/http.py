"""The controller's HTTP endpoints: /healthz, /readyz, /metrics and the Git push webhook.

The webhook accepts GitHub/Gitea-style `X-Hub-Signature-256: sha256=<hmac>` over the raw body
and refuses anything unsigned or wrongly signed: a forged push must not even trigger a sync.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rollout.metrics import REGISTRY
from rollout.notify import verify

log = structlog.get_logger("rollout.http")
PUSH_SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_BODY = 5 * 1024 * 1024


class Endpoints:
    def __init__(self, host: str, port: int, webhook_key: bytes | None, on_push: Callable[[], None],
                 ready: Callable[[], bool]):
        self._key = webhook_key
        self._on_push = on_push
        self._ready = ready
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path == "/healthz":
                    self._reply(200, b"ok")
                elif self.path == "/readyz":
                    self._reply(200, b"ready") if endpoints._ready() else self._reply(503, b"not ready")
                elif self.path == "/metrics":
                    self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                else:
                    self._reply(404, b"not found")

            def do_POST(self) -> None:  # noqa: N802
                if self.path != "/webhook/git":
                    self._reply(404, b"not found")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._reply(413, b"too large")
                    return
                body = self.rfile.read(length)
                if endpoints._key is None:
                    self._reply(403, b"webhook disabled: no secret configured")
                    return
                if not verify(body, endpoints._key, self.headers.get(PUSH_SIGNATURE_HEADER)):
                    log.warning("webhook refused: bad signature", client=self.client_address[0])
                    self._reply(401, b"bad signature")
                    return
                endpoints._on_push()
                self._reply(202, b"sync scheduled")

            def _reply(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # structlog carries what matters; per-request lines would drown it

        return Handler

"""`rollout ui`'s web server: the standard library's threading HTTP server.

Why not a framework: it is a local tool for one person's browser tabs; a thread per open page is
plenty, the Kubernetes client is synchronous anyway, and no new dependency has to be kept up. Pages
are rendered on the server from the shared watch (live.py) with Jinja2; a little vanilla script
swaps the live part when the Server-Sent Events stream says something changed.

Every read and action uses the caller's kubeconfig identity; RBAC decides. A POST must carry this
server's random token (from the page) and an Origin naming this server; a Host header that is not
this server is refused (DNS rebinding).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import structlog
from jinja2 import Environment, PackageLoader, select_autoescape
from kubernetes import client
from markupsafe import Markup

from rollout.store import ACTIONS, GROUP
from rollout.ui import model
from rollout.ui.live import Hub

log = structlog.get_logger(__name__)
MAX_BODY = 16_384
TICK_S = 10.0  # with nothing changing, pages still re-render this often (smoke time left)
PERMISSION_TTL_S = 60.0
STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}


class Backend(Protocol):
    """What the server needs of the CLI's Ops (rollout/cli/ops.py): the caller's identity, the
    namespace and the one code path that creates a ReleaseAction."""

    namespace: str
    api_client: client.ApiClient

    def whoami(self) -> str: ...

    def submit(self, action: str, app: str | None, reason: str, *, region: str | None = None) -> dict[str, Any]: ...


def can_create_actions(api_client: client.ApiClient, namespace: str) -> bool:
    """A SelfSubjectAccessReview: may the caller create ReleaseActions here? (Only decides whether
    buttons are shown; the API server still decides every request.)"""
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                group=GROUP, resource=ACTIONS, verb="create", namespace=namespace
            )
        )
    )
    try:
        result = client.AuthorizationV1Api(api_client).create_self_subject_access_review(review)
    except Exception as exc:  # noqa: BLE001 - no answer: show no buttons (the safe side)
        log.warning("ui.access_review.failed", error=str(exc))
        return False
    return bool(result.status and result.status.allowed)


class UI:
    """The state one server shares between its request threads."""

    def __init__(
        self,
        backend: Backend,
        hub: Hub,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        access: Callable[[], bool] | None = None,
    ):
        self.backend, self.hub, self.now = backend, hub, now
        self.access = access or (lambda: can_create_actions(backend.api_client, backend.namespace))
        self.token = secrets.token_urlsafe(32)
        self.user = backend.whoami()
        self.env = Environment(loader=PackageLoader("rollout.ui", "templates"), autoescape=select_autoescape(["j2"]))
        self._allowed: tuple[float, bool] = (-1e9, False)
        self._lock = threading.Lock()

    def may_act(self) -> bool:
        with self._lock:
            at, allowed = self._allowed
            if time.monotonic() - at < PERMISSION_TTL_S:
                return allowed
        allowed = self.access()
        with self._lock:
            self._allowed = (time.monotonic(), allowed)
        return allowed

    # --- pages ----------------------------------------------------------------------------------

    def page(self, path: str, query: dict[str, list[str]]) -> tuple[str, dict[str, Any]] | None:
        """(template, context) of the live part of a page; None for an unknown page."""
        now = self.now()
        releases, actions = self.hub.releases(), self.hub.actions()
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if not parts:
            waiting = query.get("waiting", [""])[0] == "1"
            return "fleet.html.j2", {"fleet": model.fleet_view(releases, now, waiting_only=waiting), "waiting": waiting}
        if len(parts) == 2 and parts[0] == "release":
            release = next((r for r in releases if r["metadata"]["name"] == parts[1]), None)
            if release is None:
                return None
            return "release.html.j2", {"page": model.release_page(release, actions, now)}
        if len(parts) == 2 and parts[0] == "app":
            history = model.history_page(parts[1], releases, actions)
            return (
                "history.html.j2",
                {"page": history, "header": model.HISTORY_HEADER, "request_header": model.REQUEST_HEADER},
            )
        if len(parts) == 2 and parts[0] == "region":
            return "region.html.j2", {
                "page": model.region_page(parts[1], releases, actions, now),
                "request_header": model.REQUEST_HEADER,
            }
        return None

    def render(self, path: str, query: dict[str, list[str]], *, live_only: bool) -> str | None:
        found = self.page(path, query)
        if found is None:
            return None
        template, context = found
        context |= {"Markup": Markup, "error": self.hub.error, "synced": self.hub.synced}
        live = self.env.get_template(template).render(**context)
        if live_only:
            return live
        target = self._target(path)
        return self.env.get_template("base.html.j2").render(
            live=Markup(live),
            user=self.user,
            namespace=self.backend.namespace,
            token=self.token,
            may_act=self.may_act() and target is not None,
            target=target,
            app_actions=model.APP_ACTIONS,
            region_actions=model.REGION_ACTIONS,
            title=path,
        )

    def _target(self, path: str) -> dict[str, str] | None:
        """What the page's action buttons act on: a release's app, or a region."""
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if len(parts) != 2:
            return None
        if parts[0] == "release":
            release = next((r for r in self.hub.releases() if r["metadata"]["name"] == parts[1]), None)
            return {"app": release["spec"]["app"]} if release else None
        if parts[0] == "app":
            return {"app": parts[1]}
        if parts[0] == "region":
            return {"region": parts[1]}
        return None

    # --- actions --------------------------------------------------------------------------------

    def act(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Create the ReleaseAction the CLI would create; (HTTP status, JSON answer)."""
        action, reason = form.get("action", ""), form.get("reason", "").strip()
        app, region = form.get("app") or None, form.get("region") or None
        if action in model.APP_ACTIONS:
            if not app:
                return 400, {"error": f"{action} needs an app"}
            if not any(r["spec"]["app"] == app for r in self.hub.releases()):
                return 404, {"error": f"unknown app {app!r}: no release of it exists in {self.backend.namespace}"}
        elif action in model.REGION_ACTIONS:
            if not region or app:
                return 400, {"error": f"{action} needs a region (and no app)"}
        else:
            return 400, {"error": f"unknown action {action!r}"}
        if not reason:
            return 400, {"error": "a reason is required: it is recorded with your name"}
        try:
            created = self.backend.submit(action, app, reason, region=region)
        except Exception as exc:  # noqa: BLE001 - the CLI's readable message (403 names the role to ask for)
            text = str(exc)
            return (403 if "permission denied" in text else 502), {"error": text}
        name = created["metadata"]["name"]
        log.info("ui.action", action=action, app=app, region=region, name=name, by=self.user)
        return 200, {"name": name, "message": f"{action} requested ({name}); waiting for the controller"}

    def action_state(self, name: str) -> dict[str, Any] | None:
        action = next((a for a in self.hub.actions() if a["metadata"]["name"] == name), None)
        if action is None:
            return None
        status = action.get("status") or {}
        return {"name": name, "state": status.get("state", "Pending"), "message": status.get("message", "")}


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("ui.http", line=format % args)

    @property
    def ui(self) -> UI:
        return self.server.ui

    def _host_ok(self) -> bool:
        """On loopback only this server's own names (a rebound DNS name is refused); elsewhere any."""
        return self.server.hosts is None or self.headers.get("Host", "") in self.server.hosts

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if not self._host_ok():
            self._send(400, b"unknown Host header\n", "text/plain")
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/events":
            self._events()
            return
        if url.path.startswith("/static/"):
            name = url.path.removeprefix("/static/")
            if name not in STATIC:
                self._send(404, b"not found\n", "text/plain")
                return
            data = resources.files("rollout.ui").joinpath("static", name).read_bytes()
            self._send(200, data, STATIC[name])
            return
        if url.path.startswith("/action/"):
            state = self.ui.action_state(unquote(url.path.removeprefix("/action/")))
            self._json(200 if state else 404, state or {"error": "no such action (yet)"})
            return
        if url.path == "/healthz":
            self._send(200, b"ok\n" if self.ui.hub.synced else b"syncing\n", "text/plain")
            return
        html = self.ui.render(url.path, query, live_only=query.get("part", [""])[0] == "live")
        if html is None:
            self._send(404, b"no such page or release\n", "text/plain")
            return
        self._send(200, html.encode(), "text/html; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        if not self._host_ok():
            self._json(400, {"error": "unknown Host header"})
            return
        if self.headers.get("Origin", "") != f"http://{self.headers.get('Host', '')}":
            self._json(403, {"error": "cross-site request refused (Origin is not this server)"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            self._json(413, {"error": "request too large"})
            return
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
        if not hmac.compare_digest(form.get("token", ""), self.ui.token):
            self._json(403, {"error": "missing or wrong page token: reload the page"})
            return
        if urlsplit(self.path).path != "/action":
            self._json(404, {"error": "not found"})
            return
        status, answer = self.ui.act(form)
        self._json(status, answer)

    def _events(self) -> None:
        """Server-Sent Events: `change` whenever the watched objects change (and every TICK_S)."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        version = self.ui.hub.version
        try:
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while not self.server.stopping.is_set():
                version = self.ui.hub.wait(version, TICK_S)
                self.wfile.write(f"event: change\ndata: {version}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, port: int, ui: UI):
        if ":" in address:
            self.address_family = socket.AF_INET6
        super().__init__((address, port), Handler)
        self.ui = ui
        self.stopping = threading.Event()
        host, bound = str(self.server_address[0]), self.server_address[1]
        self.hosts: set[str] | None = None
        if is_loopback(host):
            names = {host, "localhost"}
            self.hosts = {f"[{n}]:{bound}" if ":" in n else f"{n}:{bound}" for n in names}

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        host = "127.0.0.1" if host == "0.0.0.0" else f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.server_address[1]}/"

    def shutdown(self) -> None:
        self.stopping.set()  # open event streams end within TICK_S
        super().shutdown()

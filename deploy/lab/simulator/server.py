"""The simulator process: a ticker thread (read topology -> plan -> engine) and a loopback HTTP
server for /metrics and the control API."""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .engine import Engine, EngineCollector
from .model import AppSpec, FaultProfile, RegionSpec, TrafficNoise
from .routing import RatePlan, plan, present_answerers
from .sources import KubeSource, StaticSource, TopologySource

log = structlog.get_logger(__name__)


@dataclass
class SimulatorConfig:
    regions: list[RegionSpec]
    apps: list[AppSpec] = field(default_factory=list)
    source: str = "kube"  # "kube": read the clusters; "static": a table set over the API
    kubeconfig: str | None = None
    home_context: str = "home"
    static: dict[str, Any] = field(default_factory=dict)
    tick_s: float = 0.1
    poll_s: float = 0.25
    port: int = 0
    ready_file: str | None = None  # written with {"pid", "port"} once the server listens
    seed: int | None = None
    noise: dict[str, Any] | None = None  # TrafficNoise fields; None: exact counts (the default)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulatorConfig:
        data = dict(data)
        data["regions"] = [RegionSpec.from_dict(r) for r in data.get("regions", [])]
        data["apps"] = [AppSpec.from_dict(a) for a in data.get("apps", [])]
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        noise = TrafficNoise.from_dict(config.noise) if config.noise is not None else None
        self.engine = Engine(random.Random(config.seed), noise=noise)
        self._lock = threading.Lock()
        self._apps: dict[str, AppSpec] = {a.name: a for a in config.apps}
        self._faults: dict[tuple[str, str], FaultProfile] = {}
        self._rates: RatePlan = {}
        self._ticks = 0
        self._stop = threading.Event()
        self.source: TopologySource = self._make_source()
        self._ticker = threading.Thread(target=self._run, name="ticker", daemon=True)

    def _make_source(self) -> TopologySource:
        c = self.config
        if c.source == "static":
            return StaticSource(c.static)
        if c.kubeconfig is None:
            raise ValueError("source 'kube' needs a kubeconfig")
        return KubeSource(Path(c.kubeconfig), c.regions, c.home_context, self.apps, c.poll_s)

    # --- state the API changes ------------------------------------------------------------

    def apps(self) -> list[AppSpec]:
        with self._lock:
            return list(self._apps.values())

    def set_apps(self, apps: list[AppSpec]) -> None:
        with self._lock:
            self._apps = {a.name: a for a in apps}

    def faults(self) -> dict[tuple[str, str], FaultProfile]:
        with self._lock:
            return dict(self._faults)

    def set_fault(self, app: str, version: str, profile: FaultProfile) -> None:
        with self._lock:
            self._faults[(app, version)] = profile
        log.info("simulator.fault", app=app, version=version, **profile.to_dict())

    def clear_faults(self, app: str | None = None, version: str | None = None) -> None:
        with self._lock:
            for key in list(self._faults):
                if (app is None or key[0] == app) and (version is None or key[1] == version):
                    del self._faults[key]

    def rates(self) -> RatePlan:
        with self._lock:
            return dict(self._rates)

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        read_at = self.source.snapshot().read_at
        return {
            "ok": True,
            "ticks": self._ticks,
            "source": self.config.source,
            "read_age_s": {k: round(now - t, 3) for k, t in read_at.items()},
        }

    # --- the ticker -----------------------------------------------------------------------

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        self._ticker.join(timeout=5)
        self.source.close()

    def _run(self) -> None:
        last = time.monotonic()
        next_at = last
        while not self._stop.is_set():
            next_at += self.config.tick_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            now = time.monotonic()
            dt, last = min(now - last, 1.0), now  # after a stall, do not burst a backlog
            if next_at < now - 1.0:
                next_at = now
            try:
                self.tick(now, dt)
            except Exception:  # noqa: BLE001 - keep ticking; the log says what broke
                log.exception("simulator.tick_failed")

    def tick(self, now: float, dt: float) -> None:
        topo = self.source.snapshot()
        apps, faults = self.apps(), self.faults()
        rates = plan(apps, self.config.regions, topo.global_weights, topo.views)
        present = {
            (region, app.name, track)
            for region, views in topo.views.items()
            for app in apps
            for track in present_answerers(views.get(app.name), app.name)
        }
        self.engine.step(rates, present, {a.name: a for a in apps}, faults, now, dt)
        with self._lock:
            self._rates = rates
            self._ticks += 1


# --- HTTP -----------------------------------------------------------------------------------

Route = tuple[str, re.Pattern[str], Callable[["Simulator", re.Match[str], Any], Any]]


def _rates_json(sim: Simulator) -> list[dict[str, Any]]:
    return [
        {
            "region": r,
            "app": a,
            "version": ans.track.version,
            "track": ans.track.track,
            "served": ans.served,
            "rps": rps,
        }
        for (r, a, ans), rps in sorted(sim.rates().items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2])))
    ]


def _faults_json(sim: Simulator) -> list[dict[str, Any]]:
    return [{"app": a, "version": v, "profile": p.to_dict()} for (a, v), p in sorted(sim.faults().items())]


def _set_static(sim: Simulator, body: Any) -> dict[str, Any]:
    if not isinstance(sim.source, StaticSource):
        raise ValueError("the simulator reads the clusters; a static table applies only with source 'static'")
    sim.source.set(body)
    return {"ok": True}


OK = {"ok": True}


def _put_apps(sim: Simulator, _m: re.Match[str], body: Any) -> dict[str, Any]:
    sim.set_apps([AppSpec.from_dict(a) for a in body])
    return OK


def _put_fault(sim: Simulator, m: re.Match[str], body: Any) -> dict[str, Any]:
    sim.set_fault(m["app"], m["version"], FaultProfile.from_dict(body))
    return OK


def _noise_json(sim: Simulator) -> dict[str, Any] | None:
    noise = sim.engine.noise
    return noise.to_dict() if noise is not None else None


def _set_noise(sim: Simulator, body: Any) -> dict[str, Any]:
    noise = TrafficNoise.from_dict(body) if body is not None else None
    sim.engine.set_noise(noise)
    log.info("simulator.noise", **(noise.to_dict() if noise is not None else {"off": True}))
    return OK


def _delete_faults(sim: Simulator, m: re.Match[str], _body: Any) -> dict[str, Any]:
    groups = m.groupdict()
    sim.clear_faults(groups.get("app"), groups.get("version"))
    return OK


ROUTES: list[Route] = [
    ("GET", re.compile(r"/healthz"), lambda s, m, b: s.health()),
    ("GET", re.compile(r"/apps"), lambda s, m, b: [a.to_dict() for a in s.apps()]),
    ("PUT", re.compile(r"/apps"), _put_apps),
    ("GET", re.compile(r"/faults"), lambda s, m, b: _faults_json(s)),
    ("DELETE", re.compile(r"/faults"), _delete_faults),
    ("PUT", re.compile(r"/faults/(?P<app>[^/]+)/(?P<version>[^/]+)"), _put_fault),
    ("DELETE", re.compile(r"/faults/(?P<app>[^/]+)/(?P<version>[^/]+)"), _delete_faults),
    ("GET", re.compile(r"/rates"), lambda s, m, b: _rates_json(s)),
    ("PUT", re.compile(r"/static"), lambda s, m, b: _set_static(s, b)),
    ("GET", re.compile(r"/noise"), lambda s, m, b: _noise_json(s)),
    ("PUT", re.compile(r"/noise"), lambda s, m, b: _set_noise(s, b)),
    ("DELETE", re.compile(r"/noise"), lambda s, m, b: _set_noise(s, None)),
]


def make_handler(sim: Simulator, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            else:
                self._dispatch("GET")

        def do_PUT(self) -> None:  # noqa: N802
            self._dispatch("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?")[0]
            for m, pattern, action in ROUTES:
                match = pattern.fullmatch(path)
                if m == method and match:
                    try:
                        length = int(self.headers.get("Content-Length") or 0)
                        body = json.loads(self.rfile.read(length)) if length else None
                        self._json(200, action(sim, match, body))
                    except (ValueError, TypeError, KeyError) as exc:
                        self._json(400, {"error": str(exc)})
                    return
            self._json(404, {"error": f"no route {method} {path}"})

        def _json(self, code: int, payload: Any) -> None:
            self._send(code, json.dumps(payload).encode(), "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet access log
            pass

    return Handler


def serve(config: SimulatorConfig) -> None:
    """Run until SIGTERM/SIGINT (the caller installs the handlers that call `server.shutdown`)."""
    sim = Simulator(config)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(sim.engine))
    server = ThreadingHTTPServer(("127.0.0.1", config.port), make_handler(sim, registry))
    server.daemon_threads = True
    port = server.server_address[1]
    sim.start()
    if config.ready_file:
        tmp = Path(config.ready_file).with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "port": port}))
        os.replace(tmp, config.ready_file)
    log.info("simulator.listening", port=port, source=config.source, regions=[r.name for r in config.regions])
    _install_signal_handlers(server)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        sim.stop()
        server.server_close()
        log.info("simulator.stopped")


def _install_signal_handlers(server: ThreadingHTTPServer) -> None:
    import signal

    def _shutdown(signum: int, _frame: Any) -> None:
        # shutdown() blocks until serve_forever returns, so call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)

"""Start and stop the simulator as its own process (by `procs`: own process group, a pidfile
`<state>/simulator/pids/simulator.json` guarded against pid reuse, readiness with a deadline)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import requests
import structlog

from deploy.lab import procs

from .client import SimulatorClient
from .server import SimulatorConfig

log = structlog.get_logger(__name__)

NAME = "simulator"  # its procs record in <state>/simulator
REPO = Path(__file__).resolve().parents[3]  # the children import deploy.lab from here, whatever the caller's cwd


@dataclass(frozen=True)
class SimulatorProcess:
    pid: int
    port: int
    home: Path  # <state>/simulator

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> SimulatorClient:
        return SimulatorClient(self.url)


def start(config: SimulatorConfig, state_dir: Path, timeout_s: float = 30.0) -> SimulatorProcess:
    home = Path(state_dir).resolve() / "simulator"
    stop_from_state(state_dir)
    home.mkdir(parents=True, exist_ok=True)
    ready = home / "ready.json"
    ready.unlink(missing_ok=True)
    config.ready_file = str(ready)
    if config.kubeconfig:
        config.kubeconfig = str(Path(config.kubeconfig).resolve())
    (home / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    argv = [sys.executable, "-m", "deploy.lab.simulator", "--config", str(home / "config.json")]
    rec = procs.start(NAME, argv, state_dir=home, log_file=home / "simulator.log", cwd=REPO)
    port = 0

    def answers() -> bool:
        nonlocal port
        if not ready.exists():
            return False
        port = int(json.loads(ready.read_text())["port"])
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        procs.wait_ready(rec, answers, timeout_s, f"simulator answering (log: {home / 'simulator.log'})")
    except BaseException:
        procs.stop([rec], home)
        raise
    log.info("simulator.started", pid=rec.pid, port=port)
    return SimulatorProcess(rec.pid, port, home)


def load(state_dir: Path) -> SimulatorProcess | None:
    """The simulator a previous `start` left running in `state_dir`, if it is still there."""
    home = Path(state_dir).resolve() / "simulator"
    rec = procs.running(home, NAME)
    try:
        port = int(json.loads((home / "ready.json").read_text())["port"])
    except (OSError, ValueError, KeyError):
        return None
    return SimulatorProcess(rec.pid, port, home) if rec is not None else None


def load_config(handle: SimulatorProcess) -> SimulatorConfig:
    return SimulatorConfig.from_dict(json.loads((handle.home / "config.json").read_text()))


def stop(handle: SimulatorProcess) -> None:
    procs.stop(procs.records(handle.home), handle.home)
    log.info("simulator.stopped", pid=handle.pid)


def stop_from_state(state_dir: Path) -> None:
    home = Path(state_dir).resolve() / "simulator"
    procs.stop(procs.records(home), home)

"""Start and stop the simulator as its own process (own pid and process group, pidfile)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import structlog

from .client import SimulatorClient
from .server import SimulatorConfig

log = structlog.get_logger(__name__)

PIDFILE = "simulator.pid"


class SimulatorError(RuntimeError):
    """The simulator could not be started."""


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
    home = Path(state_dir) / "simulator"
    stop_from_state(state_dir)
    home.mkdir(parents=True, exist_ok=True)
    ready = home / "ready.json"
    ready.unlink(missing_ok=True)
    config.ready_file = str(ready)
    (home / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    with open(home / "simulator.log", "ab") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.lab.simulator", "--config", str(home / "config.json")],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    (home / PIDFILE).write_text(str(proc.pid))
    try:
        port = _wait_ready(proc, ready, home, timeout_s)
    except BaseException:
        _terminate(proc.pid)
        (home / PIDFILE).unlink(missing_ok=True)
        raise
    log.info("simulator.started", pid=proc.pid, port=port)
    return SimulatorProcess(proc.pid, port, home)


def _wait_ready(proc: subprocess.Popen[bytes], ready: Path, home: Path, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (home / "simulator.log").read_text(errors="replace")[-2000:]
            raise SimulatorError(f"simulator exited with {proc.returncode}: {tail}")
        if ready.exists():
            port = int(json.loads(ready.read_text())["port"])
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                    return port
            except requests.RequestException:
                pass
        time.sleep(0.05)
    raise SimulatorError(f"simulator not ready after {timeout_s}s (log: {home / 'simulator.log'})")


def _is_simulator(pid: int) -> bool:
    try:
        return b"deploy.lab.simulator" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _terminate(pid: int, timeout_s: float = 10.0) -> None:
    if not _is_simulator(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            if not _is_simulator(pid):  # not our child (a later `lab down`): watch /proc instead
                return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def load(state_dir: Path) -> SimulatorProcess | None:
    """The simulator a previous `start` left running in `state_dir`, if it is still there."""
    home = Path(state_dir) / "simulator"
    try:
        pid = int((home / PIDFILE).read_text().strip())
        port = int(json.loads((home / "ready.json").read_text())["port"])
    except (OSError, ValueError, KeyError):
        return None
    return SimulatorProcess(pid, port, home) if _is_simulator(pid) else None


def load_config(handle: SimulatorProcess) -> SimulatorConfig:
    return SimulatorConfig.from_dict(json.loads((handle.home / "config.json").read_text()))


def stop(handle: SimulatorProcess) -> None:
    _terminate(handle.pid)
    (handle.home / PIDFILE).unlink(missing_ok=True)
    log.info("simulator.stopped", pid=handle.pid)


def stop_from_state(state_dir: Path) -> None:
    pidfile = Path(state_dir) / "simulator" / PIDFILE
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    _terminate(pid)
    pidfile.unlink(missing_ok=True)

"""Run `rollout controller` against a lab as a real process (what the demo and e2e tests use)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

CRDS = Path(__file__).resolve().parents[1] / "crds"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_crds(kubeconfig: Path, context: str) -> None:
    """Server-side apply of the controller's CRDs into the home cluster, then wait until served."""
    base = ["kubectl", "--kubeconfig", str(kubeconfig), "--context", context]
    subprocess.run([*base, "apply", "--server-side", "--force-conflicts", "-f", str(CRDS)],
                   check=True, capture_output=True, text=True)
    subprocess.run([*base, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS)],
                   check=True, capture_output=True, text=True)


@dataclass
class ControllerProcess:
    kubeconfig: Path
    home_context: str
    repo_url: str
    state_dir: Path
    prometheus_url: str | None = None
    identity: str = "controller-0"
    poll_seconds: float = 2.0
    http_port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.state_dir / f"{self.identity}.log"

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "rollout.cli", "controller", "--repo", self.repo_url,
                "--kubeconfig", str(self.kubeconfig), "--home-context", self.home_context,
                "--cache-dir", str(self.state_dir / f"cache-{self.identity}"), "--poll-seconds", str(self.poll_seconds),
                "--identity", self.identity, "--http-host", "127.0.0.1", "--http-port", str(self.http_port),
                "--lease-seconds", "6", "--renew-seconds", "4", "--retry-seconds", "1", "--log-format", "json"]
        if self.prometheus_url:
            args += ["--prometheus-url", self.prometheus_url]
        return args + self.extra_args

    def start(self) -> ControllerProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **self.env}, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=15)

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text

    def wait_healthy(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"controller exited; see {self.log_path}")
            try:
                if requests.get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"controller not healthy within {timeout_s}s; see {self.log_path}")

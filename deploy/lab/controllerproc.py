"""Run `rollout controller` against a lab as a real process (what the demo and e2e tests use).

Started and stopped by `procs` (pidfile `<state>/pids/<identity>.json`, guarded against pid
reuse); its output goes to `<state>/<identity>.log`. Every path handed to it is absolute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from deploy.lab import procs
from deploy.lab.procs import free_port

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "deploy" / "crds"


def install_crds(kubeconfig: Path, context: str) -> None:
    """Server-side apply of the controller's CRDs into the home cluster, then wait until served."""
    base = ["kubectl", "--kubeconfig", str(kubeconfig), "--context", context]
    subprocess.run(
        [*base, "apply", "--server-side", "--force-conflicts", "-f", str(CRDS)],
        check=True,
        capture_output=True,
        text=True,
    )
    subprocess.run(
        [*base, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS)],
        check=True,
        capture_output=True,
        text=True,
    )


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
    record: procs.ProcessRecord | None = None

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        self.kubeconfig = Path(self.kubeconfig).resolve()

    @property
    def log_path(self) -> Path:
        return self.state_dir / f"{self.identity}.log"

    @property
    def pid(self) -> int | None:
        return self.record.pid if self.record is not None else None

    def command(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "rollout.cli",
            "controller",
            "--repo",
            self.repo_url,
            "--kubeconfig",
            str(self.kubeconfig),
            "--home-context",
            self.home_context,
            "--cache-dir",
            str(self.state_dir / f"cache-{self.identity}"),
            "--poll-seconds",
            str(self.poll_seconds),
            "--identity",
            self.identity,
            "--http-host",
            "127.0.0.1",
            "--http-port",
            str(self.http_port),
            "--lease-seconds",
            "6",
            "--renew-seconds",
            "4",
            "--retry-seconds",
            "1",
            "--log-format",
            "json",
        ]
        if self.prometheus_url:
            args += ["--prometheus-url", self.prometheus_url]
        if self.repo_url.startswith(("http://", "git://")):
            args.append("--allow-insecure-git")  # the lab's Git server speaks plain http on loopback
        return args + self.extra_args

    def start(self) -> ControllerProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.record = procs.start(
            self.identity,
            self.command(),
            state_dir=self.state_dir,
            port=self.http_port,
            health_url=f"http://127.0.0.1:{self.http_port}/healthz",
            env={**os.environ, **self.env},
            cwd=REPO,
            log_file=self.log_path,
        )
        return self

    def alive(self) -> bool:
        return self.record is not None and procs.alive(self.record)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the controller's process group and wait until it has exited."""
        if self.record is not None:
            procs.send(self.record, sig)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.record is not None:
            procs.stop([self.record], self.state_dir)

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text

    def wait_healthy(self, timeout_s: float = 30) -> None:
        assert self.record is not None, "start() first"
        procs.wait_healthy(self.record, timeout_s)

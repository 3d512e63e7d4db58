"""The lab's Prometheus: Debian's binary on a free loopback port, scraping every second.

Scrape targets live in file_sd files (`<state>/prometheus/targets/<job>.json`); Prometheus watches
that folder, so adding a target (the simulator now, the controller's /metrics later) needs neither
a restart nor a reload. Prometheus reads file_sd paths relative to its config file, so every path
in the config is absolute. The process is started, waited for and stopped by `procs`
(pidfile `<state>/prometheus/pids/prometheus.json`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import requests
import structlog

from deploy.lab import procs
from deploy.lab.procs import free_port

log = structlog.get_logger(__name__)

NAME = "prometheus"  # its procs record in <state>/prometheus


class PrometheusError(RuntimeError):
    """Prometheus could not be started or did not become ready."""


@dataclass(frozen=True)
class PrometheusConfig:
    scrape_interval_s: float = 1.0
    binary: str = "prometheus"
    retention: str = "6h"
    ready_timeout_s: float = 30.0


@dataclass(frozen=True)
class PrometheusHandle:
    url: str
    port: int
    pid: int
    home: Path  # <state>/prometheus
    config: PrometheusConfig = field(default_factory=PrometheusConfig)

    @property
    def targets_dir(self) -> Path:
        return self.home / "targets"


def _duration(seconds: float) -> str:
    return f"{int(round(seconds * 1000))}ms"


def render_config(scrape_interval_s: float, targets_dir: Path) -> str:
    """prometheus.yml: one file_sd job; each targets file sets its own `job` label. The targets
    folder is made absolute: Prometheus would read a relative one from its config file's folder."""
    targets_dir = Path(targets_dir).resolve()
    interval = _duration(scrape_interval_s)
    # The timeout must not exceed the interval; leave a little room.
    timeout = _duration(max(0.2, scrape_interval_s * 0.8))
    cfg = {
        "global": {"scrape_interval": interval, "scrape_timeout": timeout, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "lab",
                "file_sd_configs": [{"files": [str(targets_dir / "*.json")], "refresh_interval": "5s"}],
            }
        ],
    }
    # JSON is valid YAML and avoids a dependency on how pyyaml quotes things.
    return json.dumps(cfg, indent=2)


def write_targets(targets_dir: Path, job: str, targets: list[str], labels: dict[str, str] | None = None) -> Path:
    """Write (atomically) the file_sd file for `job`. An empty list removes the job's targets."""
    targets_dir.mkdir(parents=True, exist_ok=True)
    path = targets_dir / f"{job}.json"
    group = {"targets": targets, "labels": {"job": job, **(labels or {})}}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps([group] if targets else []))
    os.replace(tmp, path)  # rename is atomic, so Prometheus never reads half a file
    return path


def add_targets(handle: PrometheusHandle, job: str, targets: list[str], labels: dict[str, str] | None = None) -> None:
    write_targets(handle.targets_dir, job, targets, labels)
    log.info("prometheus.targets", job=job, targets=targets)


def start(
    state_dir: Path, config: PrometheusConfig | None = None, targets: dict[str, list[str]] | None = None
) -> PrometheusHandle:
    """Start Prometheus in its own process group with storage under `state_dir/prometheus`.

    `targets` ({job: [host:port]}) are written before start: targets added later wait for
    Prometheus' discovery throttle (about 5 s) before the first scrape.
    """
    config = config or PrometheusConfig()
    binary = shutil.which(config.binary)
    if binary is None:
        raise PrometheusError(f"{config.binary!r} not found: install Debian's prometheus (deploy/setup.sh)")
    home = Path(state_dir).resolve() / "prometheus"
    stop_from_state(state_dir)  # a crashed run may have left one behind
    (home / "targets").mkdir(parents=True, exist_ok=True)
    (home / "data").mkdir(parents=True, exist_ok=True)
    for stale in (home / "targets").glob("*.json"):
        stale.unlink()
    for job, addrs in (targets or {}).items():
        write_targets(home / "targets", job, addrs)
    (home / "prometheus.yml").write_text(render_config(config.scrape_interval_s, home / "targets"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        binary,
        f"--config.file={home / 'prometheus.yml'}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--storage.tsdb.retention.time={config.retention}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    rec = procs.start(
        NAME, args, state_dir=home, port=port, health_url=f"{url}/-/ready", log_file=home / "prometheus.log"
    )
    (home / "handle.json").write_text(json.dumps({"port": port, "scrape_interval_s": config.scrape_interval_s}))
    handle = PrometheusHandle(url, port, rec.pid, home, config)
    try:
        procs.wait_healthy(rec, config.ready_timeout_s)
    except BaseException:
        stop(handle)
        raise
    log.info("prometheus.started", url=handle.url, pid=rec.pid)
    return handle


def load(state_dir: Path) -> PrometheusHandle | None:
    """The Prometheus a previous `start` left running in `state_dir`, if it is still there."""
    home = Path(state_dir).resolve() / "prometheus"
    rec = procs.running(home, NAME)
    try:
        meta = json.loads((home / "handle.json").read_text())
    except (OSError, ValueError):
        return None
    if rec is None:
        return None
    port = int(meta["port"])
    config = PrometheusConfig(scrape_interval_s=float(meta["scrape_interval_s"]))
    return PrometheusHandle(f"http://127.0.0.1:{port}", port, rec.pid, home, config)


def stop(handle: PrometheusHandle) -> None:
    procs.stop(procs.records(handle.home), handle.home)
    log.info("prometheus.stopped", pid=handle.pid)


def stop_from_state(state_dir: Path) -> None:
    """Stop a Prometheus recorded in `state_dir` (for `lab down` after a crash)."""
    home = Path(state_dir).resolve() / "prometheus"
    procs.stop(procs.records(home), home)


def query(url: str, promql: str, timeout_s: float = 5.0) -> list[dict[str, object]]:
    """Instant query; returns Prometheus' `data.result` list."""
    r = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=timeout_s)
    r.raise_for_status()
    body = r.json()
    if body.get("status") != "success":
        raise PrometheusError(f"query {promql!r} failed: {body}")
    return list(body["data"]["result"])


def wait_for_target(handle: PrometheusHandle, job: str, timeout_s: float = 30.0) -> None:
    """Wait until Prometheus has scraped `job` successfully (new targets wait for its ~5 s
    discovery throttle)."""

    def problem() -> str | None:
        try:
            up = query(handle.url, f'up{{job="{job}"}}')
        except (requests.RequestException, PrometheusError) as exc:
            return str(exc)
        return None if any(r["value"][1] == "1" for r in up) else f"up{{job={job!r}}} is {up}"  # type: ignore[index]

    procs.wait_until(problem, timeout_s, f"job {job!r} scraped by {handle.url}", error=PrometheusError, max_delay_s=0.2)

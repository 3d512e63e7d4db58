"""Child processes of the lab: own process group, a pidfile each, stopped by exactly that pid.

A pidfile (`<state>/pids/<name>.json`) records the pid, its process group and the kernel's start
time of the process, so a later `down` (or the next fixture start after a crashed run) stops the
processes we started and never a recycled pid that now belongs to someone else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
import structlog

log = structlog.get_logger(__name__)

STOP_DEADLINE_S = 10.0


class ProcessError(RuntimeError):
    """A lab process died or did not become healthy in time."""


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: tells our process from a recycled pid
    argv: tuple[str, ...]
    log_file: str
    port: int | None = None
    health_url: str | None = None

    @property
    def pidfile_name(self) -> str:
        return f"{self.name}.json"


def free_port(taken: set[int] | None = None) -> int:
    """A loopback port nobody listens on now (and not already handed out in `taken`)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if taken is None or port not in taken:
            if taken is not None:
                taken.add(port)
            return port


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after the last ')' are fixed.
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(rec: ProcessRecord) -> bool:
    """Running (not a zombie) and still the very process we started."""
    ticks = _start_ticks(rec.pid)
    if ticks != rec.start_ticks:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{rec.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


def start(
    name: str,
    argv: Sequence[str],
    *,
    state_dir: Path,
    port: int | None = None,
    health_url: str | None = None,
    env: dict[str, str] | None = None,
) -> ProcessRecord:
    """Start `argv` in its own session (so its own process group) and write its pidfile."""
    pids, logs = state_dir / "pids", state_dir / "logs"
    pids.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"{name}.log"
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=state_dir,
        )
    ticks = _start_ticks(proc.pid)
    rec = ProcessRecord(name, proc.pid, ticks or 0, tuple(argv), str(log_file), port, health_url)
    tmp = pids / f".{rec.pidfile_name}.tmp"
    tmp.write_text(json.dumps(asdict(rec)))
    tmp.rename(pids / rec.pidfile_name)
    _CHILDREN[proc.pid] = proc  # keep the Popen so the child is reaped, not left a zombie
    log.debug("lab.process.started", name=name, pid=proc.pid, port=port)
    return rec


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def records(state_dir: Path) -> list[ProcessRecord]:
    out = []
    for f in sorted((state_dir / "pids").glob("*.json")):
        with contextlib.suppress(ValueError, TypeError, OSError):
            data = json.loads(f.read_text())
            data["argv"] = tuple(data["argv"])
            out.append(ProcessRecord(**data))
    return out


def _signal_group(rec: ProcessRecord, sig: signal.Signals) -> None:
    # The child leads its own session, so its pgid is its pid; signal the group to catch helpers.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(rec.pid, sig)


def _reap(pid: int) -> None:
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0)


def stop(recs: Iterable[ProcessRecord], state_dir: Path, deadline_s: float = STOP_DEADLINE_S) -> list[str]:
    """SIGTERM every live record's group, SIGKILL what is left at the deadline; drop pidfiles.

    Returns the names that needed SIGKILL.
    """
    recs = list(recs)
    live = [r for r in recs if alive(r)]
    for r in live:
        _signal_group(r, signal.SIGTERM)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for r in live:
            _reap(r.pid)
        live = [r for r in live if alive(r)]
        if not live:
            break
        time.sleep(0.05)
    killed = [r.name for r in live]
    for r in live:
        _signal_group(r, signal.SIGKILL)
    for r in live:
        _wait_gone(r, 5.0)
    for r in recs:
        (state_dir / "pids" / r.pidfile_name).unlink(missing_ok=True)
    if killed:
        log.warning("lab.process.killed", names=killed)
    return killed


def _wait_gone(rec: ProcessRecord, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        _reap(rec.pid)
        if not alive(rec):
            return
        time.sleep(0.05)


def log_tail(rec: ProcessRecord, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(Path(rec.log_file).read_text(errors="replace").splitlines()[-lines:])
    return ""


def healthy(
    rec: ProcessRecord, *, ca: str | bool = False, cert: tuple[str, str] | None = None, timeout_s: float = 2.0
) -> bool:
    if rec.health_url is None:
        return alive(rec)
    try:
        resp = requests.get(rec.health_url, verify=ca, cert=cert, timeout=timeout_s)
    except requests.RequestException:
        return False
    return resp.status_code == 200


def wait_healthy(
    rec: ProcessRecord, deadline_s: float, *, ca: str | bool = False, cert: tuple[str, str] | None = None
) -> None:
    """Poll the health URL until it answers 200; fail fast if the process dies."""
    end = time.monotonic() + deadline_s
    delay = 0.05
    while True:
        if not alive(rec):
            raise ProcessError(f"{rec.name} exited during start-up; log tail:\n{log_tail(rec)}")
        if healthy(rec, ca=ca, cert=cert):
            return
        if time.monotonic() > end:
            raise ProcessError(
                f"{rec.name} not healthy at {rec.health_url} after {deadline_s:.0f}s; log tail:\n{log_tail(rec)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def rss_bytes(rec: ProcessRecord) -> int:
    """Resident memory of the process (0 when gone)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{rec.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

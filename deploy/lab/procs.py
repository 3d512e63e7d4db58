"""Child processes of the lab, in one place: start, readiness wait, stop, free ports, polling.

Every lab process (control planes, etcd, kwok, Prometheus, the simulator, the Git server, the
controller) is started by `start`: its own session (so its own process group), a pidfile each,
stopped by exactly that pid. A pidfile (`<state>/pids/<name>.json`) records the pid and the
kernel's start time of the process, so a later `down` (or the next fixture start after a crashed
run) stops the processes we started and never a recycled pid that now belongs to someone else.

Paths: the state folder is made absolute here; callers hand children only absolute paths (a child
runs in the state folder, so a relative one would mean something else there).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
import structlog

log = structlog.get_logger(__name__)

STOP_DEADLINE_S = 10.0


class ProcessError(RuntimeError):
    """A lab process died or did not become healthy in time, or a waited-for condition did not hold."""


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
    cwd: Path | None = None,
    log_file: Path | None = None,
) -> ProcessRecord:
    """Start `argv` in its own session (so its own process group) and write its pidfile.

    Output goes to `log_file` (default `<state>/logs/<name>.log`); the child runs in `cwd`
    (default the state folder). `env` None = this process' environment.
    """
    state_dir = Path(state_dir).resolve()
    pids = state_dir / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_file).resolve() if log_file is not None else state_dir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=Path(cwd).resolve() if cwd is not None else state_dir,
        )
    ticks = _start_ticks(proc.pid)
    rec = ProcessRecord(name, proc.pid, ticks or 0, tuple(argv), str(log_path), port, health_url)
    tmp = pids / f".{rec.pidfile_name}.tmp"
    tmp.write_text(json.dumps(asdict(rec)))
    tmp.rename(pids / rec.pidfile_name)
    _CHILDREN[proc.pid] = proc  # keep the Popen so the child is reaped, not left a zombie
    log.debug("lab.process.started", name=name, pid=proc.pid, port=port)
    return rec


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def records(state_dir: Path) -> list[ProcessRecord]:
    """Every process recorded in `<state>/pids` (alive or not)."""
    out = []
    for f in sorted((state_dir / "pids").glob("*.json")):
        with contextlib.suppress(ValueError, TypeError, OSError):
            data = json.loads(f.read_text())
            data["argv"] = tuple(data["argv"])
            out.append(ProcessRecord(**data))
    return out


def running(state_dir: Path, name: str) -> ProcessRecord | None:
    """The process `name` recorded in `state_dir`, if it is still the very process we started."""
    return next((r for r in records(state_dir) if r.name == name and alive(r)), None)


def _signal_group(rec: ProcessRecord, sig: int) -> None:
    # The child leads its own session, so its pgid is its pid; signal the group to catch helpers.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(rec.pid, sig)


def _reap(pid: int) -> None:
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:  # poll() reaps an exited child
        del _CHILDREN[pid]


def stop(recs: Iterable[ProcessRecord], state_dir: Path, deadline_s: float = STOP_DEADLINE_S) -> list[str]:
    """SIGTERM every live record's group, SIGKILL what is left at the deadline; drop pidfiles.

    Returns the names that needed SIGKILL.
    """
    recs = list(recs)
    live = [r for r in recs if alive(r)]
    for r in live:
        _signal_group(r, signal.SIGTERM)
    with contextlib.suppress(ProcessError):
        wait_until(lambda: _still_running(live), deadline_s, "processes to exit on SIGTERM", max_delay_s=0.05)
    live = [r for r in live if alive(r)]
    killed = [r.name for r in live]
    for r in live:
        _signal_group(r, signal.SIGKILL)
    with contextlib.suppress(ProcessError):
        wait_until(lambda: _still_running(live), 5.0, "processes to die on SIGKILL", max_delay_s=0.05)
    for r in recs:
        (Path(state_dir) / "pids" / r.pidfile_name).unlink(missing_ok=True)
    if killed:
        log.warning("lab.process.killed", names=killed)
    return killed


def send(rec: ProcessRecord, sig: int, wait_s: float = 15.0) -> None:
    """Send `sig` to the process group (if it is still ours) and wait until the process is gone."""
    if alive(rec):
        _signal_group(rec, sig)
        what = f"{rec.name} (pid {rec.pid}) to exit on signal {sig}"
        wait_until(lambda: _still_running([rec]), wait_s, what, max_delay_s=0.05)


def _still_running(recs: Sequence[ProcessRecord]) -> str | None:
    for r in recs:
        _reap(r.pid)
    names = [r.name for r in recs if alive(r)]
    return f"still running: {', '.join(names)}" if names else None


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
    wait_ready(rec, lambda: healthy(rec, ca=ca, cert=cert), deadline_s, f"{rec.name} healthy at {rec.health_url}")


def wait_ready(rec: ProcessRecord, ready: Callable[[], bool], deadline_s: float, what: str | None = None) -> None:
    """Poll `ready()` until it holds; fail at once (with the log tail) if the process exits first."""

    def problem() -> str | None:
        if not alive(rec):
            raise ProcessError(f"{rec.name} exited during start-up; log tail:\n{log_tail(rec)}")
        return None if ready() else "not yet"

    tail = lambda: f"log tail:\n{log_tail(rec)}"  # noqa: E731
    wait_until(problem, deadline_s, what or f"{rec.name} ready", max_delay_s=0.25, hint=tail)


def wait_until(
    problem: Callable[[], str | None],
    timeout_s: float,
    what: str,
    *,
    error: type[Exception] = ProcessError,
    max_delay_s: float = 1.0,
    hint: Callable[[], str] | None = None,
) -> None:
    """Poll `problem()` (None = done, else what is still wrong) with backoff until the deadline.

    The error names `what`, the deadline and the last problem (and `hint()`, e.g. a log tail).
    """
    end = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        last = problem()
        if last is None:
            return
        if time.monotonic() > end:
            extra = f"; {hint()}" if hint is not None else ""
            raise error(f"{what}: not done after {timeout_s:g}s: {last}{extra}")
        time.sleep(delay)
        delay = min(delay * 1.5, max_delay_s)


def rss_bytes(rec: ProcessRecord) -> int:
    """Resident memory of the process (0 when gone)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{rec.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

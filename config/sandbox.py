"""Limits on everything a repository author controls: renders run in a child process, YAML is capped.

Anyone who can push to the tracked branch writes the templates, values and conditions the
controller evaluates, so no such input may take the controller's CPU, memory or time.

**Renders** run in a child process with a wall-clock timeout (an interval timer whose SIGALRM
kills the child), a CPU limit (RLIMIT_CPU), an address-space limit (RLIMIT_AS) and a cap on the
rendered output. A limit hit is reported to the caller as `LimitExceeded` (the caller turns it
into a validation issue); the parent never runs the template itself.

How the child is made (measured on the lab machine, 2 cores):
- `subprocess` running a fresh interpreter per render costs the interpreter start plus importing
  jinja2, PyYAML and pydantic: about 1 s per render, and validation renders every app in every
  region. Too slow.
- `multiprocessing` "spawn" costs the same; "forkserver" is close to what we want, but every
  child re-runs the parent's `__main__` script (for the controller: the CLI and the Kubernetes
  client), and its process-global preload setting is shared with any other user of
  multiprocessing.
- plain `fork()` of the controller is fast but unsafe: the controller is multi-threaded (watches,
  scheduler, HTTP), and a child forked while another thread holds a lock (logging, the Kubernetes
  client's pool) can deadlock.
- chosen: **our own fork server**. One long-lived, single-threaded helper process
  (`python -c ... config.sandbox`) imports the rendering code once; for each render the parent
  hands it one end of a fresh socket pair (SCM_RIGHTS), the server forks a worker (a fork of a
  small single-threaded process: about 2-4 ms), the worker applies its limits, renders and
  writes the answer on that socket. The server never waits for a worker, so renders run
  concurrently (a bomb on the sync thread does not queue the reconciler's renders behind it),
  and when it reaps a worker it appends the exit status to the same socket, so the parent
  learns which limit killed it. The server exits when the parent's end of its control socket
  closes (the parent exited).

The answer is decoded with a restricted unpickler (plain data and `Issue` only): a worker that
somehow escaped the template sandbox still cannot make the parent run code.

**YAML** (repository files and rendered manifests) is checked on the event stream before it is
built: a file over `MAX_FILE_BYTES`, nesting deeper than `MAX_YAML_DEPTH`, more than
`MAX_YAML_ALIASES` aliases, aliases expanding to more than `MAX_ALIAS_EXPANSION` nodes (the
"billion laughs" bomb) or an alias inside its own anchor (a cycle) is refused with a message.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import os
import pickle
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from config import limits as render_limits
from config.limits import Limits as Limits
from config.limits import MiB as MiB
from config.limits import mib

MAX_FILE_BYTES = 1 * MiB  # one repository file: a YAML file or a template
MAX_YAML_DEPTH = 64  # nesting of mappings and sequences
MAX_YAML_ALIASES = 100  # aliases (*name) per document stream
MAX_ALIAS_EXPANSION = 10_000  # nodes that aliases add when expanded

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --- limits ---------------------------------------------------------------------------------------
# The type, the defaults and ROLLOUT_RENDER_LIMITS live in config/limits.py (shared with the
# external tools); these are the Jinja renderer's.


def current_limits() -> Limits:
    return render_limits.current("jinja")


def set_limits(limits: Limits) -> Limits:
    """Replace the process-wide Jinja render limits; returns the previous ones."""
    return render_limits.set_limits("jinja", limits)


@contextlib.contextmanager
def limits(**changes: Any) -> Iterator[Limits]:
    """Temporarily change some limits (tests use small ones)."""
    with render_limits.changed("jinja", **changes) as new:
        yield new


class LimitExceeded(Exception):
    """The child hit a limit; `where` is the file it was working on, when known."""

    def __init__(self, limit: str, limits: Limits, detail: str = "", where: str = ""):
        self.limit = limit
        self.where = where
        self.detail = detail
        text = f"render exceeded {limits.describe(limit)}"
        super().__init__(f"{text}: {detail}" if detail else text)


class ChildFailed(Exception):
    """The rendering code raised in the child (a bug or an input it did not expect)."""

    def __init__(self, message: str, where: str = ""):
        self.where = where
        super().__init__(message)


class SandboxUnavailable(RuntimeError):
    """The helper process could not be started or reached: temporary, retry later."""


# --- YAML caps ------------------------------------------------------------------------------------


class YamlRefused(yaml.YAMLError):
    """A YAML text over one of the caps; `line` is 1-based (0: unknown)."""

    def __init__(self, problem: str, line: int = 0):
        self.problem = problem
        self.line = line
        super().__init__(problem)


def check_yaml(text: str, max_bytes: int = MAX_FILE_BYTES) -> None:
    """Refuse YAML that is too deep or whose aliases expand too far, before building anything.

    Walks the parser's events (no recursion, nothing built): the size of every anchored node is
    known when it ends, so each alias adds that many nodes to the expansion count."""
    if len(text) > max_bytes:
        raise YamlRefused(f"is {mib(len(text))}; YAML is limited to {mib(max_bytes)}")
    open_nodes: list[list[Any]] = []  # [anchor, expanded size]
    anchors: dict[str, int] = {}
    aliases = expanded = 0
    for event in yaml.parse(text, Loader=_LOADER):
        line = event.start_mark.line + 1 if event.start_mark else 0
        size = 0
        anchor = None
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                raise YamlRefused(f"has more than {MAX_YAML_ALIASES} aliases", line)
            if any(node[0] == event.anchor for node in open_nodes):
                raise YamlRefused(f"alias *{event.anchor} refers to a node that contains it (a cycle)", line)
            size = anchors.get(str(event.anchor), 1)
            expanded += size
            if expanded > MAX_ALIAS_EXPANSION:
                raise YamlRefused(f"aliases expand to more than {MAX_ALIAS_EXPANSION} nodes (an alias bomb)", line)
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            open_nodes.append([event.anchor, 1])
            if len(open_nodes) > MAX_YAML_DEPTH:
                raise YamlRefused(f"nests deeper than {MAX_YAML_DEPTH} levels", line)
            continue
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            anchor, size = open_nodes.pop()
        else:
            continue
        if anchor:
            anchors[anchor] = size
        if open_nodes:
            open_nodes[-1][1] += size


def load_yaml(text: str) -> Any:
    """yaml.safe_load under the caps (raises yaml.YAMLError, YamlRefused included)."""
    check_yaml(text)
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader


def load_yaml_all(text: str, max_bytes: int = MAX_FILE_BYTES) -> list[Any]:
    """yaml.safe_load_all under the caps, as a list."""
    check_yaml(text, max_bytes)
    return list(yaml.load_all(text, Loader=_LOADER))  # noqa: S506 - a safe loader


# --- the parent side ------------------------------------------------------------------------------

_HEADER = struct.Struct("!cI")
_FRAME_PID, _FRAME_FILE, _FRAME_RESULT, _FRAME_ERROR, _FRAME_MEMORY, _FRAME_EXIT = (bytes([c]) for c in b"PFRKMX")
_SAFE_CLASSES = {
    ("builtins", name)
    for name in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "int", "float", "bool", "complex")
}
_SAFE_CLASSES |= {
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "timezone"),
    ("datetime", "timedelta"),
    ("config.errors", "Issue"),
}
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_CLASSES:
            raise pickle.UnpicklingError(f"the sandbox answered with a {module}.{name}")
        return super().find_class(module, name)


class _ForkServer:
    """The parent's handle on the helper process; one per parent process, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._owner = 0

    def channel(self) -> socket.socket:
        """A socket connected to a freshly forked worker."""
        ours, theirs = socket.socketpair()
        try:
            with self._lock:
                for attempt in (1, 2):
                    try:
                        control = self._running()
                        socket.send_fds(control, [b"r"], [theirs.fileno()])
                        break
                    except OSError as exc:
                        self._stop()
                        if attempt == 2:
                            raise SandboxUnavailable(f"render helper unavailable: {exc}") from exc
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return ours

    def _running(self) -> socket.socket:
        if (
            self._proc is not None
            and self._control is not None
            and self._owner == os.getpid()
            and self._proc.poll() is None
        ):
            return self._control
        self._stop()
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = "import sys; sys.path.insert(0, sys.argv[1]); from config.sandbox import serve; serve(int(sys.argv[2]))"
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and code
                [sys.executable, "-c", code, _PACKAGE_ROOT, str(child_end.fileno())],
                pass_fds=[child_end.fileno()],
                stdin=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,
            )
        finally:
            child_end.close()
        self._control, self._owner = parent_end, os.getpid()
        return parent_end

    def _stop(self) -> None:
        if self._control is not None:
            self._control.close()  # the server sees EOF and exits
        if self._proc is not None and self._owner == os.getpid():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        self._proc, self._control = None, None

    def close(self) -> None:
        with self._lock:
            self._stop()


_server = _ForkServer()
_slots = threading.BoundedSemaphore(4)  # renders in flight at once, across all threads


def call(target: str, args: tuple[Any, ...], limits: Limits | None = None, answers: int = 1) -> Any:
    """Run `module:function(progress, *args)` in a limited child and return its (plain-data) result.

    `answers`: how many renders the result holds (each may be up to the output limit). Raises
    LimitExceeded, ChildFailed (the function raised) or SandboxUnavailable."""
    limits = limits or current_limits()
    request = pickle.dumps((target, args, limits), protocol=pickle.HIGHEST_PROTOCOL)
    with _slots:
        conn = _server.channel()
        with conn:
            _send_frame(conn, b"Q", request)
            return _await_answer(conn, limits, answers)


def _await_answer(conn: socket.socket, limits: Limits, answers: int) -> Any:
    deadline = time.monotonic() + limits.wall_seconds + 5  # the child's own timer fires first
    reader = _FrameReader(conn, max_frame=limits.output_bytes * 4 * max(1, answers) + MiB)
    pid, where = 0, ""
    while True:
        try:
            kind, payload = reader.next(deadline)
        except TimeoutError:
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)  # a backstop: the child's timer should have fired
            raise LimitExceeded("wall", limits, where=where) from None
        except _TooLarge:
            raise LimitExceeded("output", limits, "the answer was too large", where) from None
        except EOFError:
            raise SandboxUnavailable("the render helper stopped before answering") from None
        if kind == _FRAME_PID:
            pid = int(payload)
        elif kind == _FRAME_FILE:
            where = payload.decode("utf-8", "replace")
        elif kind == _FRAME_RESULT:
            try:
                return _SafeUnpickler(io.BytesIO(payload)).load()
            except Exception as exc:  # noqa: BLE001 - whatever the child sent, it is not an answer
                raise ChildFailed(f"the answer could not be read: {exc}", where) from None
        elif kind == _FRAME_MEMORY:
            raise LimitExceeded("memory", limits, payload.decode("utf-8", "replace"), where)
        elif kind == _FRAME_ERROR:
            raise ChildFailed(payload.decode("utf-8", "replace"), where)
        elif kind == _FRAME_EXIT:
            raise _exit_reason(int(payload), limits, where)


def _exit_reason(status: int, limits: Limits, where: str) -> Exception:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGALRM:
            return LimitExceeded("wall", limits, where=where)
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            return LimitExceeded("cpu", limits, where=where)
        return LimitExceeded("memory", limits, f"the render was killed by {signal.Signals(sig).name}", where)
    return ChildFailed(f"the render process exited with status {os.waitstatus_to_exitcode(status)}", where)


class _TooLarge(Exception):
    pass


class _FrameReader:
    def __init__(self, conn: socket.socket, max_frame: int):
        self.conn = conn
        self.max_frame = max_frame
        self.buffer = bytearray()

    def next(self, deadline: float) -> tuple[bytes, bytes]:
        header = self._read(_HEADER.size, deadline)
        kind, length = _HEADER.unpack(header)
        if length > self.max_frame:
            raise _TooLarge
        return kind, self._read(length, deadline)

    def _read(self, size: int, deadline: float) -> bytes:
        while len(self.buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.conn.settimeout(remaining)
            try:
                chunk = self.conn.recv(max(65536, size - len(self.buffer)))
            except TimeoutError:
                raise
            except OSError:
                chunk = b""
            if not chunk:
                raise EOFError
            self.buffer += chunk
        out = bytes(self.buffer[:size])
        del self.buffer[:size]
        return out


def _send_frame(conn: socket.socket, kind: bytes, payload: bytes) -> None:
    conn.sendall(_HEADER.pack(kind, len(payload)) + payload)


# --- the helper process and its workers -----------------------------------------------------------


def serve(control_fd: int) -> None:  # pragma: no cover - runs in the helper process
    """The fork server's loop: one forked worker per socket received, reaped as they end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = socket.socket(fileno=control_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _warm_up()  # workers start with everything imported and Jinja's lexer built
    gc.collect()
    gc.freeze()  # workers' collections do not touch (and copy) the preloaded objects
    workers: dict[int, socket.socket] = {}
    while True:
        ready, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
        if control.fileno() in ready:
            try:
                message, fds, _, _ = socket.recv_fds(control, 16, 4)
            except OSError:
                message, fds = b"", []
            if not message:
                break  # the parent is gone
            for fd in fds:
                conn = socket.socket(fileno=fd)
                try:
                    pid = os.fork()
                except OSError:  # no process to spare: this render's caller sees EOF (temporary), we go on
                    conn.close()
                    continue
                if pid == 0:
                    _worker(conn)
                conn.setblocking(False)
                workers[pid] = conn
        _reap(workers)
    os._exit(0)


def _warm_up() -> None:  # pragma: no cover - runs in the helper process
    """Import and build once what every worker needs (a failure here only costs speed)."""
    importlib.import_module("config.render")
    templating = importlib.import_module("config.templating")
    with contextlib.suppress(Exception):
        text = (
            templating.environment()
            .from_string("{% for i in range(2) %}k{{ i }}: {{ x | to_yaml }}\n{% endfor %}")
            .render(x={"a": [1]})
        )
        load_yaml_all(text + "---\nb: &a [1]\nc: *a\n")
        pickle.loads(pickle.dumps([{"a": 1}]))


def _reap(workers: dict[int, socket.socket]) -> None:  # pragma: no cover - runs in the helper process
    while workers:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = workers.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                _send_frame(conn, _FRAME_EXIT, str(status).encode())
            conn.close()


def _close_all_but(keep: int) -> None:  # pragma: no cover - runs in a worker
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 65536)))
    for fd in fds:
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _worker(conn: socket.socket) -> None:  # pragma: no cover - runs in a worker
    code = 0
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _close_all_but(conn.fileno())  # not the control socket, not other renders' sockets
        _send_frame(conn, _FRAME_PID, str(os.getpid()).encode())
        header = _FrameReader(conn, 64 * MiB)
        _, request = header.next(time.monotonic() + 30)
        target, args, limits = pickle.loads(request)  # noqa: S301 - the parent wrote it
        module, _, name = target.partition(":")
        function: Callable[..., Any] = getattr(importlib.import_module(module), name)  # our code: before limits
        signal.setitimer(signal.ITIMER_REAL, limits.wall_seconds)  # SIGALRM's default action ends us
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))

        def progress(where: str) -> None:
            _send_frame(conn, _FRAME_FILE, where.encode())

        result = function(progress, *args)
        _send_frame(conn, _FRAME_RESULT, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    except MemoryError as exc:
        with contextlib.suppress(BaseException):
            _send_frame(conn, _FRAME_MEMORY, f"MemoryError {exc}".strip().encode())
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        with contextlib.suppress(BaseException):
            _send_frame(conn, _FRAME_ERROR, f"{type(exc).__name__}: {exc}"[:2000].encode())
        code = 1
    finally:
        os._exit(code)

"""The pinned renderers (helm, kustomize): where they are, which version they are, how they run.

The binaries are built from the pinned Go modules in deploy/tools/ by `deploy/tools/build.sh`
(run by `deploy/setup.sh`; deploy/Containerfile runs it too) into
`${ROLLOUT_TOOLS_CACHE:-~/.cache/regional-rollout/tools}/<tool>-<version>/<tool>`.
`ROLLOUT_HELM` / `ROLLOUT_KUSTOMIZE` point at other binaries (full paths); whatever the path, the
binary must report the pinned version.

**Running one** (`run`): a child process in its own session whose environment holds nothing of
ours (an empty HOME and XDG/HELM_* folders in a fresh temporary folder, no kubeconfig, PATH empty
so no git or plugin can be started, every proxy variable pointing at a closed port so an HTTP
request fails at once), started through a small trampoline that sets RLIMIT_AS (memory),
RLIMIT_CPU, RLIMIT_FSIZE and no core dumps before exec. The parent enforces the wall-clock limit
(SIGKILL to the whole process group) and the output limit (it stops reading and kills the group
when the output grows past it). A limit hit raises `ToolLimitExceeded`, a non-zero exit
`ToolFailed` with the tool's message; both become validation issues, never a partial render.
This is the external-tool counterpart of config/sandbox.py (which runs the Jinja renders).
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from config import limits as render_limits
from config.limits import Limits

# The pins. deploy/tools/<tool>/go.mod requires the same versions (tests/unit/config/test_sources_tools.py).
HELM_VERSION = "v3.22.0"
KUSTOMIZE_VERSION = "v5.8.2"
VERSIONS = {"helm": HELM_VERSION, "kustomize": KUSTOMIZE_VERSION}
ENVIRONMENT = {"helm": "ROLLOUT_HELM", "kustomize": "ROLLOUT_KUSTOMIZE"}


class ToolUnavailable(RuntimeError):
    """The binary is missing or is not the pinned version: the installation's fault, not the repository's."""


class ToolFailed(Exception):
    """The tool exited non-zero; `message` is its error output (tidied)."""

    def __init__(self, tool: str, message: str):
        self.tool = tool
        self.message = message
        super().__init__(f"{tool}: {message}")


class ToolLimitExceeded(Exception):
    def __init__(self, tool: str, limit: str, limits: Limits):
        self.tool = tool
        self.limit = limit
        super().__init__(f"{tool} exceeded {limits.describe(limit)}")


# The type, the defaults and ROLLOUT_RENDER_LIMITS live in config/limits.py (shared with the Jinja
# sandbox); these are the external tools'.


def current_limits() -> Limits:
    return render_limits.current("tools")


def set_limits(new: Limits) -> Limits:
    """Replace the process-wide tool limits; returns the previous ones."""
    return render_limits.set_limits("tools", new)


@contextlib.contextmanager
def limits(**changes: Any) -> Iterator[Limits]:
    """Temporarily change some limits (tests use small ones)."""
    with render_limits.changed("tools", **changes) as new:
        yield new


# --- finding the binaries -------------------------------------------------------------------------


def cache_root() -> Path:
    env = os.environ.get("ROLLOUT_TOOLS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "regional-rollout" / "tools"


def default_path(tool: str) -> Path:
    return cache_root() / f"{tool}-{VERSIONS[tool]}" / tool


def path_of(tool: str) -> Path:
    """The binary the controller runs: $ROLLOUT_HELM / $ROLLOUT_KUSTOMIZE, else the build cache."""
    env = os.environ.get(ENVIRONMENT[tool])
    return Path(env).expanduser().resolve() if env else default_path(tool)


_checked: dict[tuple[str, Path], str] = {}


def reported_version(tool: str) -> str:
    """The version the configured binary reports (cached per path); raises ToolUnavailable."""
    path = path_of(tool)
    key = (tool, path)
    if key in _checked:
        return _checked[key]
    if not path.is_file():
        raise ToolUnavailable(
            f"{tool} {VERSIONS[tool]} is not installed at {path}; run deploy/tools/build.sh "
            f"(deploy/setup.sh does) or set {ENVIRONMENT[tool]} to its path"
        )
    args = ["version", "--short"] if tool == "helm" else ["version"]
    try:
        out = subprocess.run(
            [str(path), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,  # noqa: S603
            env=_clean_environment(Path(tempfile.gettempdir())),
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolUnavailable(f"{path} cannot be run ({exc})") from exc
    text = (out.stdout + out.stderr).strip()
    found = re.search(r"v\d+\.\d+\.\d+", text)
    version = found.group(0) if found else text[:80]
    if version != VERSIONS[tool]:
        raise ToolUnavailable(
            f"{path} reports {tool} {version!r}, not the pinned {VERSIONS[tool]}; "
            "run deploy/tools/build.sh or point " + ENVIRONMENT[tool] + " at the pinned build"
        )
    _checked[key] = version
    return version


def versions() -> dict[str, str]:
    """{tool: version or 'unavailable (why)'} for `rollout version`."""
    out: dict[str, str] = {}
    for tool in VERSIONS:
        try:
            out[tool] = f"{reported_version(tool)} ({path_of(tool)})"
        except ToolUnavailable as exc:
            out[tool] = f"unavailable: {exc}"
    return out


# --- running one ----------------------------------------------------------------------------------

# Runs in the child before exec: limits first, then the tool replaces this interpreter.
_TRAMPOLINE = (
    "import os, resource, sys\n"
    "mem, cpu, fsize = (int(v) for v in sys.argv[1:4])\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "resource.setrlimit(resource.RLIMIT_AS, (mem, mem))\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))\n"
    "os.execv(sys.argv[4], sys.argv[4:])\n"
)
_CLOSED_PORT = "http://127.0.0.1:9"  # discard port, nothing listens: any HTTP request fails at once
_STDERR_CAP = 64 * 1024


def _clean_environment(home: Path) -> dict[str, str]:
    """Nothing from the controller's environment: no kubeconfig, credentials, proxies or PATH."""
    env = {
        "HOME": str(home),
        "PATH": str(home / "no-path"),
        "LANG": "C",
        "TZ": "UTC",
        "KUBECONFIG": str(home / "no-kubeconfig"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "HELM_CONFIG_HOME": str(home / "helm-config"),
        "HELM_CACHE_HOME": str(home / "helm-cache"),
        "HELM_DATA_HOME": str(home / "helm-data"),
        "HELM_PLUGINS": str(home / "no-plugins"),
        "HELM_REGISTRY_CONFIG": str(home / "no-registry.json"),
        "HELM_REPOSITORY_CONFIG": str(home / "no-repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(home / "no-repository-cache"),
        "GOMAXPROCS": "2",
    }
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[name] = _CLOSED_PORT
    env["NO_PROXY"] = env["no_proxy"] = ""
    return env


def run(tool: str, args: list[str], cwd: Path, home: Path) -> bytes:
    """Run the pinned `tool` with `args` in `cwd` under the current limits; returns its stdout.

    Raises ToolUnavailable, ToolFailed (non-zero exit) or ToolLimitExceeded."""
    reported_version(tool)
    bounds = current_limits()
    argv = [
        sys.executable,
        "-S",
        "-E",
        "-c",
        _TRAMPOLINE,
        str(bounds.memory_bytes),
        str(bounds.cpu_seconds),
        str(bounds.file_bytes),
        str(path_of(tool)),
        *args,
    ]
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=_clean_environment(home),
        stdin=subprocess.DEVNULL,  # noqa: S603
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr, over = _collect(proc, bounds)
    finally:
        _kill_group(proc)
    status = proc.wait()
    if over:
        raise ToolLimitExceeded(tool, over, bounds)
    if status < 0:
        sig = -status
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            raise ToolLimitExceeded(tool, "cpu", bounds)
        raise (
            ToolLimitExceeded(tool, "memory", bounds)
            if sig in (signal.SIGSEGV, signal.SIGABRT)
            else ToolFailed(tool, f"killed by {signal.Signals(sig).name}")
        )
    message = stderr.decode("utf-8", "replace")
    if status != 0:
        if _out_of_memory(message):
            raise ToolLimitExceeded(tool, "memory", bounds)
        raise ToolFailed(tool, message.strip() or f"exited with status {status}")
    return stdout


def _collect(proc: subprocess.Popen[bytes], bounds: Limits) -> tuple[bytes, bytes, str]:
    """Read stdout and stderr until both close; stop early at the wall or output limit."""
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + bounds.wall_seconds
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(out), bytes(err), "wall"
            for key, _ in selector.select(timeout=min(remaining, 1.0)):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                if buffer is err:
                    buffer += chunk[: max(0, _STDERR_CAP - len(buffer))]
                else:
                    buffer += chunk
                    if len(buffer) > bounds.output_bytes:
                        return bytes(out), bytes(err), "output"
    return bytes(out), bytes(err), ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the tool and anything it started; a no-op once all exited
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _out_of_memory(message: str) -> bool:
    return any(
        s in message
        for s in ("out of memory", "cannot allocate memory", "failed to reserve page summary", "runtime: mmap")
    )

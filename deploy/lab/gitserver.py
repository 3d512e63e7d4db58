"""The lab's Git server: a bare repository served over smart HTTP on loopback.

`git http-backend` (Git's own CGI) does the protocol work behind a tiny threaded http.server, so
clones, fetches and pushes are the real thing, and an optional token exercises HTTP auth the way
a hosted forge does. The server is a lab process (`procs`: own process group, pidfile guarded
against pid reuse) that publishes its port in `state.json`; `GitServer` in the parent starts it,
waits for readiness with a deadline and stops it cleanly.

Helpers for tests and the demo commit through a working clone and push over HTTP:
`commit_files`, `bump_app_version`, `force_push`, `tag`.

By hand: `python -m deploy.lab.gitserver up|down|status --state-dir DIR [--port N]` (token: set
LAB_GIT_TOKEN). `up` seeds the repository on first use and prints its URL.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
import yaml

from deploy.lab import procs
from rollout.gitsync.pure import Credentials, Secret, git_env, redact_text

log = structlog.get_logger(__name__)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_REPO = REPO / "config" / "examples" / "shop"
PROCESS_NAME = "gitserver"  # its procs record in the state folder
TOKEN_ENV = "LAB_GIT_TOKEN"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "lab",
    "GIT_AUTHOR_EMAIL": "lab@localhost",
    "GIT_COMMITTER_NAME": "lab",
    "GIT_COMMITTER_EMAIL": "lab@localhost",
}


class GitServerError(RuntimeError):
    pass


# --- the server process --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    project_root: Path
    token: str | None


class _GitHandler(BaseHTTPRequestHandler):
    """Hands every request to `git http-backend` (CGI), after an optional token check."""

    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        if not self._authorized():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="lab git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self._read_body()
        proc = subprocess.run(
            ["git", "http-backend"],
            input=body,
            env=self._cgi_env(len(body)),
            capture_output=True,
            timeout=120,
        )
        if proc.stderr:
            self.log_message("http-backend: %s", proc.stderr.decode(errors="replace").strip())
        self._send_cgi_output(proc.stdout)

    def _authorized(self) -> bool:
        token = self.server.token
        if not token:
            return True
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip(), token)
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError):
                password = base64.b64decode(value.strip()).decode().partition(":")[2]
                return hmac.compare_digest(password, token)
        return False

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            # Git streams large pushes chunked; http-backend wants the plain body.
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip(), 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _cgi_env(self, length: int) -> dict[str, str]:
        url = urlsplit(self.path)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(url.path),
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_ADDR": self.client_address[0],
            # http-backend allows receive-pack only for an authenticated user (or http.receivepack).
            "REMOTE_USER": "lab",
        }
        for header, var in (("Content-Encoding", "HTTP_CONTENT_ENCODING"), ("Git-Protocol", "GIT_PROTOCOL")):
            if value := self.headers.get(header):
                env[var] = value
        return env

    def _send_cgi_output(self, output: bytes) -> None:
        head, sep, body = output.partition(b"\r\n\r\n")
        if not sep:
            head, _, body = output.partition(b"\n\n")
        headers = [line.partition(b":") for line in head.splitlines() if line.strip()]
        status = 200
        for name, _, value in headers:
            if name.strip().lower() == b"status":
                status = int(value.split()[0])
        self.send_response(status)
        for name, _, value in headers:
            if name.strip().lower() not in (b"status", b"content-length"):
                self.send_header(name.decode().strip(), value.decode().strip())
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base
        # Request line and status only: headers (Authorization) are never logged.
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")


def serve(state_dir: Path, host: str, port: int, token: str | None) -> None:
    """Run the server until SIGTERM; publish pid and the bound port in `state.json` when ready."""
    server = _Server((host, port), _GitHandler)
    server.project_root = state_dir / "repos"
    server.token = token
    state = {"pid": os.getpid(), "host": host, "port": server.server_address[1]}
    tmp = state_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state))
    tmp.replace(state_dir / "state.json")  # atomic: the parent never reads half a file

    def _stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        (state_dir / "state.json").unlink(missing_ok=True)


# --- git plumbing for helpers --------------------------------------------------------------------


def _run_git(
    args: list[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    secrets: list[str] | None = None,
    timeout: float = 60.0,
) -> str:
    full_env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        **_IDENTITY,
        **(env or {}),
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        detail = redact_text(proc.stderr.strip() or proc.stdout.strip(), secrets or [])
        raise GitServerError(f"git {args[0]} failed in {cwd}: {detail}")
    return proc.stdout.strip()


@dataclass
class WorkingClone:
    """A non-bare clone that commits and pushes to a remote, authenticating like the controller."""

    path: Path
    url: str
    token: str | None = field(default=None, repr=False)
    branch: str = "main"

    @classmethod
    def clone(cls, url: str, path: Path, *, token: str | None = None, branch: str = "main") -> WorkingClone:
        clone = cls(path, url, token, branch)
        path.parent.mkdir(parents=True, exist_ok=True)
        _run_git(
            ["clone", "--quiet", "--branch", branch, url, str(path)],
            cwd=path.parent,
            env=clone._env(),
            secrets=clone._secrets(),
        )
        return clone

    def git(self, *args: str) -> str:
        return _run_git(list(args), cwd=self.path, env=self._env(), secrets=self._secrets())

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", "--verify", f"{rev}^{{commit}}")

    def sync_to_remote(self) -> None:
        """Start from the remote's branch head, whatever was pushed meanwhile."""
        self.git(
            "fetch",
            "--quiet",
            "--force",
            "origin",
            f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}",
        )
        self.git("checkout", "--quiet", "-B", self.branch, f"origin/{self.branch}")
        self.git("clean", "-fdxq")

    def write(self, changes: Mapping[str, str | bytes | None]) -> None:
        """Write (str/bytes) or delete (None) repository-relative files."""
        for rel, content in changes.items():
            target = self.path / rel
            if not target.resolve().is_relative_to(self.path.resolve()):
                raise GitServerError(f"{rel!r} leaves the working clone")
            if content is None:
                if target.is_symlink() or target.exists():
                    self.git("rm", "-q", "-r", "--", rel)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
            self.git("add", "--", rel)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.head()

    def push(self, *refs: str, force: bool = False) -> None:
        self.git("push", "--quiet", *(["--force"] if force else []), "origin", *(refs or (self.branch,)))

    def commit_files(self, changes: Mapping[str, str | bytes | None], message: str) -> str:
        self.sync_to_remote()
        self.write(changes)
        sha = self.commit(message)
        self.push()
        return sha

    def _env(self) -> dict[str, str]:
        creds = Credentials(token=Secret(self.token)) if self.token else Credentials()
        env = git_env(creds, timeout=30.0, url=self.url, allow_insecure=True)  # the lab serves plain HTTP
        env.pop("GIT_SSH_COMMAND", None)  # the lab serves HTTP only
        return env

    def _secrets(self) -> list[str]:
        return Credentials(token=Secret(self.token)).secrets() if self.token else []


# --- editing values.yaml -------------------------------------------------------------------------


def set_app_version(values_yaml: str, version: str) -> str:
    """Set top-level `version` and `image.tag`, keeping comments and layout where possible."""
    lines = values_yaml.splitlines(keepends=True)
    image_indent: str | None = None  # indentation of the `image:` block's keys, once seen
    in_image = False
    for i, line in enumerate(lines):
        if line.strip() and not line[0].isspace():
            in_image = bool(re.match(r"image:\s*(#.*)?$", line))
            lines[i] = _replace_value(line, "version", version)
        elif in_image and line.strip():
            indent = line[: len(line) - len(line.lstrip())]
            image_indent = image_indent if image_indent is not None else indent
            if indent == image_indent:
                lines[i] = _replace_value(line, f"{indent}tag", version)
    text = "".join(lines)
    if _versions(text) == (version, version):
        return text
    # Unusual layout (inline mappings, missing keys): fall back to a structural edit.
    data = yaml.safe_load(values_yaml) or {}
    if not isinstance(data, dict) or not isinstance(data.setdefault("image", {}), dict):
        raise GitServerError("values.yaml must be a mapping with `image` a mapping")
    data["version"] = version
    data["image"]["tag"] = version
    return yaml.safe_dump(data, sort_keys=False)


def _replace_value(line: str, key: str, value: str) -> str:
    match = re.match(rf"({re.escape(key)}:[ \t]*)([^#\n]*?)([ \t]*#.*)?(\r?\n)?$", line)
    if not match:
        return line
    return f"{match[1] or ''}{_scalar(value)}{match[3] or ''}{match[4] or ''}"


def _versions(text: str) -> tuple[object, object]:
    data = yaml.safe_load(text) or {}
    image = data.get("image") if isinstance(data, dict) else None
    return (
        data.get("version") if isinstance(data, dict) else None,
        image.get("tag") if isinstance(image, dict) else None,
    )


def _scalar(value: str) -> str:
    # Quote so YAML keeps "1.10" a string, not the float 1.1.
    return json.dumps(value)


# --- the parent-side handle ----------------------------------------------------------------------


@dataclass
class GitServer:
    """Handle on one lab Git server: seeds, starts, stops, and commits to its repository."""

    state_dir: Path
    token: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port on first start; restarts reuse the bound port
    repo_name: str = "shop.git"
    branch: str = "main"
    seed: Path | None = EXAMPLE_REPO
    _work: WorkingClone | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()

    # --- where things are

    @property
    def url(self) -> str:
        if not self.port:
            raise GitServerError("the Git server has not been started yet")
        return f"http://{self.host}:{self.port}/{self.repo_name}"

    @property
    def bare_path(self) -> Path:
        return self.state_dir / "repos" / self.repo_name

    @property
    def file_url(self) -> str:
        return self.bare_path.as_uri()

    @property
    def pidfile(self) -> Path:
        """The server's procs record (pid and start time), `<state>/pids/gitserver.json`."""
        return self.state_dir / "pids" / f"{PROCESS_NAME}.json"

    @property
    def pid(self) -> int | None:
        rec = procs.running(self.state_dir, PROCESS_NAME)
        return rec.pid if rec is not None else None

    @property
    def logfile(self) -> Path:
        return self.state_dir / "gitserver.log"

    # --- lifecycle

    def start(self, deadline_s: float = 15.0) -> GitServer:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.is_running():
            raise GitServerError(f"a Git server is already running from {self.state_dir}")
        self._clear_stale()
        if not self.bare_path.exists():
            self._seed()
        rec = self._launch()
        try:
            procs.wait_ready(rec, self._published, deadline_s, "the Git server to publish its port")
            state = json.loads((self.state_dir / "state.json").read_text())
            self.port = int(state["port"])
            procs.wait_ready(rec, self._answers, deadline_s, f"the Git server at {self.url} to answer")
        except BaseException:
            self.stop()
            raise
        log.info("lab.git.started", url=self.url, pid=rec.pid, state_dir=str(self.state_dir))
        return self

    def stop(self, deadline_s: float = 10.0) -> None:
        procs.stop(self._records(), self.state_dir, deadline_s)
        self._clear_stale()
        log.info("lab.git.stopped", state_dir=str(self.state_dir))

    def is_running(self) -> bool:
        return procs.running(self.state_dir, PROCESS_NAME) is not None

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- helpers for tests and the demo

    def clone(self, path: Path) -> WorkingClone:
        """A fresh working clone over HTTP (with the token when the server has one)."""
        return WorkingClone.clone(self.url, path, token=self.token, branch=self.branch)

    def head(self, ref: str | None = None) -> str:
        return _run_git(["rev-parse", "--verify", f"{ref or self.branch}^{{commit}}"], cwd=self.bare_path)

    def commit_files(self, changes: Mapping[str, str | bytes | None], message: str) -> str:
        """Write/delete files (None deletes), commit and push over HTTP; returns the new commit."""
        with self._lock:
            return self._working_clone().commit_files(changes, message)

    def bump_app_version(self, app: str, version: str, message: str | None = None) -> str:
        """Set apps/<app>/values.yaml `version` and `image.tag` to `version`; commit and push."""
        rel = f"apps/{app}/values.yaml"
        with self._lock:
            work = self._working_clone()
            work.sync_to_remote()
            values = work.path / rel
            if not values.exists():
                raise GitServerError(f"{rel} does not exist in the lab repository")
            work.write({rel: set_app_version(values.read_text(), version)})
            sha = work.commit(message or f"{app}: release {version}")
            work.push()
            return sha

    def force_push(
        self,
        base: str = "HEAD~1",
        changes: Mapping[str, str | bytes | None] | None = None,
        message: str = "rewrite history",
    ) -> str:
        """Rewrite the branch: reset it to `base`, optionally commit `changes` on top, push --force."""
        with self._lock:
            work = self._working_clone()
            work.sync_to_remote()
            work.git("reset", "--quiet", "--hard", work.head(base))
            if changes:
                work.write(changes)
                work.commit(message)
            work.push(force=True)
            return work.head()

    def tag(self, name: str, rev: str | None = None, message: str | None = None) -> str:
        """Create (or move, with force) a tag and push it; returns the tagged commit."""
        with self._lock:
            work = self._working_clone()
            work.sync_to_remote()
            target = work.head(rev or "HEAD")
            annotate = ["-a", "-m", message] if message else []
            work.git("tag", "--force", *annotate, name, target)
            work.push(f"+refs/tags/{name}:refs/tags/{name}")
            return target

    # --- internals

    def _seed(self) -> None:
        """Create the bare repository with one commit holding the seed folder as its root."""
        staging = self.state_dir / "seed-work"
        shutil.rmtree(staging, ignore_errors=True)
        if self.seed is not None and self.seed.is_dir():
            shutil.copytree(self.seed, staging, symlinks=True)
        else:
            staging.mkdir(parents=True)
            (staging / "README.md").write_text("lab rollout repository\n")
        _run_git(["init", "--quiet", "--initial-branch", self.branch], cwd=staging)
        _run_git(["add", "-A"], cwd=staging)
        _run_git(["commit", "--quiet", "--allow-empty", "-m", "seed: example rollout repository"], cwd=staging)
        self.bare_path.parent.mkdir(parents=True, exist_ok=True)
        _run_git(
            ["init", "--quiet", "--bare", "--initial-branch", self.branch, str(self.bare_path)],
            cwd=self.state_dir,
        )
        _run_git(["config", "http.receivepack", "true"], cwd=self.bare_path)
        _run_git(["push", "--quiet", str(self.bare_path), f"{self.branch}:{self.branch}"], cwd=staging)
        shutil.rmtree(staging)

    def _launch(self) -> procs.ProcessRecord:
        env = {**os.environ}
        env.pop(TOKEN_ENV, None)
        if self.token:
            env[TOKEN_ENV] = self.token  # environment, not argv: `ps` shows argv to everyone
        cmd = [
            sys.executable,
            "-m",
            "deploy.lab.gitserver",
            "serve",
            "--state-dir",
            str(self.state_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        return procs.start(PROCESS_NAME, cmd, state_dir=self.state_dir, env=env, log_file=self.logfile, cwd=REPO)

    def _published(self) -> bool:
        return (self.state_dir / "state.json").exists()

    def _answers(self) -> bool:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(f"{self.url}/info/refs?service=git-upload-pack")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _working_clone(self) -> WorkingClone:
        if self._work is None:
            path = self.state_dir / "work"
            shutil.rmtree(path, ignore_errors=True)
            self._work = WorkingClone.clone(self.url, path, token=self.token, branch=self.branch)
        return self._work

    def _records(self) -> list[procs.ProcessRecord]:
        return [r for r in procs.records(self.state_dir) if r.name == PROCESS_NAME]

    def _clear_stale(self) -> None:
        self.pidfile.unlink(missing_ok=True)
        (self.state_dir / "state.json").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The lab's Git server (smart HTTP on loopback).")
    parser.add_argument("command", choices=["up", "down", "status", "serve"], help="serve: the server process")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV) or None
    if args.command == "serve":
        serve(args.state_dir.resolve(), args.host, args.port, token)
        return
    server = GitServer(args.state_dir, token=token, host=args.host, port=args.port)
    if args.command == "up":
        print(server.start().url)
    elif args.command == "down":
        server.stop()
    else:
        print("running" if server.is_running() else "stopped")
        sys.exit(0 if server.is_running() else 1)


if __name__ == "__main__":
    main()

"""Disk and Git hygiene against real git and the lab's Git server: transports, the token's scope,
size caps, and trees removed once no live release needs them (issue 18, item 7)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deploy.lab.gitserver import GitServer
from rollout.gitsync import Credentials, GitError, GitMirror, Secret

pytestmark = pytest.mark.integration

TOKEN = "hygiene-t0ken-never-elsewhere"


class Recorder:
    """A loopback HTTP server that records every request's path and headers, and answers each with
    `status` (and `location`, for a redirect)."""

    def __init__(self, host: str, status: int = 404, location: str = "") -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
                recorder.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(status)
                if location:
                    self.send_header("Location", location + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def redirecting() -> Iterator[tuple[Recorder, Recorder]]:
    """(remote, elsewhere): the remote answers every request with a redirect to another host."""
    elsewhere = Recorder("127.0.0.2")
    remote = Recorder("127.0.0.1", status=302, location=elsewhere.url)
    yield remote, elsewhere
    remote.close()
    elsewhere.close()


def test_a_redirect_to_another_host_never_gets_the_token(
    redirecting: tuple[Recorder, Recorder], tmp_path: Path
) -> None:
    remote, elsewhere = redirecting
    mirror = GitMirror(
        f"{remote.url}/shop.git",
        tmp_path / "cache",
        credentials=Credentials(token=Secret(TOKEN)),
        timeout=20,
        allow_insecure=True,
    )
    with pytest.raises(GitError) as failed:
        mirror.sync()
    assert TOKEN not in str(failed.value)
    assert remote.requests, "git never asked the remote"
    # The header is scoped to the remote's URL: the remote itself gets it ...
    assert all(headers.get("authorization", "").startswith("Basic ") for _, headers in remote.requests)
    # ... and the host a redirect names gets nothing: redirects are not followed at all.
    assert elsewhere.requests == []
    assert mirror.last_good is None


def test_clear_text_remotes_need_the_operators_opt_in(fresh_git_server: GitServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="insecure git transport 'http'.*--allow-insecure-git"):
        GitMirror(fresh_git_server.url, tmp_path / "refused")
    opted_in = GitMirror(fresh_git_server.url, tmp_path / "lab", allow_insecure=True)
    assert opted_in.sync().commit == fresh_git_server.head()

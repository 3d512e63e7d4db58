"""Disk and Git hygiene against real git and the lab's Git server: transports, the token's scope,
size caps, and trees removed once no live release needs them (issue 18, item 7)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from deploy.lab.gitserver import GitServer, WorkingClone
from rollout.gitsync import Credentials, GitError, GitMirror, Secret, SizeCaps, TooLarge
from rollout.gitsync.pure import MIB
from rollout.release import ReleasePhase, ReleaseSpec, ReleaseStatus
from rollout.store import StoredRelease
from rollout.sync import GitSync
from rollout.workspace import Workspace, needed_commits

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


def _release(n: int, commit: str, phase: ReleasePhase, previous: str | None) -> StoredRelease:
    status = ReleaseStatus.from_dict({"phase": phase.value})
    status.previous_commit = previous
    spec = ReleaseSpec(app="search", commit=commit, version=f"1.0.{n}", plan_digest="p", content_digest="c", waves=())
    return StoredRelease(f"search-{n}", "1", spec, status, f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z")


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def test_trees_no_live_release_needs_are_removed_and_the_cache_stays_bounded(
    fresh_git_server: GitServer, working_clone: Callable[[GitServer], WorkingClone], tmp_path: Path
) -> None:
    clone = working_clone(fresh_git_server)
    commits = []
    for n in range(200):  # a busy repository: one release per commit, each finishing before the next
        clone.write({"apps/search/marker.txt": f"{n}\n"})
        commits.append(clone.commit(f"marker {n}"))
    clone.push()
    mirror = GitMirror(fresh_git_server.url, tmp_path / "cache" / "git", allow_insecure=True)
    assert mirror.sync().commit == commits[-1]
    keep_recent = 3
    ws = Workspace(mirror, tmp_path / "cache", keep_recent_trees=keep_recent, in_use_grace=0.0)
    one_tree = _size(ws.tree(commits[0]))
    releases: list[StoredRelease] = []
    peak = 0
    for n, commit in enumerate(commits):
        if releases:  # the previous release finished
            releases[-1] = _release(n - 1, commits[n - 1], ReleasePhase.SUCCEEDED, None)
        releases.append(_release(n, commit, ReleasePhase.PROGRESSING, commits[n - 1] if n else None))
        ws.tree(commit)  # what loading the commit for its release does first
        ws.retain(needed_commits(releases, last_good=commit))
        peak = max(peak, len(list(ws.trees_dir.iterdir())))
    # needed: the running release (its commit, also the last good one) and its rollback target;
    # plus the few most recent: never the 200 trees of before.
    assert peak <= 2 + keep_recent
    assert _size(ws.trees_dir) <= (2 + keep_recent) * one_tree * 1.1

    releases[-1] = _release(len(commits) - 1, commits[-1], ReleasePhase.SUCCEEDED, None)  # all finished
    ws.retain(needed_commits(releases, last_good=commits[-1]))
    assert {p.name for p in ws.trees_dir.iterdir()} <= {commits[-1], *commits[-1 - keep_recent :]}
    # a removed commit is materialized again from the mirror when a rollback asks for it
    assert (ws.tree(commits[0]) / "apps/search/marker.txt").read_text() == "0\n"


class NoReleases:
    namespace = "rollout-system"

    def list(self) -> list[Any]:
        return []


def test_a_file_over_the_cap_is_refused_with_its_path_and_the_last_good_commit_kept(
    fresh_git_server: GitServer, tmp_path: Path
) -> None:
    server = fresh_git_server
    mirror = GitMirror(server.file_url, tmp_path / "cache" / "git", caps=SizeCaps(file_bytes=1 * MIB))
    good = mirror.sync().commit
    big = server.commit_files({"apps/search/assets/blob.bin": b"\0" * (2 * MIB)}, "a 2 MiB file")
    with pytest.raises(TooLarge) as refused:
        mirror.sync()
    message = str(refused.value)
    assert f"commit {big[:12]} is not used" in message
    assert "apps/search/assets/blob.bin is 2 MiB, over the 1 MiB cap per file" in message
    assert f"keeping last good commit {good}" in message and "--git-max-file-mib" in message
    assert mirror.last_good == good

    # What the RolloutSource says (GitSync writes it to the status; here captured before the API).
    sync = GitSync(
        mirror, Workspace(mirror, tmp_path / "cache"), NoReleases(), client.ApiClient(), "shop", lambda: True
    )  # type: ignore[arg-type]
    statuses: list[dict[str, Any]] = []
    sync._set_status = statuses.append  # type: ignore[method-assign]
    sync.run_once()
    assert statuses[-1]["reachable"] is True and "apps/search/assets/blob.bin is 2 MiB" in statuses[-1]["message"]
    assert "commit" not in statuses[-1], "no commit adopted"

    fixed = server.commit_files({"apps/search/assets/blob.bin": None}, "drop the blob")
    assert mirror.sync().commit == fixed


def test_a_commit_over_the_total_cap_and_a_mirror_over_its_cap_are_refused(
    fresh_git_server: GitServer, tmp_path: Path
) -> None:
    server = fresh_git_server
    per_commit = GitMirror(server.file_url, tmp_path / "a", caps=SizeCaps(tree_bytes=4 * 1024))
    with pytest.raises(TooLarge, match=r"its files add up to .*, over the 4 KiB cap per commit"):
        per_commit.sync()
    assert per_commit.last_good is None
    whole = GitMirror(server.file_url, tmp_path / "b", caps=SizeCaps(repository_bytes=4 * 1024))
    with pytest.raises(TooLarge, match=r"the mirror takes \d+(\.\d)? [KM]iB after fetching, over the 4 KiB cap"):
        whole.sync()
    assert whole.last_good is None


def test_mirror_housekeeping_runs_on_a_bounded_schedule(fresh_git_server: GitServer, tmp_path: Path) -> None:
    mirror = GitMirror(fresh_git_server.file_url, tmp_path / "cache", gc_interval=3600)
    mirror.sync()
    stamp = mirror.path / "rollout-gc-at"
    first = stamp.read_text()
    fresh_git_server.commit_files({"README.md": "again\n"}, "again")
    mirror.sync()
    assert stamp.read_text() == first, "not on every pass"
    stamp.write_text("0\n")  # an hour later
    mirror.sync()
    assert stamp.read_text() != "0\n"

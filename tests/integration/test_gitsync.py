"""Git sync against real repositories: file:// remotes and the lab's smart-HTTP server."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from deploy.lab.gitserver import GitServer, WorkingClone
from rollout.gitsync import (
    AuthenticationFailed,
    Credentials,
    GitMirror,
    GitSource,
    PathNotFound,
    RemoteTimeout,
    RemoteUnavailable,
    RepositoryNotFound,
    RevisionNotFound,
    Secret,
    UnsafePath,
)
from tests.fixtures.git import GitServerFactory, SshRemote

pytestmark = pytest.mark.integration

EXAMPLE_APPS = {"catalog", "checkout", "guestbook", "inventory", "reviews", "search"}
TOKEN = "lab-t0ken-d0-not-leak"


def mirror_of(url: str, tmp_path: Path, **options: object) -> GitMirror:
    options.setdefault("allow_insecure", True)  # the lab's server speaks plain http (an explicit opt-in)
    return GitMirror(url, tmp_path / "cache", **options)  # type: ignore[arg-type]


def test_clone_and_fetch_from_a_file_remote(fresh_git_server: GitServer, tmp_path: Path) -> None:
    mirror = mirror_of(fresh_git_server.file_url, tmp_path, ref="main")
    assert isinstance(mirror, GitSource)
    assert mirror.last_good is None

    first = mirror.sync()
    assert first.commit == fresh_git_server.head()
    assert first.previous is None and first.changed and not first.rewritten
    assert first.changed_apps == EXAMPLE_APPS
    assert b"name: eu-canary" in mirror.read(first.commit, "regions/eu-canary.yaml")

    again = mirror.sync()
    assert not again.changed and again.changed_apps == frozenset()

    new = fresh_git_server.commit_files({"apps/search/values.yaml": "version: 9.9.9\n"}, "search: values")
    third = mirror.sync()
    assert (third.previous, third.commit) == (first.commit, new)
    assert third.changed_apps == {"search"}
    assert mirror.last_good == new


def test_clone_and_fetch_from_the_served_remote(fresh_git_server: GitServer, tmp_path: Path) -> None:
    mirror = mirror_of(fresh_git_server.url, tmp_path)
    result = mirror.sync()
    assert result.commit == fresh_git_server.head()
    assert mirror.resolve("HEAD") == mirror.resolve("main") == result.commit

    sha = fresh_git_server.bump_app_version("catalog", "2.8.0")
    result = mirror.sync()
    assert result.commit == sha and result.changed_apps == {"catalog"}
    values = yaml.safe_load(mirror.read(sha, "apps/catalog/values.yaml"))
    assert values["version"] == "2.8.0" and values["image"]["tag"] == "2.8.0"


def test_last_good_survives_a_new_mirror_on_the_same_cache(fresh_git_server: GitServer, tmp_path: Path) -> None:
    synced = mirror_of(fresh_git_server.url, tmp_path).sync()
    assert mirror_of(fresh_git_server.url, tmp_path).last_good == synced.commit


def test_resolve_branch_and_tags(fresh_git_server: GitServer, tmp_path: Path) -> None:
    seed = fresh_git_server.head()
    fresh_git_server.tag("v1.0.0")  # lightweight
    fresh_git_server.tag("v1.0.0-annotated", message="release 1.0.0")
    newer = fresh_git_server.commit_files({"README.md": "later\n"}, "later")
    mirror = mirror_of(fresh_git_server.url, tmp_path, ref="v1.0.0")
    result = mirror.sync()

    assert result.commit == seed, "tracking a tag pins its commit, not the branch head"
    assert mirror.resolve("v1.0.0") == seed
    assert mirror.resolve("v1.0.0-annotated") == seed  # peeled to the commit
    assert mirror.resolve("main") == newer
    assert mirror.resolve(newer) == newer
    assert mirror.resolve(newer[:12]) == newer
    for bad in ("no-such-branch", "--output=/tmp/x", "", "0" * 40):
        with pytest.raises(RevisionNotFound):
            mirror.resolve(bad)


def test_a_moved_tag_is_followed(fresh_git_server: GitServer, tmp_path: Path) -> None:
    fresh_git_server.tag("stable")
    mirror = mirror_of(fresh_git_server.url, tmp_path, ref="stable")
    first = mirror.sync()
    moved = fresh_git_server.commit_files({"apps/catalog/extra.yaml": "a: 1\n"}, "catalog: extra")
    fresh_git_server.tag("stable", moved)
    second = mirror.sync()
    assert (second.previous, second.commit) == (first.commit, moved)
    assert second.changed_apps == {"catalog"} and not second.rewritten


def test_changed_apps_between_commits(fresh_git_server: GitServer, tmp_path: Path) -> None:
    server = fresh_git_server
    seed = server.head()
    one_app = server.commit_files({"apps/checkout/manifests/extra.yaml": "kind: ConfigMap\n"}, "checkout")
    region = server.commit_files({"regions/eu-west.yaml": "name: eu-west\n"}, "region edit")
    removed = server.commit_files({"apps/search/rollout.yaml": None}, "drop search plan")
    readme = server.commit_files({"README.md": "docs only\n"}, "docs")
    mirror = mirror_of(server.url, tmp_path)
    mirror.sync()

    assert mirror.changed_apps(seed, one_app) == {"checkout"}
    assert mirror.changed_apps(one_app, region) == EXAMPLE_APPS
    assert mirror.changed_apps(region, removed) == {"search"}
    assert mirror.changed_apps(removed, readme) == set()
    assert mirror.changed_apps(seed, seed) == set()
    assert mirror.changed_apps(None, seed) == EXAMPLE_APPS
    assert mirror.changed_apps(seed, "main") == EXAMPLE_APPS  # refs are resolved too


def test_concurrent_reads_at_different_commits_while_syncing(fresh_git_server: GitServer, tmp_path: Path) -> None:
    server = fresh_git_server
    commits = {server.commit_files({"apps/catalog/marker.txt": f"rev {i}\n"}, f"marker {i}"): i for i in range(6)}
    mirror = mirror_of(server.url, tmp_path)
    mirror.sync()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(60):
                sha = rng.choice(list(commits))
                assert mirror.read(sha, "apps/catalog/marker.txt") == f"rev {commits[sha]}\n".encode()
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    def syncer() -> None:
        # Fetches (and new objects) land while readers read pinned commits.
        i = 0
        while not stop.is_set() and i < 5:
            server.commit_files({"apps/search/noise.txt": f"{i}\n"}, f"noise {i}")
            mirror.sync()
            i += 1

    readers = [threading.Thread(target=reader, args=(n,)) for n in range(6)]
    sync_thread = threading.Thread(target=syncer)
    for thread in [*readers, sync_thread]:
        thread.start()
    for thread in readers:
        thread.join(timeout=60)
    stop.set()
    sync_thread.join(timeout=60)
    assert not errors, errors[0]
    assert not any(t.is_alive() for t in [*readers, sync_thread])


def test_force_push_is_detected_and_old_commits_stay_readable(fresh_git_server: GitServer, tmp_path: Path) -> None:
    server = fresh_git_server
    doomed = server.commit_files({"apps/catalog/values.yaml": "version: 6.6.6\n"}, "bad release")
    mirror = mirror_of(server.url, tmp_path)
    assert mirror.sync().commit == doomed

    rewritten = server.force_push("HEAD~1", {"apps/checkout/values.yaml": "version: 1.2.3\n"}, "instead")
    result = mirror.sync()
    assert result.rewritten and (result.previous, result.commit) == (doomed, rewritten)
    assert result.changed_apps == {"catalog", "checkout"}
    assert mirror.resolve("main") == rewritten
    # A release pinned to the dropped commit can still be read (and rolled back from).
    assert mirror.read(doomed, "apps/catalog/values.yaml") == b"version: 6.6.6\n"
    assert not mirror.sync().rewritten


def test_unreachable_remote_keeps_last_good_and_says_so(fresh_git_server: GitServer, tmp_path: Path) -> None:
    server = fresh_git_server
    mirror = mirror_of(server.url, tmp_path, timeout=10)
    good = mirror.sync().commit
    server.stop()
    assert not server.is_running()

    with pytest.raises(RemoteUnavailable) as caught:
        mirror.sync()
    err = caught.value
    assert err.temporary and err.last_good == good
    assert server.url in str(err) and good in str(err)
    assert "Failed to connect" in err.cause or "Connection refused" in err.cause
    assert mirror.last_good == good
    assert mirror.resolve("HEAD") == good
    assert b"eu-canary" in mirror.read(good, "regions/eu-canary.yaml")

    server.start()  # same port: the remote comes back
    assert mirror.sync().commit == good


def test_missing_repository_is_a_permanent_error(fresh_git_server: GitServer, tmp_path: Path) -> None:
    mirror = mirror_of(fresh_git_server.url.replace("shop.git", "nope.git"), tmp_path)
    with pytest.raises(RepositoryNotFound) as caught:
        mirror.sync()
    assert not caught.value.temporary


def test_missing_branch_is_a_permanent_error_and_keeps_nothing(fresh_git_server: GitServer, tmp_path: Path) -> None:
    mirror = mirror_of(fresh_git_server.url, tmp_path, ref="release/9")
    with pytest.raises(RevisionNotFound, match="release/9"):
        mirror.sync()
    assert mirror.last_good is None


def _all_output(
    caplog: pytest.LogCaptureFixture,
    events: list[MutableMapping[str, Any]],
    capfd: pytest.CaptureFixture[str],
) -> str:
    out, err = capfd.readouterr()
    return "\n".join([caplog.text, *(repr(e) for e in events), out, err])


def test_token_never_appears_in_logs_errors_or_repr(
    git_server_factory: GitServerFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server = git_server_factory(token=TOKEN)
    caplog.set_level(logging.DEBUG)  # gitpython logs every command line at DEBUG
    seen: list[str] = []
    with structlog.testing.capture_logs() as events:
        # 1. Token in credentials: works, and leaves no trace.
        good = mirror_of(server.url, tmp_path / "a", credentials=Credentials(token=Secret(TOKEN)))
        result = good.sync()
        seen += [repr(good), repr(result), str(good.__dict__)]
        # 2. Token pasted into the URL: moved to the header, URL redacted everywhere.
        pasted = mirror_of(server.url.replace("http://", f"http://bot:{TOKEN}@"), tmp_path / "b")
        assert pasted.sync().commit == result.commit
        seen += [repr(pasted), pasted.remote]
        # 3. Wrong token: a clear permanent error, still without any token in it.
        wrong = mirror_of(server.url, tmp_path / "c", credentials=Credentials(token=Secret("not-" + TOKEN)))
        with pytest.raises(AuthenticationFailed) as caught:
            wrong.sync()
        seen += [str(caught.value), repr(caught.value), repr(caught.value.__cause__), caught.value.remote]
        # 4. Unreachable with the token in the URL: the error names the redacted URL.
        server.stop()
        with pytest.raises(RemoteUnavailable) as down:
            pasted.sync()
        seen += [str(down.value), repr(down.value), down.value.remote]
    assert "***@" in down.value.remote
    assert len(events) >= 3
    output = "\n".join([*seen, _all_output(caplog, events, capfd)])
    assert TOKEN not in output
    # Nor on disk: the mirrors (config, refs, logs...) and the server's request log.
    assert TOKEN not in server.logfile.read_text()
    for path in tmp_path.glob("[abc]/**/*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_hung_remote_is_cut_off_within_the_timeout(hung_remote: str, tmp_path: Path) -> None:
    mirror = mirror_of(hung_remote, tmp_path, timeout=2.0)
    started = time.monotonic()
    with pytest.raises(RemoteTimeout) as caught:
        mirror.sync()
    elapsed = time.monotonic() - started
    print(f"\nhung remote cut off after {elapsed:.2f}s (timeout 2s)")
    assert 1.5 <= elapsed < 10, f"timeout took {elapsed:.1f}s"  # generous: 5x the timeout
    assert caught.value.temporary and "2s" in str(caught.value)


def test_checkout_preserves_symlinks_and_refuses_to_read_them(
    fresh_git_server: GitServer, working_clone: Callable[[GitServer], WorkingClone], tmp_path: Path
) -> None:
    clone = working_clone(fresh_git_server)
    manifests = clone.path / "apps" / "catalog" / "manifests"
    os.symlink("../../../../../etc/passwd", manifests / "escape.yaml")
    os.symlink("deployment.yaml", manifests / "alias.yaml")
    clone.commit("symlinks")
    clone.push()
    mirror = mirror_of(fresh_git_server.url, tmp_path)
    commit = mirror.sync().commit

    tree = mirror.checkout(commit, tmp_path / "tree")
    escape = tree / "apps" / "catalog" / "manifests" / "escape.yaml"
    assert escape.is_symlink() and os.readlink(escape) == "../../../../../etc/passwd"
    assert os.readlink(tree / "apps" / "catalog" / "manifests" / "alias.yaml") == "deployment.yaml"
    assert (tree / "regions" / "eu-canary.yaml").read_bytes() == mirror.read(commit, "regions/eu-canary.yaml")
    assert not list(tmp_path.glob(".tree.*")), "no staging folder left behind"

    with pytest.raises(UnsafePath, match="symbolic link"):
        mirror.read(commit, "apps/catalog/manifests/escape.yaml")
    with pytest.raises(FileExistsError):
        mirror.checkout(commit, tree)


def test_two_checkouts_of_different_commits_are_independent(fresh_git_server: GitServer, tmp_path: Path) -> None:
    old = fresh_git_server.head()
    new = fresh_git_server.commit_files({"apps/catalog/values.yaml": None}, "remove catalog values")
    mirror = mirror_of(fresh_git_server.url, tmp_path)
    mirror.sync()
    old_tree = mirror.checkout(old, tmp_path / "old")
    new_tree = mirror.checkout(new, tmp_path / "new")
    assert (old_tree / "apps/catalog/values.yaml").exists()
    assert not (new_tree / "apps/catalog/values.yaml").exists()


def test_reads_refuse_escapes_and_moving_refs(fresh_git_server: GitServer, tmp_path: Path) -> None:
    mirror = mirror_of(fresh_git_server.url, tmp_path)
    commit = mirror.sync().commit
    with pytest.raises(UnsafePath):
        mirror.read(commit, "../../etc/passwd")
    with pytest.raises(UnsafePath):
        mirror.read(commit, "/etc/passwd")
    with pytest.raises(UnsafePath, match="tree"):
        mirror.read(commit, "apps/catalog")
    with pytest.raises(PathNotFound):
        mirror.read(commit, "apps/catalog/nope.yaml")
    with pytest.raises(ValueError, match="full commit id"):
        mirror.read("main", "regions/eu-canary.yaml")
    with pytest.raises(RevisionNotFound):
        mirror.read("f" * 40, "regions/eu-canary.yaml")


def test_lab_server_stops_cleanly_and_restarts_on_its_port(git_server_factory: GitServerFactory) -> None:
    server = git_server_factory()
    pid = server.pid
    port = server.port
    server.stop()
    assert not server.pidfile.exists()
    assert not Path(f"/proc/{pid}").exists()
    server.start()
    assert server.port == port and server.is_running()
    server.stop()
    server.stop()  # idempotent


def test_ssh_remote_with_key_and_host_key_checking(
    fresh_git_server: GitServer, ssh_remote: SshRemote, tmp_path: Path
) -> None:
    url = ssh_remote.url(fresh_git_server.bare_path)
    trusted = Credentials(ssh_key_file=ssh_remote.key_file, known_hosts_file=ssh_remote.known_hosts)
    mirror = GitMirror(url, tmp_path / "ok", ref="main", credentials=trusted, timeout=20)
    assert mirror.sync().commit == fresh_git_server.head()
    newer = fresh_git_server.commit_files({"apps/search/values.yaml": "version: 3.0.0\n"}, "search 3")
    assert mirror.sync().changed_apps == {"search"} and mirror.last_good == newer

    unknown_host = tmp_path / "empty_known_hosts"
    unknown_host.write_text("")
    strict = Credentials(ssh_key_file=ssh_remote.key_file, known_hosts_file=unknown_host)
    with pytest.raises(AuthenticationFailed, match="Host key verification failed"):
        GitMirror(url, tmp_path / "strict", credentials=strict, timeout=20).sync()

    stranger = Credentials(ssh_key_file=ssh_remote.other_key_file, known_hosts_file=ssh_remote.known_hosts)
    with pytest.raises(AuthenticationFailed, match="Permission denied"):
        GitMirror(url, tmp_path / "stranger", credentials=stranger, timeout=20).sync()


def test_large_push_and_fetch_through_the_lab_server(fresh_git_server: GitServer, tmp_path: Path) -> None:
    # Above git's 1 MiB http.postBuffer the push body is sent chunked: the server must decode it.
    blob = random.Random(7).randbytes(3 * 1024 * 1024)
    sha = fresh_git_server.commit_files({"apps/catalog/big.bin": blob}, "big")
    mirror = mirror_of(fresh_git_server.url, tmp_path)
    assert mirror.sync().commit == sha
    assert mirror.read(sha, "apps/catalog/big.bin") == blob

"""Pure parts of Git sync: redaction, URL rules, path rules, changed paths -> apps, git env."""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

import pytest

from deploy.lab.gitserver import set_app_version
from rollout.gitsync.model import AuthenticationFailed, RemoteUnavailable
from rollout.gitsync.pure import (
    MIB,
    Credentials,
    FailureKind,
    HostKeyChecking,
    Secret,
    SizeCaps,
    app_of_path,
    apps_for_paths,
    cache_key,
    check_remote_url,
    classify_failure,
    failure_cause,
    gc_due,
    git_env,
    human_size,
    is_full_sha,
    normalize_repo_path,
    parse_ls_tree,
    redact_text,
    redact_url,
    repository_bytes,
    size_problems,
    split_userinfo,
    ssh_command,
)

TOKEN = "ghp_s3cr3tT0ken"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw@git.example.com/org/repo.git", "https://***@git.example.com/org/repo.git"),
        (f"https://{TOKEN}@git.example.com/r.git", "https://***@git.example.com/r.git"),
        (
            "https://git.example.com/r.git?private_token=abc&x",
            "https://git.example.com/r.git?private_token=***&x",
        ),
        ("ssh://git@example.com:2222/r.git", "ssh://***@example.com:2222/r.git"),
        ("file:///srv/repo.git", "file:///srv/repo.git"),
        ("/srv/repo.git", "/srv/repo.git"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_removes_userinfo_and_every_form_of_the_secret() -> None:
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    text = (
        f"fatal: unable to access 'https://bot:{TOKEN}@h/r.git/': 403\nheader Authorization: Basic {basic}\nraw {TOKEN}"
    )
    out = redact_text(text, Credentials(token=Secret(TOKEN)).secrets())
    assert TOKEN not in out
    assert basic not in out
    assert "https://***@h/r.git/" in out


def test_split_userinfo() -> None:
    assert split_userinfo("https://u:p@h/r.git") == ("https://h/r.git", "u", "p")
    assert split_userinfo("https://tok@h/r.git") == ("https://h/r.git", "tok", None)
    assert split_userinfo("https://h/r.git") == ("https://h/r.git", None, None)
    assert split_userinfo("/local/path") == ("/local/path", None, None)


def test_secret_never_shows_itself() -> None:
    creds = Credentials(token=Secret(TOKEN))
    for text in (repr(creds), str(creds), repr(creds.token), f"{creds.token}"):
        assert TOKEN not in text
    assert creds.token is not None and creds.token.reveal() == TOKEN


@pytest.mark.parametrize("url", ["https://h/r.git", "ssh://git@h/r", "file:///r", "/abs/path", "git@h:org/r.git"])
def test_supported_remote_urls(url: str) -> None:
    check_remote_url(url)


@pytest.mark.parametrize("url", ["http://h/r", "git://h/r.git", "HTTP://h/r"])
def test_clear_text_transports_need_the_operators_opt_in(url: str) -> None:
    with pytest.raises(ValueError, match="insecure git transport .*--allow-insecure-git"):
        check_remote_url(url)
    check_remote_url(url, allow_insecure=True)


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/pwned", "fd::17", "ftp://h/r.git", "gopher://h/r"])
def test_transports_that_run_commands_or_are_unsupported_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        check_remote_url(url)


def test_cache_key_is_stable_readable_and_distinct() -> None:
    a = cache_key("https://h/org/shop.git")
    assert a == cache_key("https://h/org/shop.git")
    assert a.startswith("shop-") and a.endswith(".git")
    assert a != cache_key("https://other/org/shop.git")
    assert "/" not in cache_key("file:///weird path/../x")


@pytest.mark.parametrize(
    ("path", "expected"),
    [("apps/a/values.yaml", "apps/a/values.yaml"), ("./apps//a/x", "apps/a/x"), ("README.md", "README.md")],
)
def test_normalize_repo_path_accepts_relative_paths(path: str, expected: str) -> None:
    assert normalize_repo_path(path) == expected


@pytest.mark.parametrize("path", ["", ".", "/etc/passwd", "../x", "apps/../../x", "a\\b", "a\0b"])
def test_normalize_repo_path_refuses_escapes(path: str) -> None:
    with pytest.raises(ValueError):
        normalize_repo_path(path)


def test_is_full_sha() -> None:
    assert is_full_sha("a" * 40)
    assert is_full_sha("0123456789abcdef" * 4)  # sha256 repositories
    assert not is_full_sha("main")
    assert not is_full_sha("a" * 39)
    assert not is_full_sha("A" * 40)


@pytest.mark.parametrize(
    ("path", "app"),
    [("apps/shop/values.yaml", "shop"), ("apps/shop/manifests/d.yaml", "shop"), ("apps/README.md", None),
     ("regions/eu.yaml", None), ("appsx/shop/v.yaml", None)],
)  # fmt: skip
def test_app_of_path(path: str, app: str | None) -> None:
    assert app_of_path(path) == app


KNOWN = {"catalog", "checkout", "search"}


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ([], set()),
        (["README.md", "docs/x.md"], set()),
        (["apps/catalog/values.yaml"], {"catalog"}),
        (["apps/catalog/values.yaml", "apps/search/manifests/svc.yaml"], {"catalog", "search"}),
        (["regions/eu-west.yaml"], KNOWN),
        (["apps/catalog/values.yaml", "regions/new.yaml"], KNOWN),
        # An app deleted (or added) by the change is still affected.
        (["apps/gone/rollout.yaml"], {"gone"}),
        (["apps/README.md"], set()),
    ],
)
def test_apps_for_paths(paths: list[str], expected: set[str]) -> None:
    assert apps_for_paths(paths, KNOWN) == expected


def test_apps_for_paths_with_more_global_prefixes() -> None:
    assert apps_for_paths(["analysis/latency.yaml"], KNOWN, ("regions/", "analysis/")) == KNOWN


def _config(env: dict[str, str]) -> dict[str, str]:
    return {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}


def test_git_env_carries_token_only_as_header_and_isolates_config() -> None:
    env = git_env(Credentials(token=Secret(TOKEN)), timeout=7, url="https://git.example.com/org/r.git")
    config = _config(env)
    assert "http.extraHeader" not in config, "an unscoped header goes to every host, redirects included"
    header = config["http.https://git.example.com/org/r.git.extraHeader"]
    assert header.startswith("Authorization: Basic ")
    assert base64.b64decode(header.split()[-1]).decode() == f"x-access-token:{TOKEN}"
    assert config["credential.helper"] == ""
    assert config["protocol.allow"] == "never"
    assert config["http.lowSpeedTime"] == "7"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null"
    assert TOKEN not in env["GIT_SSH_COMMAND"]


def test_git_env_without_token_sends_no_header() -> None:
    env = git_env(Credentials(), timeout=5, url="https://h/r.git")
    assert not [key for key in _config(env) if key.lower().endswith("extraheader")]


@pytest.mark.parametrize(
    ("url", "scope"),
    [
        ("https://git.example.com:8443/org/r.git?x=1#f", "https://git.example.com:8443/org/r.git"),
        ("https://bot:pw@git.example.com/r.git", "https://git.example.com/r.git"),
        ("http://127.0.0.1:9/shop", "http://127.0.0.1:9/shop"),
    ],
)
def test_the_token_header_is_scoped_to_the_remotes_url(url: str, scope: str) -> None:
    config = _config(git_env(Credentials(token=Secret(TOKEN)), timeout=5, url=url, allow_insecure=True))
    assert [key for key in config if key.lower().endswith("extraheader")] == [f"http.{scope}.extraHeader"]


@pytest.mark.parametrize("url", ["ssh://git@h/r", "file:///r", "git@h:org/r.git", ""])
def test_the_token_header_is_never_set_for_other_transports(url: str) -> None:
    config = _config(git_env(Credentials(token=Secret(TOKEN)), timeout=5, url=url))
    assert not [key for key in config if key.lower().endswith("extraheader")]
    assert not [secret for secret in Credentials(token=Secret(TOKEN)).secrets() if secret in repr(config)]


def test_redirects_are_not_followed_and_clear_text_protocols_are_off_by_default() -> None:
    config = _config(git_env(Credentials(), timeout=5, url="https://h/r.git"))
    assert config["http.followRedirects"] == "false"
    assert config["protocol.http.allow"] == config["protocol.git.allow"] == "never"
    assert config["protocol.https.allow"] == config["protocol.ssh.allow"] == "always"
    opted_in = _config(git_env(Credentials(), timeout=5, url="http://h/r", allow_insecure=True))
    assert opted_in["protocol.http.allow"] == opted_in["protocol.git.allow"] == "always"


def test_ssh_command_uses_the_key_and_host_key_settings() -> None:
    creds = Credentials(
        ssh_key_file=Path("/keys/deploy key"),
        known_hosts_file=Path("/keys/known_hosts"),
        strict_host_key_checking=HostKeyChecking.ACCEPT_NEW,
    )
    argv = shlex.split(ssh_command(creds, connect_timeout=4.5))
    assert argv[0] == "ssh"
    assert argv[argv.index("-i") + 1] == "/keys/deploy key"
    for option in ("BatchMode=yes", "ConnectTimeout=4", "StrictHostKeyChecking=accept-new",
                   "UserKnownHostsFile=/keys/known_hosts", "IdentitiesOnly=yes"):  # fmt: skip
        assert option in argv
    assert "StrictHostKeyChecking=yes" in shlex.split(ssh_command(Credentials(), 10))


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("fatal: Authentication failed for 'https://h/r.git/'", FailureKind.AUTH),
        ("fatal: could not read Username for 'http://h': terminal prompts disabled", FailureKind.AUTH),
        (
            "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.",
            FailureKind.AUTH,
        ),
        ("Host key verification failed.", FailureKind.AUTH),
        ("fatal: repository 'https://h/x.git/' not found", FailureKind.NOT_FOUND),
        (
            "remote: Repository not found.\nfatal: repository 'https://h/x.git/' not found",
            FailureKind.NOT_FOUND,
        ),
        ("fatal: '/srv/x.git' does not appear to be a git repository", FailureKind.NOT_FOUND),
        ("fatal: unable to access 'http://h/': Failed to connect to h port 80", FailureKind.UNAVAILABLE),
        ("ssh: connect to host h port 22: Connection refused", FailureKind.UNAVAILABLE),
        ("error: RPC failed; curl 28 Operation too slow. Less than 1 bytes/sec", FailureKind.TIMEOUT),
        ("ssh: connect to host h port 22: Connection timed out", FailureKind.TIMEOUT),
        ('Timeout: the command "git fetch" did not complete in 2 secs.', FailureKind.TIMEOUT),
    ],
)
def test_classify_failure(stderr: str, kind: FailureKind) -> None:
    assert classify_failure(stderr) is kind


def test_failure_cause_picks_the_telling_line() -> None:
    assert failure_cause("remote: hi\nfatal: boom\nhint: x\n") == "fatal: boom"
    assert failure_cause("just this\n\n") == "just this"
    assert failure_cause("") == ""
    ssh = "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.\n"
    assert failure_cause(ssh) == "git@h: Permission denied (publickey)"


def test_errors_say_what_happened_and_whether_to_retry() -> None:
    err = RemoteUnavailable("https://h/r.git", "connection refused", last_good="c" * 40)
    assert err.temporary
    assert "https://h/r.git" in str(err) and "c" * 40 in str(err) and "connection refused" in str(err)
    auth = AuthenticationFailed("https://h/r.git", "401")
    assert not auth.temporary and "token" in str(auth)


def test_set_app_version_keeps_comments_and_other_tags() -> None:
    before = (
        "# catalog values\nversion: 1.0.0  # semver\nimage:\n  repository: r/catalog\n  tag: 1.0.0\n"
        "sidecar:\n  tag: 9.9\n"
    )
    after = set_app_version(before, "1.10.0")
    assert after == (
        '# catalog values\nversion: "1.10.0"  # semver\nimage:\n  repository: r/catalog\n  tag: "1.10.0"\n'
        "sidecar:\n  tag: 9.9\n"
    )


def test_set_app_version_falls_back_to_a_structural_edit() -> None:
    import yaml

    after = yaml.safe_load(set_app_version("image: {repository: r/x}\nreplicas: 2\n", "2.0.0"))
    assert after == {"image": {"repository": "r/x", "tag": "2.0.0"}, "replicas": 2, "version": "2.0.0"}


LS_TREE = (
    "100644 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391   12582912\tapps/shop/big.bin\0"
    "120000 blob 1234567890123456789012345678901234567890       9\tapps/shop/link\0"
    "100644 blob 0123456789012345678901234567890123456789    1024\tapps/shop/a b\tc.yaml\0"
    "160000 commit 0123456789012345678901234567890123456789       -\tvendor/sub\0"
)


def test_parse_ls_tree_lists_blobs_with_their_sizes() -> None:
    assert parse_ls_tree(LS_TREE) == [
        ("apps/shop/big.bin", 12 * MIB),
        ("apps/shop/link", 9),
        ("apps/shop/a b\tc.yaml", 1024),
    ]
    assert parse_ls_tree("") == []


def test_size_problems_name_each_file_over_the_cap_and_the_total() -> None:
    entries = parse_ls_tree(LS_TREE)
    assert size_problems(entries, SizeCaps()) == ["apps/shop/big.bin is 12 MiB, over the 10 MiB cap per file"]
    assert size_problems(entries, SizeCaps(file_bytes=20 * MIB, tree_bytes=8 * MIB)) == [
        "its files add up to 12.0 MiB, over the 8 MiB cap per commit"
    ]
    assert size_problems(entries, SizeCaps(file_bytes=20 * MIB)) == []
    many = [(f"f{i}", 2048) for i in range(8)]
    assert size_problems(many, SizeCaps(file_bytes=1024))[-1] == "and 3 more files over the cap"


def test_repository_bytes_and_human_sizes() -> None:
    assert repository_bytes("count: 3\nsize: 12\nin-pack: 9\npacks: 1\nsize-pack: 100\n") == 112 * 1024
    assert (human_size(4096), human_size(2 * MIB), human_size(MIB + MIB // 2)) == ("4 KiB", "2 MiB", "1.5 MiB")


def test_mirror_housekeeping_is_due_at_most_once_per_interval() -> None:
    assert gc_due(None, 1000.0, 3600.0)
    assert not gc_due(1000.0, 1000.0 + 3599, 3600.0)
    assert gc_due(1000.0, 1000.0 + 3600, 3600.0)
    assert gc_due(5000.0, 1000.0, 3600.0), "a clock that went back does not stop it for ever"

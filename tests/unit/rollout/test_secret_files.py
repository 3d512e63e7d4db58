"""The controller's secrets come from files (a mounted Secret), environment variables only for
compatibility; SSH host keys from the operator's known_hosts file, checked strictly by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout.cli.controller import controller
from rollout.controller import SecretFileError, read_secret


def test_a_secret_file_is_read_and_preferred_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_GIT_TOKEN", "from-the-environment")
    token = tmp_path / "git-token"
    token.write_text("from-the-file\n")  # `echo token > file` leaves a newline: not part of it
    token.chmod(0o400)
    assert read_secret(str(token), "ROLLOUT_GIT_TOKEN") == "from-the-file"
    assert read_secret(None, "ROLLOUT_GIT_TOKEN") == "from-the-environment", "compatibility without the flag"
    assert read_secret(None, None) is None


def test_an_absent_file_is_an_absent_optional_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_GIT_TOKEN", "not-used-when-a-file-is-named")
    assert read_secret(str(tmp_path / "git-token"), "ROLLOUT_GIT_TOKEN") is None
    (tmp_path / "empty").write_text("\n")
    assert read_secret(str(tmp_path / "empty"), None) is None


def test_an_unreadable_secret_file_stops_the_start_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match=r"cannot read the secret file .*git-token.*defaultMode 0440"):
        (tmp_path / "git-token").mkdir()  # a folder, as a wrong mount would give
        read_secret(str(tmp_path / "git-token"), None)
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    with pytest.raises(SecretFileError, match="binary"):
        read_secret(str(tmp_path / "binary"), None)


def test_the_cli_takes_secret_files_and_known_hosts_and_checks_host_keys_strictly_by_default() -> None:
    args = ["--repo=https://git.example.com/r.git", "--git-token-file=/s/git-token", "--webhook-secret-file=/s/hook"]
    params = controller.make_context("controller", [*args, "--git-known-hosts=/ssh/known_hosts"]).params
    assert params["git_token_file"] == "/s/git-token" and params["webhook_secret_file"] == "/s/hook"
    assert params["git_known_hosts"] == "/ssh/known_hosts"
    assert params["git_host_key_checking"] == "yes" and params["allow_insecure_git"] is False
    loose = controller.make_context("controller", [*args, "--git-host-key-checking=accept-new"]).params
    assert loose["git_host_key_checking"] == "accept-new"
    with pytest.raises(Exception, match="maybe"):
        controller.make_context("controller", [*args, "--git-host-key-checking=maybe"])

"""Pure helpers of Git sync: redaction, path rules, changed-path -> app mapping, git environment.

Nothing here touches the disk, the network or a subprocess, so all of it is unit-tested directly.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from urllib.parse import SplitResult, urlsplit, urlunsplit

REDACTED = "***"
APPS_DIR = "apps"
# A change under one of these prefixes affects every app (shared inputs of rendering).
GLOBAL_PREFIXES: tuple[str, ...] = ("regions/",)
# Transports the controller uses by default; `file` is for tests and the lab on one machine.
SECURE_SCHEMES = frozenset({"file", "https", "ssh"})
# Clear-text transports (no integrity, a token readable on the wire): only with the operator's
# explicit opt-in (`rollout controller --allow-insecure-git`).
INSECURE_SCHEMES = frozenset({"git", "http"})
ALLOWED_SCHEMES = SECURE_SCHEMES | INSECURE_SCHEMES
_SHA_RE = re.compile(r"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
# userinfo inside any URL-looking text (stderr of git, exception messages).
_URL_USERINFO_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


class Secret:
    """A string that never shows itself in repr/str/logs; `reveal()` is the only way out."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class HostKeyChecking(StrEnum):
    """OpenSSH StrictHostKeyChecking values; `yes` with a known_hosts file is the safe default."""

    YES = "yes"
    ACCEPT_NEW = "accept-new"
    NO = "no"


@dataclass(frozen=True)
class Credentials:
    """How to authenticate to a remote. Token for http(s), key for ssh; both optional."""

    token: Secret | None = field(default=None, repr=False)
    # GitHub/Gitea accept any user name with a token; GitLab wants `oauth2`.
    username: str = "x-access-token"
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    strict_host_key_checking: HostKeyChecking = HostKeyChecking.YES

    def secrets(self) -> list[str]:
        """Every string that must never appear in output, including encoded forms."""
        if not self.token:
            return []
        raw = self.token.reveal()
        return [raw, _basic_auth(self.username, raw)]


def _basic_auth(username: str, token: str) -> str:
    return base64.b64encode(f"{username}:{token}".encode()).decode("ascii")


# --- URLs ----------------------------------------------------------------------------------------


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """Return (url without userinfo, user, password). Non-URL paths come back unchanged."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    clean = urlunsplit(SplitResult(parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, user or None, (password if sep else None)


def redact_url(url: str) -> str:
    """A URL fit for logs: userinfo and query string values replaced by ***."""
    parts = urlsplit(url)
    if not parts.scheme:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = "&".join(f"{kv.partition('=')[0]}={REDACTED}" if "=" in kv else kv for kv in parts.query.split("&") if kv)
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove URL userinfo and every literal secret from free text (stderr, messages)."""
    text = _URL_USERINFO_RE.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    # Longest first, so a secret containing another is not half-replaced.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def check_remote_url(url: str, *, allow_insecure: bool = False) -> None:
    """Refuse transports that can run commands (ext::, fd::), that we do not support, and the
    clear-text ones (http, git) unless the operator opted into them."""
    parts = urlsplit(url)
    if "::" in url.split("/", 1)[0]:
        raise ValueError(f"unsupported git transport in {redact_url(url)!r}: use https or ssh")
    if parts.scheme and parts.scheme not in ALLOWED_SCHEMES and len(parts.scheme) > 1:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {redact_url(url)!r}: use https or ssh")
    if parts.scheme in INSECURE_SCHEMES and not allow_insecure:
        raise ValueError(
            f"insecure git transport {parts.scheme!r} in {redact_url(url)!r}: it has no encryption or "
            "integrity; use https or ssh (or pass --allow-insecure-git, for a lab only)"
        )


def url_scope(url: str) -> str:
    """The remote's URL as git's `http.<url>.*` config matches it: no userinfo, query or fragment."""
    clean, _, _ = split_userinfo(url)
    parts = urlsplit(clean)
    return urlunsplit(SplitResult(parts.scheme, parts.netloc, parts.path, "", ""))


def cache_key(url: str) -> str:
    """A readable, filesystem-safe directory name for a remote's mirror."""
    import hashlib

    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    tail = PurePosixPath(urlsplit(url).path or url).name.removesuffix(".git") or "repo"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", tail)[:40]
    return f"{slug}-{digest}.git"


# --- paths and commits ---------------------------------------------------------------------------


def is_full_sha(rev: str) -> bool:
    return bool(_SHA_RE.match(rev))


def normalize_repo_path(path: str) -> str:
    """A repository-relative POSIX path, or ValueError for absolute paths and `..` escapes."""
    if not path or "\0" in path or "\\" in path:
        raise ValueError(f"invalid repository path {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"repository path {path!r} must be relative and must not contain '..'")
    normalized = str(pure)
    if normalized in ("", "."):
        raise ValueError(f"invalid repository path {path!r}")
    return normalized


def app_of_path(path: str) -> str | None:
    """`apps/<app>/...` -> `<app>`; anything else -> None."""
    parts = PurePosixPath(path).parts
    if len(parts) >= 3 and parts[0] == APPS_DIR:
        return parts[1]
    return None


def apps_for_paths(
    paths: Iterable[str],
    known_apps: Iterable[str],
    global_prefixes: tuple[str, ...] = GLOBAL_PREFIXES,
) -> set[str]:
    """Apps affected by a set of changed paths.

    A path under `apps/<app>/` affects that app (also when the app was deleted); a path under a
    global prefix (`regions/`) affects every known app.
    """
    known = set(known_apps)
    affected: set[str] = set()
    for path in paths:
        if any(path.startswith(prefix) for prefix in global_prefixes):
            affected |= known
        elif (app := app_of_path(path)) is not None:
            affected.add(app)
    return affected


# --- how git is invoked --------------------------------------------------------------------------


def ssh_command(creds: Credentials, connect_timeout: float) -> str:
    """GIT_SSH_COMMAND: our key only, no prompts, host keys checked as configured."""
    options = [
        "BatchMode=yes",
        f"ConnectTimeout={max(1, int(connect_timeout))}",
        f"StrictHostKeyChecking={creds.strict_host_key_checking.value}",
        # Fail on a silent hang of an established session too.
        "ServerAliveInterval=5",
        "ServerAliveCountMax=2",
    ]
    if creds.known_hosts_file is not None:
        options += [f"UserKnownHostsFile={creds.known_hosts_file}", "GlobalKnownHostsFile=/dev/null"]
    identity: list[str] = []
    if creds.ssh_key_file is not None:
        options += ["IdentitiesOnly=yes", "IdentityAgent=none"]
        identity = ["-i", str(creds.ssh_key_file)]
    return shlex.join(["ssh", *identity, *(arg for opt in options for arg in ("-o", opt))])


def git_config_env(config: Mapping[str, str]) -> dict[str, str]:
    """Pass git config through the environment (GIT_CONFIG_COUNT...), never through argv."""
    env = {"GIT_CONFIG_COUNT": str(len(config))}
    for i, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def git_env(
    creds: Credentials,
    timeout: float,
    extra_config: Mapping[str, str] | None = None,
    *,
    url: str = "",
    allow_insecure: bool = False,
) -> dict[str, str]:
    """Environment for a network git command.

    Isolated from the user's and system git config (no surprise credential helpers or URL
    rewrites), never prompting, only the transports allowed, no redirects, stalls cut by git's own
    low-speed limit. The token travels as an HTTP header in the environment: not in argv (visible
    in `ps`), not in the URL (stored in config, echoed in errors); the header is scoped to the
    remote's URL (`http.<url>.extraHeader`), so git sends it to no other host, and redirects are
    not followed (a redirect would carry the header to the host it names).
    """
    insecure = "always" if allow_insecure else "never"
    config: dict[str, str] = {
        "credential.helper": "",
        "protocol.allow": "never",
        "protocol.file.allow": "always",
        "protocol.https.allow": "always",
        "protocol.ssh.allow": "always",
        "protocol.http.allow": insecure,
        "protocol.git.allow": insecure,
        "http.followRedirects": "false",
        "http.lowSpeedLimit": "1",
        "http.lowSpeedTime": str(max(1, int(timeout))),
        "gc.auto": "0",
        "core.symlinks": "true",
        "core.autocrlf": "false",
    }
    config.update(token_header_config(creds, url))
    config.update(extra_config or {})
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_SSH_COMMAND": ssh_command(creds, timeout),
        "GIT_SSH_VARIANT": "ssh",
    }
    env.update(git_config_env(config))
    return env


def token_header_config(creds: Credentials, url: str) -> dict[str, str]:
    """`http.<remote URL>.extraHeader` carrying the token, for an http(s) remote only; else nothing."""
    if not creds.token or urlsplit(url).scheme not in ("http", "https"):
        return {}
    basic = _basic_auth(creds.username, creds.token.reveal())
    return {f"http.{url_scope(url)}.extraHeader": f"Authorization: Basic {basic}"}


# --- size caps -----------------------------------------------------------------------------------

MIB = 1024 * 1024


@dataclass(frozen=True)
class SizeCaps:
    """What one repository may take on the controller's disk (an emptyDir of 2 GiB in the pod).

    A file over `file_bytes` or a commit whose files add up to over `tree_bytes` is not adopted
    (the whole tree is checked out per commit); a mirror over `repository_bytes` after a fetch
    stops syncing. Either way the last good commit keeps serving."""

    file_bytes: int = 10 * MIB
    tree_bytes: int = 128 * MIB
    repository_bytes: int = 512 * MIB


def parse_ls_tree(output: str) -> list[tuple[str, int]]:
    """`git ls-tree -r -l -z` -> [(path, size)] of its blobs (symlinks included, submodules not)."""
    entries = []
    for record in output.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        fields = meta.split()
        if len(fields) == 4 and fields[1] == "blob" and fields[3].isdigit():
            entries.append((path, int(fields[3])))
    return entries


def size_problems(entries: Iterable[tuple[str, int]], caps: SizeCaps) -> list[str]:
    """What is over the caps in one commit's files, largest first; empty when it fits."""
    listed = list(entries)
    big = sorted((e for e in listed if e[1] > caps.file_bytes), key=lambda e: -e[1])
    cap = human_size(caps.file_bytes)
    problems = [f"{path} is {human_size(size)}, over the {cap} cap per file" for path, size in big[:5]]
    if len(big) > 5:
        problems.append(f"and {len(big) - 5} more files over the cap")
    total = sum(size for _, size in listed)
    if total > caps.tree_bytes:
        total_cap = human_size(caps.tree_bytes)
        problems.append(f"its files add up to {human_size(total)}, over the {total_cap} cap per commit")
    return problems


def repository_bytes(count_objects: str) -> int:
    """Bytes on disk from `git count-objects -v` (loose `size` + `size-pack`, both in KiB)."""
    values = dict(line.split(": ", 1) for line in count_objects.splitlines() if ": " in line)
    return sum(int(values.get(key, "0") or 0) for key in ("size", "size-pack")) * 1024


def gc_due(last_gc: float | None, now: float, interval: float) -> bool:
    """Housekeeping of the mirror at most once per `interval` seconds (never on every poll)."""
    return last_gc is None or now - last_gc >= interval or now < last_gc


def human_size(size: int) -> str:
    """2 MiB, 2.5 MiB, 4 KiB: what a message about a size cap shows."""
    if size < MIB:
        return f"{size / 1024:.0f} KiB" if size % 1024 else f"{size // 1024} KiB"
    return f"{size / MIB:.1f} MiB" if size % MIB else f"{size // MIB} MiB"


class FailureKind(StrEnum):
    TIMEOUT = "timeout"
    AUTH = "auth"
    NOT_FOUND = "not-found"
    UNAVAILABLE = "unavailable"


_TIMEOUT_MARKERS = ("operation too slow", "timed out")
_AUTH_MARKERS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "permission denied",
    "the requested url returned error: 401",
    "the requested url returned error: 403",
    "host key verification failed",
)
_NOT_FOUND_MARKERS = (
    "repository not found",
    "' not found",  # fatal: repository 'https://host/x.git/' not found
    "does not appear to be a git repository",
    "the requested url returned error: 404",
    "not a git repository",
)


def classify_failure(stderr: str) -> FailureKind:
    """Map git's stderr to what the caller should do: fix config (auth, not found) or retry."""
    low = stderr.lower()
    if low.startswith("timeout:") or any(m in low for m in _TIMEOUT_MARKERS):
        return FailureKind.TIMEOUT
    if any(m in low for m in _AUTH_MARKERS):
        return FailureKind.AUTH
    if any(m in low for m in _NOT_FOUND_MARKERS):
        return FailureKind.NOT_FOUND
    return FailureKind.UNAVAILABLE


def failure_cause(stderr: str, limit: int = 300) -> str:
    """The most telling line of git's stderr: a recognised cause, else the last fatal/error line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    markers = _AUTH_MARKERS + _NOT_FOUND_MARKERS
    telling = [ln for ln in lines if any(m in ln.lower() for m in markers)]
    fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    chosen = (telling or fatal or lines or [""])[-1]
    return chosen[:limit].rstrip(".")

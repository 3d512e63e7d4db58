"""Git sync: a local mirror of the rollout repository, read at pinned commits.

Public API: `GitSource` (the protocol), `GitMirror` (its implementation), `Credentials`/`Secret`,
`SyncResult` and the typed errors. Pure helpers live in `rollout.gitsync.pure`.
"""

from rollout.gitsync.mirror import GitMirror
from rollout.gitsync.model import (
    AuthenticationFailed,
    GitError,
    GitSource,
    PathNotFound,
    RemoteTimeout,
    RemoteUnavailable,
    RepositoryNotFound,
    RevisionNotFound,
    SyncResult,
    TooLarge,
    UnsafePath,
)
from rollout.gitsync.pure import Credentials, HostKeyChecking, Secret, SizeCaps, redact_text, redact_url

__all__ = [
    "AuthenticationFailed",
    "Credentials",
    "GitMirror",
    "GitSource",
    "GitError",
    "HostKeyChecking",
    "PathNotFound",
    "RemoteTimeout",
    "RemoteUnavailable",
    "RepositoryNotFound",
    "RevisionNotFound",
    "Secret",
    "SizeCaps",
    "SyncResult",
    "TooLarge",
    "UnsafePath",
    "redact_text",
    "redact_url",
]

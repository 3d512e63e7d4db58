"""Permanent or transient: what the controller does when a release's commit cannot be loaded.

A permanent error gives the same answer on every try (the commit is gone after a force-push, a
Release names a commit the repository never had): the release fails once, with the message in its
status, one Warning Event and one log line. Anything else may pass on a later try (the render
helper restarting, a busy machine hitting a limit, the home cluster answering 5xx): the caller
retries it after a growing delay (`Retries`), one log line per attempt, never a traceback per pass.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rollout.gitsync import GitError
from strategies.errors import Backoff

RETRY = Backoff(initial=2.0, factor=2.0, maximum=300.0)


def permanent_reason(exc: BaseException, app: str, commit: str) -> str | None:
    """The message for a permanent failure to load `app` at `commit`, None if retrying may help."""
    if isinstance(exc, KeyError):
        return (
            f"app {app!r} does not exist at commit {commit[:12]}: nothing of this release can be rendered. "
            "Fix: push a commit with apps/" + app + "/ (its release takes over)"
        )
    if isinstance(exc, GitError) and not exc.temporary:
        return (
            f"commit {commit[:12]} cannot be read from the repository ({exc}); a force-push may have "
            "removed it: nothing more of this release can be rendered or applied. "
            "Fix: push a commit (a fix or a revert); its release takes over"
        )
    return None


class Retries:
    """When a key (a release name) that failed may be tried again: exponential backoff.

    Pure apart from the backoff's jitter; the time is an argument."""

    def __init__(self, backoff: Backoff = RETRY) -> None:
        self._backoff = backoff
        self._failed: dict[str, tuple[int, datetime]] = {}  # failures in a row, next try

    def due(self, key: str, now: datetime) -> bool:
        failed = self._failed.get(key)
        return failed is None or now >= failed[1]

    def failed(self, key: str, now: datetime) -> float:
        """Record a failure; returns the delay in seconds until the next try."""
        count = self._failed.get(key, (0, now))[0]
        delay = self._backoff.delay(count)
        self._failed[key] = (count + 1, now + timedelta(seconds=delay))
        return delay

    def succeeded(self, key: str) -> None:
        self._failed.pop(key, None)

    def forget(self, keep: set[str]) -> None:
        """Drop what is known of keys no longer seen (deleted releases)."""
        for key in set(self._failed) - keep:
            del self._failed[key]

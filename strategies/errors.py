"""Typed errors from a region's cluster and the one retry policy (STYLE 7)."""

from __future__ import annotations

import random
from dataclasses import dataclass


class ClusterError(Exception):
    """Base of every error the cluster adapter raises."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class TemporaryError(ClusterError):
    """Retry after a delay: conflicts on resourceVersion, timeouts, 429 and 5xx answers."""


class Unreachable(TemporaryError):
    """The region's API server does not answer (connection refused, DNS, TLS): the wave waits."""


class PermanentError(ClusterError):
    """Retrying gives the same answer: fail the step with `reason`."""

    def __init__(self, message: str, *, reason: str, status: int | None = None):
        super().__init__(message, status=status)
        self.reason = reason


class ApplyConflict(PermanentError):
    """Server-side apply found fields owned by another field manager; we never force them."""

    def __init__(self, message: str, *, managers: tuple[str, ...] = (), status: int | None = 409):
        super().__init__(message, reason="ApplyConflict", status=status)
        self.managers = managers


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: delay(n) for the n-th retry (0-based)."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    attempts: int = 5
    jitter: float = 0.1

    def delay(self, retry: int) -> float:
        base = min(self.maximum, self.initial * self.factor**retry)
        return base * (1 + random.uniform(-self.jitter, self.jitter))


def classify(
    status: int | None, reason: str, message: str, *, causes: tuple[dict[str, object], ...] = ()
) -> ClusterError:
    """An API answer -> typed error. `reason` is the Status reason (Conflict, Forbidden, ...)."""
    text = f"{reason or 'Error'} ({status}): {message}" if status else message
    if status == 409 and any(
        str(c.get("reason") or c.get("type") or "").startswith("FieldManagerConflict") for c in causes
    ):
        managers = tuple(
            sorted({str(c.get("message", "")).split('"')[1] for c in causes if '"' in str(c.get("message", ""))})
        )
        return ApplyConflict(f"fields owned by another manager: {message}", managers=managers)
    if status == 422 and "field is immutable" in message:
        fields = sorted(
            {str(c.get("field")) for c in causes if "immutable" in str(c.get("message", "")) and c.get("field")}
        ) or ["(see the message)"]
        return PermanentError(
            f"{text}. Immutable field {', '.join(fields)}: this object cannot be updated in place. "
            "Fix: give the changed object a new name (a Job gets the release number in its name "
            "automatically), or delete the live object so that the next release creates it",
            reason="ImmutableField",
            status=status,
        )
    if status is None or status in (408, 409, 429) or status >= 500:
        return TemporaryError(text, status=status)
    names = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 410: "Gone", 422: "Invalid", 400: "BadRequest"}
    return PermanentError(text, reason=names.get(status, reason or f"HTTP{status}"), status=status)

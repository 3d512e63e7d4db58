"""Classification of API answers into temporary and permanent errors; the retry policy."""

import pytest

from strategies.cluster import KubernetesCluster, to_cluster_error
from strategies.errors import ApplyConflict, Backoff, PermanentError, TemporaryError, Unreachable, classify

CASES = [
    (409, "Conflict", "the object has been modified", (), TemporaryError, ""),
    (
        409,
        "Conflict",
        "Apply failed with 1 conflict",
        ({"reason": "FieldManagerConflict", "field": ".spec.replicas", "message": 'conflict with "kubectl-edit"'},),
        ApplyConflict,
        "ApplyConflict",
    ),
    (429, "TooManyRequests", "slow down", (), TemporaryError, ""),
    (500, "InternalError", "etcd", (), TemporaryError, ""),
    (503, "ServiceUnavailable", "", (), TemporaryError, ""),
    (504, "Timeout", "", (), TemporaryError, ""),
    (408, "Timeout", "", (), TemporaryError, ""),
    (403, "Forbidden", "cannot patch deployments", (), PermanentError, "Forbidden"),
    (401, "Unauthorized", "", (), PermanentError, "Unauthorized"),
    (422, "Invalid", "spec.replicas: Invalid value", (), PermanentError, "Invalid"),
    (404, "NotFound", 'namespaces "x" not found', (), PermanentError, "NotFound"),
]


@pytest.mark.parametrize(
    ("status", "reason", "message", "causes", "kind", "named"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[4].__name__}" for c in CASES],
)
def test_classify(status, reason, message, causes, kind, named) -> None:  # type: ignore[no-untyped-def]
    error = classify(status, reason, message, causes=causes)
    assert type(error) is kind
    if named:
        assert error.reason == named  # type: ignore[attr-defined]
    if kind is ApplyConflict:
        assert error.managers == ("kubectl-edit",)  # type: ignore[attr-defined]


def test_connection_errors_are_unreachable() -> None:
    assert isinstance(to_cluster_error(ConnectionRefusedError("refused")), Unreachable)


def test_backoff_grows_and_is_bounded() -> None:
    b = Backoff(initial=1, factor=2, maximum=5, jitter=0)
    assert [b.delay(n) for n in range(5)] == [1, 2, 4, 5, 5]


def test_temporary_errors_are_retried_then_raised_and_permanent_ones_at_once() -> None:
    cluster = KubernetesCluster.__new__(KubernetesCluster)
    slept: list[float] = []
    cluster.backoff, cluster.sleep = Backoff(attempts=3, jitter=0), slept.append
    calls = {"n": 0}

    def flaky():  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] < 3:
            raise TemporaryError("busy", status=503)
        return "ok"

    assert cluster._call(flaky) == "ok" and slept == [0.5, 1.0]

    def always():  # type: ignore[no-untyped-def]
        raise TemporaryError("busy", status=503)

    with pytest.raises(TemporaryError):
        cluster._call(always)

    def forbidden():  # type: ignore[no-untyped-def]
        calls["n"] += 100
        raise PermanentError("no", reason="Forbidden", status=403)

    before = calls["n"]
    with pytest.raises(PermanentError):
        cluster._call(forbidden)
    assert calls["n"] == before + 100  # not retried

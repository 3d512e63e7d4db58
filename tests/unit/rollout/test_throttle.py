"""The client-side rate limit (rollout/throttle.py): a token bucket with reservations."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from rollout import metrics
from rollout.throttle import TokenBucket, throttled


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_fresh_bucket_lets_the_burst_go_at_once_then_paces_at_qps() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=10, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # the 4th and 5th wait for the refill, in the order they reserved: 0.1 s, then 0.2 s
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)


def test_tokens_refill_with_time_up_to_the_burst_and_no_further() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=10, burst=3, clock=clock)
    for _ in range(3):
        bucket.reserve()
    clock.now += 0.2  # two tokens back
    assert [bucket.reserve() for _ in range(2)] == [0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    clock.now += 60  # an hour idle refills to the burst, not to 600 tokens
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() > 0


def test_a_sustained_load_is_paced_at_qps() -> None:
    """1,000 requests at 50 qps with a burst of 100 take (1000 - 100) / 50 = 18 s of waits in all,
    whatever the number of threads that send them."""
    clock = Clock()
    bucket = TokenBucket(qps=50, burst=100, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        for _ in range(n):
            w = bucket.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=send, args=(250,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(waits) == 1000
    assert max(waits) == pytest.approx((1000 - 100) / 50)
    assert sum(1 for w in waits if w == 0.0) == 100


def test_no_limit_when_qps_is_zero() -> None:
    bucket = TokenBucket(qps=0, burst=1)
    assert all(bucket.reserve() == 0.0 for _ in range(10_000))


def test_a_burst_below_one_with_a_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="burst 0"):
        TokenBucket(qps=5, burst=0)


class Rest:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> str:
        self.sent.append((method, url))
        return "ok"


class ApiClient:
    def __init__(self) -> None:
        self.rest_client = Rest()


def test_the_wrapped_client_sleeps_before_requests_beyond_the_burst_and_counts_the_wait() -> None:
    api = ApiClient()
    slept: list[float] = []
    before = metrics.REGISTRY.get_sample_value("rollout_api_throttle_seconds_total", {"cluster": "test-throttle"})
    throttled(api, "test-throttle", qps=2, burst=2, sleep=slept.append)
    for i in range(4):
        assert api.rest_client.request("GET", f"/api/v1/x/{i}") == "ok"
    assert len(api.rest_client.sent) == 4  # every request still goes, none is dropped
    assert len(slept) == 2 and slept[0] > 0.4 and slept[1] > slept[0]  # 0.5 s then 1 s (less the test's time)
    after = metrics.REGISTRY.get_sample_value("rollout_api_throttle_seconds_total", {"cluster": "test-throttle"})
    assert after == pytest.approx((before or 0.0) + sum(slept))


def test_qps_zero_leaves_the_client_untouched() -> None:
    api = ApiClient()
    original = api.rest_client.request
    throttled(api, "test-throttle-off", qps=0, burst=1, sleep=lambda s: pytest.fail("slept"))
    assert api.rest_client.request == original

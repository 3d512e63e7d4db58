"""What the metrics provider makes of Prometheus' bad answers, through its real HTTP client: a 500,
an answer slower than the timeout, a NaN sample and an empty vector. None of them is ever a pass.

A small HTTP server stands in for Prometheus' query API, so each answer can be forced; the lab
tests (tests/integration/analysis/) cover a real Prometheus stopped mid-window.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from regions.analysis import Analyzer, PrometheusProvider, Target
from regions.analysis.model import Verdict
from regions.analysis.runner import run_analysis
from tests.unit.analysis.helpers import T0, check
from tests.unit.analysis.test_runner import Clock

TARGET = Target(app="checkout", region="eu-west", release="abc123def456", version="1.5.0", stable_version="1.4.2")
TIMEOUT_S = 0.5


class StandIn:
    """Answers every query the way `answer` says: "ok", "nan", "empty", "500" or "slow"."""

    def __init__(self) -> None:
        self.answer = "ok"
        self.queries = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.queries += 1
                if stand_in.answer == "500":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"internal error")
                    return
                if stand_in.answer == "slow":
                    time.sleep(4 * TIMEOUT_S)
                sample = {"nan": [{"metric": {}, "value": [1, "NaN"]}], "empty": []}
                result = sample.get(stand_in.answer, [{"metric": {}, "value": [1, "0"]}])
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def analyzer(self) -> Analyzer:
        return Analyzer(PrometheusProvider(self.url, timeout_s=TIMEOUT_S), TARGET)


@pytest.fixture
def prometheus() -> Iterator[StandIn]:
    stand_in = StandIn()
    thread = threading.Thread(target=stand_in.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        stand_in.server.shutdown()
        stand_in.server.server_close()


def test_a_healthy_answer_passes_so_the_stand_in_is_understood(prometheus: StandIn) -> None:
    assert prometheus.analyzer().measure(check(), T0).verdict is Verdict.SUCCESS


def test_a_500_is_an_error_measurement_naming_the_status(prometheus: StandIn) -> None:
    prometheus.answer = "500"
    m = prometheus.analyzer().measure(check(), T0)
    assert m.verdict is Verdict.ERROR and "500" in m.reason and prometheus.url in m.reason


def test_a_slow_answer_is_cut_at_the_timeout_and_is_an_error(prometheus: StandIn) -> None:
    prometheus.answer = "slow"
    started = time.monotonic()
    m = prometheus.analyzer().measure(check(), T0)
    took = time.monotonic() - started
    assert m.verdict is Verdict.ERROR and "unreachable" in m.reason
    assert took < 3 * TIMEOUT_S, f"waited {took:.2f}s for a {TIMEOUT_S}s timeout"


def test_a_nan_sample_is_inconclusive_never_a_pass(prometheus: StandIn) -> None:
    prometheus.answer = "nan"
    m = prometheus.analyzer().measure(check(), T0)
    assert m.verdict is Verdict.INCONCLUSIVE and "NaN" in m.reason


def test_an_empty_vector_is_inconclusive_never_a_pass(prometheus: StandIn) -> None:
    prometheus.answer = "empty"
    m = prometheus.analyzer().measure(check(), T0)
    assert m.verdict is Verdict.INCONCLUSIVE and "no data" in m.reason


@pytest.mark.parametrize("answer", ["500", "nan", "empty"])
def test_a_window_of_bad_answers_ends_inconclusive_not_pass(prometheus: StandIn, answer: str) -> None:
    prometheus.answer = answer
    clock = Clock(T0)
    result = run_analysis(
        prometheus.analyzer(), [check()], duration=timedelta(seconds=60), clock=clock, sleep=clock.sleep
    )
    assert result.outcome is Verdict.INCONCLUSIVE, result.state.reason
    assert prometheus.queries >= 2 and not any(m.verdict is Verdict.SUCCESS for m in result.run.measurements)

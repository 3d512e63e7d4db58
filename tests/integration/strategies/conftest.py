"""Fixtures for the strategies' lab tests: a region cluster adapter, a simulated app, timings."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from strategies.cluster import KubernetesCluster

REGION = "eu-west"  # in the lab's default regions and in the example repository
TIMINGS = Path(os.environ.get("STRATEGIES_LAB_TIMINGS", Path(tempfile.gettempdir()) / "strategies-lab-timings.json"))


@dataclass
class Timings:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def record(self, scenario: str, outcome: str, seconds: float) -> None:
        self.rows.append({"scenario": scenario, "outcome": outcome, "seconds": round(seconds, 1)})


@pytest.fixture(scope="session")
def timings() -> Iterator[Timings]:
    t = Timings()
    yield t
    TIMINGS.write_text(json.dumps(t.rows, indent=1))
    print("\n".join(f"{r['scenario']:<60} {r['outcome']:<28} {r['seconds']:>6.1f}s" for r in t.rows))


@pytest.fixture
def region(lab: Any, lab_namespace: str) -> tuple[Callable[[], KubernetesCluster], str]:
    """(a factory of fresh cluster adapters for eu-west, the test's namespace)."""
    contexts = lab.region_contexts
    if REGION not in contexts:
        pytest.fail(f"the strategies' lab tests need region {REGION}; ROLLOUT_LAB_REGIONS lists {sorted(contexts)}")
    return (lambda: KubernetesCluster(str(lab.kubeconfig), contexts[REGION])), lab_namespace


@pytest.fixture
def stopwatch() -> Callable[[], float]:
    start = time.monotonic()
    return lambda: time.monotonic() - start

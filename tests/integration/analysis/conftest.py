"""Fixtures: the analysis lab (see helpers.py), started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.lab import prometheus as prom
from deploy.lab.simulator import process as simulator_process
from deploy.lab.simulator.model import AppSpec, RegionSpec
from deploy.lab.simulator.server import SimulatorConfig
from tests.integration.analysis.helpers import APP, APP_RPS, REGION, AnalysisLab, start_prometheus


@pytest.fixture(scope="session")
def analysis_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnalysisLab]:
    state = tmp_path_factory.mktemp("analysis-lab")
    config = SimulatorConfig(
        regions=[RegionSpec(REGION, REGION, 1.0)],
        apps=[AppSpec(APP, rate_rps=APP_RPS)],
        source="static",
        static={},
        seed=11,
    )
    sim = simulator_process.start(config, state)
    try:
        handle = start_prometheus(state, sim.target)
        try:
            yield AnalysisLab(sim.client(), handle, sim.target)
        finally:
            prom.stop(handle)
    finally:
        simulator_process.stop(sim)


@pytest.fixture
def alab(analysis_lab: AnalysisLab) -> Iterator[AnalysisLab]:
    """The session's analysis lab, with faults cleared after each test."""
    yield analysis_lab
    analysis_lab.client.clear_faults()

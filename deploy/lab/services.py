"""The lab's metrics side: a Prometheus and the traffic simulator, started for a running lab.

`rollout-lab up` calls `start(lab, state_dir)` once the clusters answer; `lab down` calls `stop`
(or `stop_from_state` when only the state folder is left after a crash).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog
import yaml

from . import prometheus
from .simulator import process as simulator_process
from .simulator.client import SimulatorClient
from .simulator.model import AppSpec, RegionSpec
from .simulator.server import SimulatorConfig

log = structlog.get_logger(__name__)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "shop"
SIMULATOR_JOB = "simulator"
DEFAULT_APP_RATE_RPS = 200.0  # per app, all regions together: eu-canary (2 %) still sees 4 rps


class LabLike(Protocol):
    """What the traffic side needs from a running lab (deploy.lab.cluster.Lab provides it)."""

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def region_contexts(self) -> Mapping[str, str]: ...  # region name -> kubeconfig context

    @property
    def home_context(self) -> str: ...


@dataclass(frozen=True)
class StaticLab:
    """A LabLike from plain values (for callers that only have a kubeconfig)."""

    kubeconfig: Path
    region_contexts: Mapping[str, str]
    home_context: str = "home"


def region_shares(regions_dir: Path = EXAMPLE / "regions") -> dict[str, float]:
    """Region name -> trafficShare from the example repository's regions/*.yaml."""
    shares = {}
    for f in sorted(regions_dir.glob("*.yaml")):
        doc = yaml.safe_load(f.read_text()) or {}
        shares[doc["name"]] = float(doc.get("trafficShare", 0.0))
    return shares


def example_apps(apps_dir: Path = EXAMPLE / "apps", rate_rps: float = DEFAULT_APP_RATE_RPS) -> list[AppSpec]:
    """The example repository's apps with their namespaces (rollout.yaml `app`, `namespace`)."""
    apps = []
    for f in sorted(apps_dir.glob("*/rollout.yaml")):
        doc = yaml.safe_load(f.read_text()) or {}
        name = doc.get("app") or f.parent.name
        apps.append(AppSpec(name, doc.get("namespace") or name, rate_rps))
    return apps


@dataclass(frozen=True)
class TrafficOptions:
    scrape_interval_s: float = 1.0
    tick_s: float = 0.1
    poll_s: float = 0.25
    apps: Sequence[AppSpec] | None = None  # None: the example repository's apps
    shares: Mapping[str, float] | None = None  # None: the example repository's trafficShare
    default_share: float = 0.1  # for a lab region the example repository does not know
    seed: int | None = None


@dataclass(frozen=True)
class ServicesHandle:
    state_dir: Path
    prometheus: prometheus.PrometheusHandle
    simulator: simulator_process.SimulatorProcess
    regions: tuple[RegionSpec, ...] = field(default=())

    @property
    def prometheus_url(self) -> str:
        return self.prometheus.url

    @property
    def simulator_url(self) -> str:
        return self.simulator.url

    def client(self) -> SimulatorClient:
        return self.simulator.client()


def regions_for(lab: LabLike, options: TrafficOptions) -> list[RegionSpec]:
    shares = dict(options.shares) if options.shares is not None else region_shares()
    return [
        RegionSpec(name, context, shares.get(name, options.default_share))
        for name, context in sorted(lab.region_contexts.items())
    ]


def start(lab: LabLike, state_dir: Path, options: TrafficOptions | None = None) -> ServicesHandle:
    """Start the simulator (reading the lab's clusters), then a Prometheus scraping it."""
    options = options or TrafficOptions()
    state_dir = Path(state_dir).resolve()
    regions = regions_for(lab, options)
    config = SimulatorConfig(
        regions=regions,
        apps=list(options.apps) if options.apps is not None else example_apps(),
        source="kube",
        kubeconfig=str(Path(lab.kubeconfig).resolve()),
        home_context=lab.home_context,
        tick_s=options.tick_s,
        poll_s=options.poll_s,
        seed=options.seed,
    )
    sim = simulator_process.start(config, state_dir)
    try:
        prom = prometheus.start(
            state_dir,
            prometheus.PrometheusConfig(scrape_interval_s=options.scrape_interval_s),
            targets={SIMULATOR_JOB: [sim.target]},
        )
    except BaseException:
        simulator_process.stop(sim)
        raise
    handle = ServicesHandle(state_dir, prom, sim, tuple(regions))
    try:
        prometheus.wait_for_target(prom, SIMULATOR_JOB)
    except BaseException:
        stop(handle)
        raise
    log.info("lab.traffic.up", prometheus=prom.url, simulator=sim.url, regions=[r.name for r in regions])
    return handle


def load(state_dir: Path) -> ServicesHandle | None:
    """The Prometheus + simulator a previous `start` (e.g. `rollout-lab up`) left running."""
    state_dir = Path(state_dir).resolve()
    prom = prometheus.load(state_dir)
    sim = simulator_process.load(state_dir)
    if prom is None or sim is None:
        return None
    regions = tuple(simulator_process.load_config(sim).regions)
    return ServicesHandle(state_dir, prom, sim, regions)


def stop(handle: ServicesHandle, purge: bool = False) -> None:
    """Stop both processes; `purge` also removes their folders (Prometheus' data, logs)."""
    prometheus.stop(handle.prometheus)
    simulator_process.stop(handle.simulator)
    if purge:
        _purge(handle.state_dir)


def stop_from_state(state_dir: Path, purge: bool = True) -> None:
    """Stop whatever a previous `start` left in `state_dir` (pidfiles; the pids are verified) and,
    by default, remove its folders: `lab down` leaves nothing behind."""
    state_dir = Path(state_dir).resolve()
    prometheus.stop_from_state(state_dir)
    simulator_process.stop_from_state(state_dir)
    if purge:
        _purge(state_dir)


def _purge(state_dir: Path) -> None:
    for sub in ("prometheus", "simulator"):
        shutil.rmtree(state_dir / sub, ignore_errors=True)

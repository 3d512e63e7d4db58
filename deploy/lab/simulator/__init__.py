"""The lab's traffic simulator: synthetic requests per region, app and version, routed by the live
weights in the clusters (docs/conventions.md), exported as Prometheus metrics.

Run it as `python -m deploy.lab.simulator --config FILE` (or `process.start`); drive it with
`SimulatorClient`.
"""

from .client import RateEntry, SimulatorClient
from .model import HEALTHY, AppSpec, FaultProfile, RegionSpec, TrafficNoise

__all__ = ["HEALTHY", "AppSpec", "FaultProfile", "RateEntry", "RegionSpec", "SimulatorClient", "TrafficNoise"]

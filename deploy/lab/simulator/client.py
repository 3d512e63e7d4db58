"""Python client for the simulator's control API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from .model import AppSpec, FaultProfile, TrafficNoise


@dataclass(frozen=True)
class RateEntry:
    region: str
    app: str
    version: str
    track: str
    served: bool
    rps: float


class SimulatorClient:
    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout_s
        self._http = requests.Session()

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        r = self._http.request(method, f"{self.url}{path}", json=body, timeout=self._timeout)
        if r.status_code >= 400:
            raise ValueError(f"simulator {method} {path}: {r.status_code} {r.text}")
        return r.json()

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/healthz"))

    def apps(self) -> list[AppSpec]:
        return [AppSpec.from_dict(a) for a in self._call("GET", "/apps")]

    def set_apps(self, apps: list[AppSpec]) -> None:
        self._call("PUT", "/apps", [a.to_dict() for a in apps])

    def set_fault(self, app: str, version: str, profile: FaultProfile) -> None:
        self._call("PUT", f"/faults/{app}/{version}", profile.to_dict())

    def clear_fault(self, app: str, version: str) -> None:
        self._call("DELETE", f"/faults/{app}/{version}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def faults(self) -> dict[tuple[str, str], FaultProfile]:
        return {(f["app"], f["version"]): FaultProfile.from_dict(f["profile"]) for f in self._call("GET", "/faults")}

    def rates(self) -> list[RateEntry]:
        """The current plan: requests per second per region, app, version and track."""
        return [RateEntry(**e) for e in self._call("GET", "/rates")]

    def noise(self) -> TrafficNoise | None:
        data = self._call("GET", "/noise")
        return TrafficNoise.from_dict(data) if data is not None else None

    def set_noise(self, noise: TrafficNoise | None) -> None:
        """Realistic traffic from now on (Poisson counts, baseline errors, heavy-tailed latency),
        or, with None, exact counts again."""
        if noise is None:
            self._call("DELETE", "/noise")
        else:
            self._call("PUT", "/noise", noise.to_dict())

    def set_static(self, table: dict[str, Any]) -> None:
        """Replace the static topology (only for a simulator started with source 'static')."""
        self._call("PUT", "/static", table)

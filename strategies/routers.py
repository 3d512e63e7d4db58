"""In-region traffic routers: how a canary weight becomes Kubernetes objects.

A router is pure: it says which objects realise a weight, how the stable and canary Deployments
are sized for it, and which weight the cluster currently shows. The executor applies the objects.
A new router (a service mesh, an ingress controller) is a new class implementing `TrafficRouter`.
"""

from __future__ import annotations

from typing import Protocol

from config.render import Rendered
from strategies import manifests
from strategies.manifests import Obj
from strategies.model import Snapshot


class TrafficRouter(Protocol):
    name: str

    def objects(self, rendered: Rendered, app: str, gateway: str, weight: int) -> list[Obj]:
        """Objects that send `weight`% to the canary track (empty when replicas do the routing)."""
        ...

    def replicas(self, total: int, weight: int) -> tuple[int, int]:
        """(stable, canary) replica counts while the canary gets `weight`%."""
        ...

    def observed_weight(self, snapshot: Snapshot, app: str) -> int | None:
        """The canary weight the cluster shows now; None when it cannot tell (no route yet)."""
        ...


def stable_service(app: str) -> str:
    return f"{app}-stable"


def canary_service(app: str) -> str:
    return f"{app}-canary"


class GatewayAPIRouter:
    """HTTPRoute `<app>` with backendRefs `<app>-stable` / `<app>-canary` weighted 100-w / w.

    The stable Deployment keeps its full size throughout, so an abort (weight 0) needs no scaling.
    """

    name = "gatewayAPI"

    def objects(self, rendered: Rendered, app: str, gateway: str, weight: int) -> list[Obj]:
        return [
            manifests.http_route(
                rendered, app, gateway, [(stable_service(app), 100 - weight), (canary_service(app), weight)]
            )
        ]

    def replicas(self, total: int, weight: int) -> tuple[int, int]:
        return total, manifests.canary_replicas(total, weight)

    def observed_weight(self, snapshot: Snapshot, app: str) -> int | None:
        route = snapshot.route(app)
        if route is None:
            return None
        stable, canary = route.weight_of(stable_service(app)), route.weight_of(canary_service(app))
        if stable + canary == 0:
            return None
        return round(100 * canary / (stable + canary))


class ReplicaRouter:
    """No router: Service `<app>` selects both tracks, so traffic follows the Ready pod ratio."""

    name = "replicas"

    def objects(self, rendered: Rendered, app: str, gateway: str, weight: int) -> list[Obj]:
        return []

    def replicas(self, total: int, weight: int) -> tuple[int, int]:
        canary = min(total, manifests.canary_replicas(total, weight))
        if weight >= 100:
            return 0, max(canary, 1)
        return max(total - canary, 1), canary

    def observed_weight(self, snapshot: Snapshot, app: str) -> int | None:
        stable, canary = snapshot.deployment(app), snapshot.deployment(canary_service(app))
        if stable is None or canary is None or stable.ready + canary.ready == 0:
            return None
        return round(100 * canary.ready / (stable.ready + canary.ready))


def router_for(name: str) -> TrafficRouter:
    routers: dict[str, TrafficRouter] = {"gatewayAPI": GatewayAPIRouter(), "replicas": ReplicaRouter()}
    try:
        return routers[name]
    except KeyError:
        raise ValueError(f"unknown traffic router {name!r}; known: {', '.join(routers)}") from None

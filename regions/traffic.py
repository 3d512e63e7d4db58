"""Global traffic: each region's weight in the app's global load balancing, for drain and restore.

One interface (GlobalTraffic), one implementation per provider. The first drives ExternalDNS
`DNSEndpoint` weighted records in the controller's home cluster (docs/conventions.md): one record
per region with setIdentifier=<region> and provider-specific `aws/weight`, which ExternalDNS turns
into weighted DNS at the provider and which the lab's traffic simulator honours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

FULL_WEIGHT = 100
WEIGHT_KEY = "aws/weight"
GROUP, VERSION, PLURAL = "externaldns.k8s.io", "v1alpha1", "dnsendpoints"
FIELD_MANAGER = "regional-rollout"


class GlobalTraffic(Protocol):
    def weights(self, app: str) -> dict[str, int]:
        """Region -> weight (0..100); regions without a record weigh FULL_WEIGHT."""

    def set_weights(self, app: str, weights: Mapping[str, int]) -> bool:
        """Make the given regions' weights so; True when something was written."""


def dns_endpoint(
    app: str, namespace: str, domain: str, weights: Mapping[str, int], targets: Mapping[str, str]
) -> dict[str, Any]:
    """The DNSEndpoint object holding one weighted record per region (pure, for apply and tests)."""
    endpoints = [
        {
            "dnsName": f"{app}.{domain}",
            "recordType": "CNAME",
            "targets": [targets.get(region, f"{app}.{region}.{domain}")],
            "setIdentifier": region,
            "recordTTL": 30,
            "providerSpecific": [{"name": WEIGHT_KEY, "value": str(weight)}],
        }
        for region, weight in sorted(weights.items())
    ]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DNSEndpoint",
        "metadata": {
            "name": app,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/managed-by": FIELD_MANAGER},
        },
        "spec": {"endpoints": endpoints},
    }


def weights_of(obj: Mapping[str, Any] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for record in ((obj or {}).get("spec") or {}).get("endpoints") or []:
        region = record.get("setIdentifier")
        if not region:
            continue
        values = {p.get("name"): p.get("value") for p in record.get("providerSpecific") or []}
        out[region] = int(float(values.get(WEIGHT_KEY, FULL_WEIGHT)))
    return out


class DNSEndpointTraffic:
    """GlobalTraffic on ExternalDNS DNSEndpoint objects in the home cluster."""

    def __init__(
        self,
        api_client: client.ApiClient,
        regions: list[str],
        namespace: str = "rollout-system",
        domain: str = "global.example.com",
    ):
        self._api = client.CustomObjectsApi(api_client)
        self._regions = regions
        self._namespace = namespace
        self._domain = domain

    def _get(self, app: str) -> dict[str, Any] | None:
        try:
            return cast(
                dict[str, Any], self._api.get_namespaced_custom_object(GROUP, VERSION, self._namespace, PLURAL, app)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def weights(self, app: str) -> dict[str, int]:
        return self._complete(weights_of(self._get(app)))

    def _complete(self, weights: Mapping[str, int]) -> dict[str, int]:
        return {region: weights.get(region, FULL_WEIGHT) for region in self._regions}

    def set_weights(self, app: str, weights: Mapping[str, int]) -> bool:
        existing = self._get(app)
        current = self._complete(weights_of(existing))
        desired = {**current, **weights}
        if existing is not None and desired == current:
            return False  # level-triggered: nothing to write
        body = dns_endpoint(app, self._namespace, self._domain, desired, {})
        # Forced: a drain is the safety action of an incident and must not lose to a stray edit;
        # the release's audit records every weight the controller set.
        self._api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self._namespace,
            PLURAL,
            app,
            body,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        return True

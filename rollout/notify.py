"""Telling people: Kubernetes Events on the Release and signed webhook notifications.

Every notification carries app, release, region, owner, reason and the playbook link, so the
person paged at 3 a.m. has the context in the message itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Protocol

import requests
import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout.release import now_iso

log = structlog.get_logger("rollout.notify")
SIGNATURE_HEADER = "X-Rollout-Signature-256"


@dataclass(frozen=True)
class Notice:
    event: str
    app: str
    release: str
    version: str
    reason: str
    owner: str
    contact: str
    playbook: str
    region: str | None = None
    warning: bool = False


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    events: tuple[str, ...]
    secret_env: str | None = None


def sign(body: bytes, key: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(body: bytes, key: bytes, signature: str | None) -> bool:
    return bool(signature) and hmac.compare_digest(sign(body, key), signature or "")


class EventSink(Protocol):
    def emit(self, notice: Notice, now: datetime) -> None: ...


class KubernetesEvents:
    """core/v1 Events on the Release object in the home cluster."""

    def __init__(self, api_client: client.ApiClient, namespace: str, component: str = "rollout-controller"):
        self._api = client.CoreV1Api(api_client)
        self._namespace = namespace
        self._component = component

    def emit(self, notice: Notice, now: datetime) -> None:
        self.record("Release", notice.release, _reason(notice.event), _message(notice), notice.warning, now)

    def record(self, kind: str, name: str, reason: str, message: str, warning: bool, now: datetime) -> None:
        """An Event on one of our objects (rollout.dev/v1alpha1 `kind`/`name`)."""
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{name}.", namespace=self._namespace),
            involved_object=client.V1ObjectReference(api_version="rollout.dev/v1alpha1", kind=kind,
                                                     name=name, namespace=self._namespace),
            reason=reason, message=message[:1024], type="Warning" if warning else "Normal",
            source=client.V1EventSource(component=self._component),
            first_timestamp=now, last_timestamp=now, count=1)
        try:
            self._api.create_namespaced_event(self._namespace, body)
        except ApiException as exc:  # an event is worth less than the reconcile that made it
            log.warning("event not recorded", object=f"{kind}/{name}", status=exc.status)


class Webhooks:
    def __init__(self, targets: list[WebhookTarget], timeout: float = 5.0):
        self._targets = targets
        self._timeout = timeout

    def emit(self, notice: Notice, now: datetime) -> None:
        body = json.dumps({**asdict(notice), "time": now_iso(now), "summary": _message(notice)},
                          sort_keys=True).encode()
        for target in self._targets:
            if notice.event not in target.events:
                continue
            headers = {"Content-Type": "application/json"}
            key = os.environ.get(target.secret_env or "", "")
            if key:
                headers[SIGNATURE_HEADER] = sign(body, key.encode())
            try:
                requests.post(target.url, data=body, headers=headers, timeout=self._timeout)
            except requests.RequestException as exc:
                log.warning("notification not delivered", url=target.url, error=type(exc).__name__)


def _reason(event: str) -> str:
    return {"started": "ReleaseStarted", "promoted": "WavePromoted", "failed": "ReleaseFailed",
            "drained": "RegionDrained", "rolledBack": "ReleaseRolledBack", "paused": "ReleasePaused",
            "succeeded": "ReleaseSucceeded"}.get(event, event[:1].upper() + event[1:])


def _message(notice: Notice) -> str:
    where = f" in {notice.region}" if notice.region else ""
    return (f"{notice.app} {notice.version}{where}: {notice.reason} "
            f"(owner {notice.owner}, {notice.contact}; playbook {notice.playbook})")

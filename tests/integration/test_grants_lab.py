"""Against a lab region's real kube-apiserver (RBAC on): what the region deployer identity can still
do once it is bound per granted namespace, and app ownership between apps (docs/security.md).

- The deployer (a token of rollout-system/rollout-deployer, deploy/base/region) creates a
  Deployment in a granted namespace (deploy/base/region/app-namespace.yaml), and gets 403 from the
  apiserver in kube-system, rollout-system and a namespace nobody granted; nothing is created there.
- App B applying a Service that app A owns is refused with both names before any write (B's other
  object in the same step is not applied either), and A's Service is unchanged; A itself keeps
  applying its own Service.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from config.identity import LABEL_NAME, ReleaseIdentity
from config.render import Rendered
from config.schema import RollingStrategy
from strategies.cluster import OWNED_BY_ANOTHER_APP, KubernetesCluster
from strategies.errors import Backoff, PermanentError
from strategies.model import Apply, RegionRollout

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "base" / "region"
NS = "rollout-system"


@dataclass
class Region:
    context: str
    admin: Any  # ApiClient as lab-admin
    deployer: KubernetesCluster  # the controller's adapter, authenticated as rollout-deployer only
    deployer_api: Any  # ApiClient as rollout-deployer
    granted: str
    not_granted: str
    kubeconfig: Path  # the deployer's


def deployer_kubeconfig(lab: Any, context: str, token: str, path: Path) -> Path:
    admin = yaml.safe_load(lab.kubeconfig.read_text())
    clusters = [c for c in admin["clusters"] if c["name"] == context]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": clusters,
                "users": [{"name": "deployer", "user": {"token": token}}],
                "contexts": [{"name": context, "context": {"cluster": context, "user": "deployer"}}],
                "current-context": context,
            }
        )
    )
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def region(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    """deploy/base/region in one lab region, one namespace granted from the template, one not."""
    context = sorted(lab.region_contexts.values())[0]
    lab.kubectl(context, "apply", "--server-side", "-k", str(DEPLOY))
    suffix = uuid.uuid4().hex[:6]
    granted, not_granted = f"granted-{suffix}", f"other-{suffix}"
    grant = tmp_path_factory.mktemp("grant") / "grant.yaml"
    grant.write_text((DEPLOY / "app-namespace.yaml").read_text().replace("APP_NAMESPACE", granted))
    lab.kubectl(context, "apply", "--server-side", "-f", str(grant))
    admin = lab.api_client(context)
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=not_granted)))
    token = lab.kubectl(context, "-n", NS, "create", "token", "rollout-deployer", "--duration=1h").stdout.strip()
    kubeconfig = deployer_kubeconfig(lab, context, token, tmp_path_factory.mktemp("kube") / "deployer.kubeconfig")
    deployer = KubernetesCluster(str(kubeconfig), context, backoff=Backoff(initial=0.05, attempts=3))
    from kubernetes import config as kconfig

    deployer_api = kconfig.new_client_from_config(config_file=str(kubeconfig), context=context)
    try:
        yield Region(context, admin, deployer, deployer_api, granted, not_granted, kubeconfig)
    finally:
        deployer.close()
        for name in (granted, not_granted):
            with contextlib.suppress(ApiException):
                core.delete_namespace(name)


def deployment(name: str, namespace: str, app: str = "intruder") -> dict[str, Any]:
    labels = {LABEL_NAME: app}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry.lab/c:1.0"}]},
            },
        },
    }


def service(name: str, namespace: str, app: str, port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL_NAME: app}},
        "spec": {"selector": {LABEL_NAME: app}, "ports": [{"port": port, "targetPort": 8080}]},
    }


def rollout_of(app: str, namespace: str) -> RegionRollout:
    identity = ReleaseIdentity("0" * 40, "1.0.0")
    return RegionRollout(
        app=app,
        namespace=namespace,
        region="lab",
        strategy=RollingStrategy(),
        release=Rendered(app, "lab", identity, ()),
    )


def core_admin(region: Region) -> Any:
    return client.CoreV1Api(region.admin)


def forbidden(call: Callable[[], Any]) -> int:
    try:
        call()
    except ApiException as exc:
        return exc.status
    return 200


def test_deployer_writes_in_its_granted_namespace_and_gets_403_everywhere_else(region: Region) -> None:
    apps_admin: Any = client.AppsV1Api(region.admin)  # Any: the client's models type every field Optional
    apps_deployer: Any = client.AppsV1Api(region.deployer_api)

    region.deployer.apply(deployment("ok", region.granted))
    assert apps_admin.read_namespaced_deployment("ok", region.granted).metadata.name == "ok"

    for namespace in ("kube-system", NS, region.not_granted):
        # the controller's own adapter: a permanent Forbidden, which fails the region step at once
        with pytest.raises(PermanentError) as refused:
            region.deployer.apply(deployment("escalate", namespace))
        assert refused.value.status == 403 and refused.value.reason == "Forbidden", str(refused.value)
        # and the raw API, as the same identity
        assert (
            forbidden(
                lambda ns=namespace: apps_deployer.create_namespaced_deployment(  # type: ignore[misc]
                    ns, deployment("escalate", ns)
                )
            )
            == 403
        )
        assert forbidden(lambda ns=namespace: apps_deployer.list_namespaced_deployment(ns)) == 403  # type: ignore[misc]
        assert [
            d.metadata.name
            for d in apps_admin.list_namespaced_deployment(namespace).items
            if d.metadata.name == "escalate"
        ] == []
    # no namespaces of its own making either (the deployer's namespaces are granted, not created)
    core_deployer = client.CoreV1Api(region.deployer_api)
    assert (
        forbidden(
            lambda: core_deployer.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=f"mine-{uuid.uuid4().hex[:6]}"))
            )
        )
        == 403
    )
    labels = core_admin(region).read_namespace(region.granted).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"


def test_app_b_cannot_take_over_app_a_service_and_nothing_of_b_is_applied(region: Region) -> None:
    core = core_admin(region)
    ns = region.granted
    a, b = rollout_of("app-a", ns), rollout_of("app-b", ns)
    region.deployer.execute(a, [Apply((service("shared", ns, "app-a"),), "release")])
    before = core.read_namespaced_service("shared", ns)
    assert before.metadata.labels[LABEL_NAME] == "app-a"

    writes = region.deployer.writes
    with pytest.raises(PermanentError) as refused:
        region.deployer.execute(
            b, [Apply((service("b-own", ns, "app-b"), service("shared", ns, "app-b", 9090)), "release")]
        )
    assert refused.value.reason == OWNED_BY_ANOTHER_APP
    message = str(refused.value)
    assert "belongs to app 'app-a'" in message and "app 'app-b' may not change or delete it" in message, message
    assert f"Service/shared -n {ns}" in message
    assert region.deployer.writes == writes, "a write happened before the refusal"

    after = core.read_namespaced_service("shared", ns)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.metadata.labels[LABEL_NAME] == "app-a"
    assert [p.port for p in after.spec.ports] == [80] and after.spec.selector == {LABEL_NAME: "app-a"}
    assert forbidden(lambda: core.read_namespaced_service("b-own", ns)) == 404  # nothing half-applied

    # The owner itself keeps applying its object (same label: the same app, same field manager).
    region.deployer.execute(a, [Apply((service("shared", ns, "app-a", 81),), "release")])
    assert [p.port for p in core.read_namespaced_service("shared", ns).spec.ports] == [81]


def test_the_optional_watch_reader_grant_turns_the_deployers_reads_into_watches(region: Region, lab: Any) -> None:
    """Without deploy/base/region/watch-reader.yaml the cluster-wide list+watch is refused (403) and
    observe reads the API; with it the same identity's watch syncs and serves the app's objects."""
    ns, app = region.granted, "watched"
    region.deployer.apply(deployment("watched", ns, app))
    plain = KubernetesCluster(str(region.kubeconfig), region.context)
    try:
        assert not plain.caches()["Deployment"].wait_synced(3), "a namespaced grant must not list cluster-wide"
        names = [d.name for d in plain.observe(rollout_of(app, ns)).deployments]
        assert names == ["watched"], names
    finally:
        plain.close()

    lab.kubectl(region.context, "apply", "--server-side", "-f", str(DEPLOY / "watch-reader.yaml"))
    watched = KubernetesCluster(str(region.kubeconfig), region.context)
    try:
        deployments = watched.caches()["Deployment"]
        assert deployments.wait_synced(30), "the granted watch never synced"
        assert [d["metadata"]["name"] for d in deployments.of_app(ns, app) or []] == ["watched"]
        names = [d.name for d in watched.observe(rollout_of(app, ns)).deployments]
        assert names == ["watched"], names
    finally:
        watched.close()
        lab.kubectl(region.context, "delete", "-f", str(DEPLOY / "watch-reader.yaml"))

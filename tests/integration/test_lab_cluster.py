# The kubernetes client's models type every field Optional and its methods take model objects, while
# at runtime they take plain dicts and the fields asserted on here are set: checked by the assertions.
# mypy: disable-error-code="union-attr,index,arg-type"
"""The lab's clusters are real: controllers roll Deployments, RBAC denies, CRDs are served, down cleans.

Every wait polls a condition against a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from deploy.lab import procs
from deploy.lab.cluster import FAULT_LABEL, HOME_NAMESPACE, Lab, select_regions, wait_until
from tests.fixtures.cluster import new_run_dir, reap_orphaned_runs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def deployment(
    name: str,
    replicas: int,
    *,
    version: str = "1",
    surge: int | str = 1,
    unavailable: int | str = 0,
    fault: str | None = None,
    progress_deadline_s: int = 600,
) -> dict[str, Any]:
    labels = {"app": name, "version": version} | ({FAULT_LABEL: fault} if fault else {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": progress_deadline_s,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": f"registry.local/{name}:{version}"}]},
            },
        },
    }


def condition(dep: client.V1Deployment, kind: str) -> client.V1DeploymentCondition | None:
    return next((c for c in dep.status.conditions or [] if c.type == kind), None)


def available_problem(apps: client.AppsV1Api, ns: str, name: str, replicas: int) -> str | None:
    dep = apps.read_namespaced_deployment_status(name, ns)
    avail = condition(dep, "Available")
    if (dep.status.available_replicas or 0) == replicas and avail is not None and avail.status == "True":
        return None
    return f"available {dep.status.available_replicas}/{replicas}, Available={avail and avail.status}"


def rollout_done_problem(apps: client.AppsV1Api, ns: str, name: str, replicas: int) -> str | None:
    dep = apps.read_namespaced_deployment_status(name, ns)
    s = dep.status
    prog = condition(dep, "Progressing")
    done = (
        s.observed_generation == dep.metadata.generation
        and s.updated_replicas == replicas
        and s.available_replicas == replicas
        and (s.replicas or 0) == replicas
        and prog is not None
        and prog.reason == "NewReplicaSetAvailable"
    )
    return None if done else f"status {s.updated_replicas=} {s.available_replicas=} {s.replicas=}"


def in_every_region(lab: Lab, fn: Callable[[str], Any]) -> dict[str, Any]:
    """Run fn(context) for all regions concurrently; re-raise the first failure."""
    contexts = list(lab.region_contexts.values())
    with ThreadPoolExecutor(max_workers=len(contexts)) as pool:
        return dict(zip(contexts, pool.map(fn, contexts), strict=True))


# --- Deployments -----------------------------------------------------------------------------------


def test_deployment_becomes_available_with_replicaset_and_ready_pods(
    lab: Lab, lab_api_clients: dict[str, Any], lab_namespace: str
) -> None:
    def check(ctx: str) -> None:
        apps, core = client.AppsV1Api(lab_api_clients[ctx]), client.CoreV1Api(lab_api_clients[ctx])
        apps.create_namespaced_deployment(lab_namespace, deployment("web", 3))
        wait_until(lambda: available_problem(apps, lab_namespace, "web", 3), 60, f"web Available in {ctx}")
        rs = apps.list_namespaced_replica_set(lab_namespace, label_selector="app=web").items
        assert len(rs) == 1 and rs[0].metadata.owner_references[0].kind == "Deployment"
        assert rs[0].status.ready_replicas == 3
        pods = core.list_namespaced_pod(lab_namespace, label_selector="app=web").items
        assert len(pods) == 3
        for p in pods:
            assert p.metadata.owner_references[0].name == rs[0].metadata.name
            assert p.spec.node_name.startswith(f"{ctx}-node-")  # bound by the real scheduler
            assert p.status.phase == "Running" and p.status.pod_ip
            assert {c.type: c.status for c in p.status.conditions}["Ready"] == "True"

    in_every_region(lab, check)


@dataclass
class RolloutObservation:
    max_rs_replicas: int = 0  # sum of ReplicaSet .spec.replicas: the controller's surge decision
    max_live_pods: int = 0  # non-terminating pods
    min_ready_pods: int = 10**6  # non-terminating Ready pods
    events: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Watcher(threading.Thread):
    """Lists, then watches from that resourceVersion; re-opens short watches until stopped."""

    def __init__(self, list_fn: Callable[..., Any], ns: str, selector: str, on: Callable[[str, Any], None]) -> None:
        super().__init__(daemon=True)
        self.list_fn, self.ns, self.selector, self.on = list_fn, ns, selector, on
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        initial = list_fn(ns, label_selector=selector)  # synchronously, before the change under test
        for item in initial.items:
            on("ADDED", item)
        self.rv = initial.metadata.resource_version

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                for ev in watch.Watch().stream(
                    self.list_fn, self.ns, label_selector=self.selector, resource_version=self.rv, timeout_seconds=1
                ):
                    self.rv = ev["object"].metadata.resource_version
                    self.on(ev["type"], ev["object"])
        except BaseException as exc:  # noqa: BLE001 - surfaced by the test
            self.error = exc

    def finish(self) -> None:
        self.stopped.set()
        self.join(10)
        if self.error:
            raise self.error


def observe_rollout(
    apps: client.AppsV1Api, core: client.CoreV1Api, ns: str, name: str, replicas: int, change: Callable[[], None]
) -> RolloutObservation:
    obs = RolloutObservation()
    rs_replicas: dict[str, int] = {}
    pods: dict[str, tuple[bool, bool]] = {}  # name -> (terminating, ready)
    started = threading.Event()

    def on_rs(kind: str, rs: Any) -> None:
        with obs.lock:
            if kind == "DELETED":
                rs_replicas.pop(rs.metadata.name, None)
            else:
                rs_replicas[rs.metadata.name] = rs.spec.replicas or 0
            obs.max_rs_replicas = max(obs.max_rs_replicas, sum(rs_replicas.values()))

    def on_pod(kind: str, pod: Any) -> None:
        with obs.lock:
            if kind == "DELETED":
                pods.pop(pod.metadata.name, None)
            else:
                ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
                pods[pod.metadata.name] = (pod.metadata.deletion_timestamp is not None, ready)
            live = [ready for terminating, ready in pods.values() if not terminating]
            obs.events += 1
            obs.max_live_pods = max(obs.max_live_pods, len(live))
            if started.is_set():
                obs.min_ready_pods = min(obs.min_ready_pods, sum(live))

    watchers = [
        Watcher(apps.list_namespaced_replica_set, ns, f"app={name}", on_rs),
        Watcher(core.list_namespaced_pod, ns, f"app={name}", on_pod),
    ]
    for w in watchers:
        w.start()
    started.set()
    change()
    try:
        wait_until(lambda: rollout_done_problem(apps, ns, name, replicas), 90, f"rollout of {name}")
        # Let the watch catch up with the final state (old pods gone) before reading the extremes.
        wait_until(lambda: None if len(pods) == replicas else f"{len(pods)} pods", 30, "old pods deleted")
    finally:
        for w in watchers:
            w.finish()
    return obs


@pytest.mark.parametrize(("surge", "unavailable"), [(1, 0), (0, 1)])
def test_rolling_update_respects_surge_and_unavailable(
    lab: Lab, lab_api_clients: dict[str, Any], lab_namespace: str, surge: int, unavailable: int
) -> None:
    replicas = 4

    def roll(ctx: str) -> RolloutObservation:
        apps, core = client.AppsV1Api(lab_api_clients[ctx]), client.CoreV1Api(lab_api_clients[ctx])
        apps.create_namespaced_deployment(
            lab_namespace, deployment("roll", replicas, surge=surge, unavailable=unavailable)
        )
        wait_until(lambda: available_problem(apps, lab_namespace, "roll", replicas), 60, f"roll Available in {ctx}")
        patch = {
            "spec": {
                "template": {
                    "metadata": {"labels": {"version": "2"}},
                    "spec": {"containers": [{"name": "app", "image": "registry.local/roll:2"}]},
                }
            }
        }
        return observe_rollout(
            apps,
            core,
            lab_namespace,
            "roll",
            replicas,
            lambda: apps.patch_namespaced_deployment("roll", lab_namespace, patch),
        )

    for ctx, obs in in_every_region(lab, roll).items():
        print(f"{ctx}: surge={surge} unavailable={unavailable}: {obs}")
        # Bounds hold throughout, and are reached: the strategy is really what drives the roll.
        assert obs.max_rs_replicas == replicas + surge, ctx
        assert obs.min_ready_pods == replicas - unavailable, ctx
        if surge == 0:
            # The Deployment's bound is on ReplicaSet sizes (above). Pods follow them through two ReplicaSet
            # controllers working independently, so the new pod may be created a moment before the old one
            # is marked for deletion: one pod over is Kubernetes, more would mean the surge is not honoured.
            assert obs.max_live_pods <= replicas + 1, ctx


def test_never_ready_pods_keep_deployment_unavailable_until_progress_deadline(
    lab: Lab, lab_api_clients: dict[str, Any], lab_namespace: str
) -> None:
    deadline_s = 8

    def check(ctx: str) -> float:
        apps, core = client.AppsV1Api(lab_api_clients[ctx]), client.CoreV1Api(lab_api_clients[ctx])
        t0 = time.monotonic()
        apps.create_namespaced_deployment(
            lab_namespace, deployment("stuck", 2, fault="never-ready", progress_deadline_s=deadline_s)
        )
        seen_available = []

        def exceeded() -> str | None:
            dep = apps.read_namespaced_deployment_status("stuck", lab_namespace)
            avail, prog = condition(dep, "Available"), condition(dep, "Progressing")
            seen_available.append(bool(avail and avail.status == "True") or bool(dep.status.ready_replicas))
            if prog is not None and prog.status == "False" and prog.reason == "ProgressDeadlineExceeded":
                return None
            return f"Progressing={prog and (prog.status, prog.reason)}"

        wait_until(exceeded, deadline_s + 60, f"ProgressDeadlineExceeded in {ctx}")
        elapsed = time.monotonic() - t0
        assert not any(seen_available), f"{ctx}: the Deployment was Available at some point"
        pods = core.list_namespaced_pod(lab_namespace, label_selector="app=stuck").items
        assert len(pods) == 2
        for p in pods:  # running but never ready: the kwok never-ready stage, not a missing node
            assert p.status.phase == "Running"
            assert p.status.container_statuses[0].state.running is not None
            assert {c.type: c.status for c in p.status.conditions}["Ready"] == "False"
        return elapsed

    for ctx, elapsed in in_every_region(lab, check).items():
        assert elapsed >= deadline_s - 1, f"{ctx}: deadline exceeded after {elapsed:.1f}s < {deadline_s}s"


def test_crash_loop_label_makes_pods_crash_loop(lab: Lab, lab_api_clients: dict[str, Any], lab_namespace: str) -> None:
    ctx = next(iter(lab.region_contexts.values()))
    apps, core = client.AppsV1Api(lab_api_clients[ctx]), client.CoreV1Api(lab_api_clients[ctx])
    apps.create_namespaced_deployment(lab_namespace, deployment("crash", 1, fault="crash-loop"))

    def restarted_twice() -> str | None:
        pods = core.list_namespaced_pod(lab_namespace, label_selector="app=crash").items
        statuses = [cs for p in pods for cs in p.status.container_statuses or []]
        if (
            statuses
            and statuses[0].state.waiting
            and statuses[0].state.waiting.reason == "CrashLoopBackOff"
            and statuses[0].restart_count >= 2
        ):
            return None
        return f"{[(s.restart_count, s.state.waiting and s.state.waiting.reason) for s in statuses]}"

    wait_until(restarted_twice, 60, "crash loop")
    dep = apps.read_namespaced_deployment_status("crash", lab_namespace)
    assert not dep.status.available_replicas


# --- RBAC ------------------------------------------------------------------------------------------


def test_unprivileged_identity_is_denied(lab: Lab, lab_api_clients: dict[str, Any], lab_namespace: str) -> None:
    def check(ctx: str) -> None:
        api = lab_api_clients[ctx]
        core, rbac, authz = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api), client.AuthorizationV1Api(api)
        core.create_namespaced_service_account(
            lab_namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
        )
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        )
        token = core.create_namespaced_service_account_token("nobody", lab_namespace, request).status.token
        url = f"{lab.cluster(ctx).server}/api/v1/namespaces/{lab_namespace}/pods"

        def get(tok: str) -> int:
            return requests.get(
                url, headers={"Authorization": f"Bearer {tok}"}, verify=lab.ca_file, timeout=5
            ).status_code

        assert get("not-a-token") == 401  # authentication is real
        assert get(token) == 403  # authenticated, but RBAC grants nothing
        user = f"system:serviceaccount:{lab_namespace}:nobody"
        sar = authz.create_subject_access_review(
            client.V1SubjectAccessReview(
                spec=client.V1SubjectAccessReviewSpec(
                    user=user,
                    groups=["system:serviceaccounts"],
                    resource_attributes=client.V1ResourceAttributes(
                        namespace=lab_namespace, verb="create", group="apps", resource="deployments"
                    ),
                )
            )
        )
        assert sar.status.allowed is False
        can_i = lab.kubectl(
            ctx, "auth", "can-i", "create", "deployments", "-n", lab_namespace, f"--as={user}", check=False
        )
        assert can_i.stdout.strip() == "no" and can_i.returncode == 1

        # Granting `view` lets the same token read: the 403 above came from RBAC, not from a broken token.
        rbac.create_namespaced_role_binding(
            lab_namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="nobody-view"),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=lab_namespace)],
            ),
        )
        wait_until(lambda: None if get(token) == 200 else "still denied", 30, "view binding effective")
        can_i = lab.kubectl(
            ctx, "auth", "can-i", "create", "deployments", "-n", lab_namespace, f"--as={user}", check=False
        )
        assert can_i.stdout.strip() == "no"

    in_every_region(lab, check)


# --- CRDs ------------------------------------------------------------------------------------------


def test_httproute_and_dnsendpoint_are_served(lab: Lab, lab_api_clients: dict[str, Any], lab_namespace: str) -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "web-stable", "port": 80, "weight": 90},
                        {"name": "web-canary", "port": 80, "weight": 10},
                    ]
                }
            ]
        },
    }
    for ctx in lab.region_contexts.values():
        co = client.CustomObjectsApi(lab_api_clients[ctx])
        co.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", lab_namespace, "httproutes", route)
        co.patch_namespaced_custom_object(
            "gateway.networking.k8s.io",
            "v1",
            lab_namespace,
            "httproutes",
            "web",
            {
                "spec": {
                    "rules": [
                        {
                            "backendRefs": [
                                {"name": "web-stable", "port": 80, "weight": 50},
                                {"name": "web-canary", "port": 80, "weight": 50},
                            ]
                        }
                    ]
                }
            },
        )
        got = co.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", lab_namespace, "httproutes", "web")
        assert [b["weight"] for b in got["spec"]["rules"][0]["backendRefs"]] == [50, 50]
        with pytest.raises(ApiException) as bad:  # the real CRD schema validates
            co.create_namespaced_custom_object(
                "gateway.networking.k8s.io",
                "v1",
                lab_namespace,
                "httproutes",
                {
                    **route,
                    "metadata": {"name": "bad"},
                    "spec": {"rules": [{"backendRefs": [{"name": "x", "port": 80, "weight": -1}]}]},
                },
            )
        assert bad.value.status == 422

    home = client.CustomObjectsApi(lab_api_clients[lab.home_context])
    endpoint = {
        "apiVersion": "externaldns.k8s.io/v1alpha1",
        "kind": "DNSEndpoint",
        "metadata": {"name": f"web-{lab_namespace}"},
        "spec": {
            "endpoints": [
                {
                    "dnsName": "web.global.example.com",
                    "recordType": "A",
                    "targets": ["192.0.2.1"],
                    "setIdentifier": region,
                    "providerSpecific": [{"name": "aws/weight", "value": "100"}],
                }
                for region in lab.region_contexts
            ]
        },
    }
    home.create_namespaced_custom_object("externaldns.k8s.io", "v1alpha1", HOME_NAMESPACE, "dnsendpoints", endpoint)
    try:
        got = home.get_namespaced_custom_object(
            "externaldns.k8s.io", "v1alpha1", HOME_NAMESPACE, "dnsendpoints", endpoint["metadata"]["name"]
        )
        assert {e["setIdentifier"] for e in got["spec"]["endpoints"]} == set(lab.region_contexts)
    finally:
        home.delete_namespaced_custom_object(
            "externaldns.k8s.io", "v1alpha1", HOME_NAMESPACE, "dnsendpoints", endpoint["metadata"]["name"]
        )


# --- process hygiene -------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    """Nobody listens on it. SO_REUSEADDR as servers use it: a closed connection's TIME_WAIT
    entries (kept for a minute after a server closes first) are not a process left behind."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def assert_nothing_left(recs: list[procs.ProcessRecord], state_dir: Path) -> None:
    assert recs, "the lab recorded no processes"
    alive = [r.name for r in recs if procs.alive(r)]
    assert alive == [], f"still running: {alive}"
    busy = [r.port for r in recs if r.port and not port_free(r.port)]
    assert busy == [], f"ports still bound: {busy}"
    assert not state_dir.exists(), list(state_dir.rglob("*"))


def test_cli_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    state = tmp_path / "lab"
    cli = [str(Path(sys.executable).parent / "rollout-lab")]
    up = subprocess.run(
        [*cli, "up", "--clusters-only", "--regions", "eu-west", "--nodes", "1", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert up.returncode == 0, up.stderr[-3000:]
    recs = procs.records(state)
    assert {r.name for r in recs} >= {"etcd", "apiserver-eu-west", "apiserver-home", "kwok-eu-west"}
    status = subprocess.run(
        [*cli, "status", "--state-dir", str(state)], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert status.returncode == 0, status.stdout + status.stderr
    down = subprocess.run(
        [*cli, "down", "--state-dir", str(state)], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert down.returncode == 0, down.stderr[-3000:]
    assert_nothing_left(recs, state)


def test_crashed_run_is_cleaned_from_pidfiles(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = new_run_dir(root)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / "owner").write_text(f"{dead.stdout.strip()} 1")  # an owner that has exited: a crashed session
    Lab(run, select_regions(["eu-west"]), nodes_per_region=1, home=False).up()  # and never `down`ed
    recs = procs.records(run)
    assert all(procs.alive(r) for r in recs)
    assert reap_orphaned_runs(root) == [run]
    assert_nothing_left(recs, run)


# --- KWOK stages ----------------------------------------------------------------------------------


def test_kwok_plays_only_the_configured_stages(
    lab: Lab, lab_api_clients: dict[str, Any], lab_namespace: str, tmp_path: Path
) -> None:
    """kwok has no built-in stages: with node stages only, pods on its nodes are never touched.

    A second kwok manages one extra node (annotated so the lab's kwok ignores it) with the node
    stages of our set and nothing else; a pod bound there must stay untouched, while a control pod
    on a lab node runs through our full set. (Upstream's default pod-create would act within 6 s.)
    """
    import yaml

    from deploy.lab.build import binary
    from deploy.lab.cluster import STAGES, node_manifest

    ctx = next(iter(lab.region_contexts.values()))
    core = client.CoreV1Api(lab_api_clients[ctx])
    node = node_manifest(lab.cluster(ctx), 0)
    node["metadata"]["name"] = f"probe-{lab_namespace}"
    node["metadata"]["annotations"] = {"lab.rollout.dev/probe": lab_namespace}
    node["metadata"]["labels"]["kubernetes.io/hostname"] = node["metadata"]["name"]
    node_only = [s for s in yaml.safe_load_all(STAGES.read_text()) if s["spec"]["resourceRef"]["kind"] == "Node"]
    config = tmp_path / "node-stages.yaml"
    config.write_text(yaml.safe_dump_all(node_only))
    port = procs.free_port()
    core.create_node(node)
    rec = procs.start(
        "kwok-probe",
        [
            str(binary("kwok")),
            f"--kubeconfig={lab.state_dir / 'clusters' / ctx / 'kwok.kubeconfig'}",
            f"--config={config}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector=lab.rollout.dev/probe={lab_namespace}",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{port}",
        ],
        state_dir=tmp_path,
        port=port,
        health_url=f"http://127.0.0.1:{port}/healthz",
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    try:
        procs.wait_healthy(rec, 60)

        def node_ready() -> str | None:
            n = core.read_node(node["metadata"]["name"])
            ok = any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            return None if ok else "probe node not Ready"

        wait_until(node_ready, 60, "probe node Ready (node stages played)")

        def pod(name: str, node_name: str | None) -> client.V1Pod:
            return client.V1Pod(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1PodSpec(
                    node_name=node_name, containers=[client.V1Container(name="app", image="registry.local/x:1")]
                ),
            )

        t0 = time.monotonic()
        core.create_namespaced_pod(lab_namespace, pod("untouched", node["metadata"]["name"]))
        core.create_namespaced_pod(lab_namespace, pod("control", None))

        def control_ready() -> str | None:
            p = core.read_namespaced_pod("control", lab_namespace)
            ready = any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            return None if ready else f"control pod {p.status.phase}"

        wait_until(control_ready, 60, "control pod Ready")
        # Absence can only be shown over a window: poll until upstream's slowest default would have acted.
        while time.monotonic() - t0 < 8.0:
            p = core.read_namespaced_pod("untouched", lab_namespace)
            assert p.status.pod_ip is None and p.status.phase == "Pending", p.status
            assert not p.status.container_statuses, p.status.container_statuses
            time.sleep(0.5)
        assert "No pod stages found" in Path(rec.log_file).read_text()
    finally:
        procs.stop([rec], tmp_path)
        with contextlib.suppress(ApiException):
            core.delete_node(node["metadata"]["name"])


def test_a_port_taken_between_planning_and_binding_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        real, handed = procs.free_port, list[int]()

        def first_one_taken(reserved: set[int] | None = None) -> int:
            if not handed:  # the first port planned (an apiserver's) is already someone else's
                handed.append(taken)
                return taken
            return real(reserved)

        monkeypatch.setattr(procs, "free_port", first_one_taken)
        lab = Lab(tmp_path / "lab", select_regions(["eu-west"]), nodes_per_region=1, home=False)
        try:
            lab.up()
            assert lab.cluster("eu-west").apiserver_port != taken
            assert lab.get("eu-west", "/readyz").status_code == 200
        finally:
            lab.down()

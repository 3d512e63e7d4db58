"""The whole product in the lab: Git server, controller process, Prometheus, simulator, regions.

One environment per module: a fresh Git server seeded with the example repository reduced to the
`checkout` app at lab scale, the controller's CRDs in the home cluster, and a controller process.
Tests in a module run in order on it; each leaves checkout healthy on a known release.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client

from deploy.lab.cluster import Lab
from deploy.lab.controllerproc import ControllerProcess, install_crds
from deploy.lab.demo import single_app_changes
from deploy.lab.gitserver import GitServer
from deploy.lab.pki import CertificateAuthority
from deploy.lab.simulator.client import SimulatorClient
from deploy.lab.simulator.model import AppSpec
from deploy.lab.simulator.routing import parse_dns_weights

NAMESPACE = "rollout-system"
APP = "checkout"
WEBHOOK_SECRET = "e2e-webhook-secret"
RATE_RPS = 3000.0
REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "base"
# What the e2e installs in home, as docs/install.md does, minus the in-cluster controller (it runs
# here as a process): namespace, ServiceAccount, the controller's and people's RBAC, the policy.
HOME_MANIFESTS = (
    "namespace.yaml",
    "serviceaccount.yaml",
    "rbac-controller.yaml",
    "rbac-users.yaml",
    "admission-policy.yaml",
)
POLICY = "rollout-releaseaction-requester"
RESPONDER, VIEWER = "e2e-rick", "e2e-vera"  # people, by their client certificates' common names


@dataclass
class Identities:
    """Kubeconfigs of real, non-admin identities: the controller's ServiceAccount tokens (home and
    every region) and two people's client certificates bound to rollout-responder / rollout-viewer."""

    controller: Path
    people: dict[str, Path]


@dataclass
class Shop:
    """Handles on everything a scenario touches."""

    lab: Lab
    git: GitServer
    clone_dir: Path
    simulator: SimulatorClient
    prometheus_url: str
    state_dir: Path
    identities: Identities
    controllers: list[ControllerProcess] = field(default_factory=list)

    def cli_kube(self, person: str = RESPONDER) -> list[str]:
        """CLI arguments to act as `person` (never the lab admin)."""
        return ["--kubeconfig", str(self.identities.people[person]), "--context", self.lab.home_context]

    @property
    def home(self) -> client.ApiClient:
        return self.lab.api_client(self.lab.home_context)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.home)

    def start_controller(self, identity: str = "controller-0", poll_seconds: float = 2.0) -> ControllerProcess:
        proc = ControllerProcess(
            self.identities.controller,
            self.lab.home_context,
            self.git.url,
            self.state_dir,
            self.prometheus_url,
            identity=identity,
            poll_seconds=poll_seconds,
            extra_args=["--analysis-window-seconds", "5"],
            env={"ROLLOUT_WEBHOOK_SECRET": WEBHOOK_SECRET},
        ).start()
        proc.wait_healthy()
        self.controllers.append(proc)
        return proc

    def stop_controllers(self) -> None:
        for proc in self.controllers:
            proc.stop()
        self.controllers.clear()

    def releases(self) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object("rollout.dev", "v1alpha1", NAMESPACE, "releases")["items"]
        return sorted(items, key=lambda r: (r["metadata"]["creationTimestamp"], r["metadata"]["name"]))

    def release(self, version: str) -> dict[str, Any] | None:
        found = [r for r in self.releases() if r["spec"]["app"] == APP and r["spec"]["version"] == version]
        return found[-1] if found else None

    def wait_release(self, version: str, phases: set[str], timeout_s: float = 300) -> dict[str, Any]:
        return wait_for(
            lambda: _phase_in(self.release(version), phases),
            timeout_s,
            f"{APP} {version} to reach {sorted(phases)}",
            lambda: _describe(self.release(version)),
        )

    def source(self) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            "rollout.dev", "v1alpha1", NAMESPACE, "rolloutsources", "default"
        )

    def push_webhook(self, body: bytes = b'{"ref": "refs/heads/main"}') -> int:
        return self.post_webhook(body, {"X-Hub-Signature-256": sign(body)})

    def post_webhook(self, body: bytes, headers: dict[str, str]) -> int:
        proc = next(p for p in self.controllers if p.alive())
        return requests.post(
            f"http://127.0.0.1:{proc.http_port}/webhook/git", data=body, headers=headers, timeout=5
        ).status_code

    def synced_commit(self) -> str | None:
        return (self.source().get("status") or {}).get("commit")

    def git_show(self, commit: str, path: str) -> bytes:
        """A file's exact bytes at a commit of the served repository."""
        return subprocess.run(
            ["git", "show", f"{commit}:{path}"], cwd=self.git.bare_path, check=True, capture_output=True
        ).stdout

    def app_files(self, commit: str) -> dict[str, bytes]:
        """Every file of the app's folder at a commit, byte for byte."""
        names = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", commit, f"apps/{APP}/"],
            cwd=self.git.bare_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return {name: self.git_show(commit, name) for name in names}

    def region_deployments(self, region: str, api: client.ApiClient | None = None) -> dict[str, dict[str, Any]]:
        """Each checkout Deployment of a region: version label, replicas, generation, image."""
        apps = client.AppsV1Api(api or self.lab.api_client(self.lab.region_contexts[region]))
        items = apps.list_namespaced_deployment(APP, label_selector=f"app.kubernetes.io/name={APP}").items
        return {
            d.metadata.name: {
                "version": d.metadata.labels.get("app.kubernetes.io/version", ""),
                "replicas": d.spec.replicas or 0,
                "generation": d.metadata.generation,
                "image": d.spec.template.spec.containers[0].image,
            }
            for d in items
        }

    def weights(self) -> dict[str, int]:
        """The global traffic weights as the DNSEndpoint object holds them, read the way the
        simulator routes by them (every region full when there is no object)."""
        try:
            obj = self.custom.get_namespaced_custom_object(
                "externaldns.k8s.io", "v1alpha1", NAMESPACE, "dnsendpoints", APP
            )
        except client.exceptions.ApiException as exc:
            if exc.status != 404:
                raise
            obj = None
        return {r: round(w) for r, w in parse_dns_weights(obj, self.lab.region_contexts).items()}

    def prometheus_at(self, promql: str, at: float) -> float | None:
        """An instant query evaluated at wall time `at` (epoch seconds); None when empty."""
        response = requests.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": promql, "time": f"{at:.3f}"}, timeout=10
        )
        response.raise_for_status()
        result = response.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def deployed(self, region: str) -> dict[str, str]:
        """Version label of each checkout Deployment in a region (by name)."""
        apps = client.AppsV1Api(self.lab.api_client(self.lab.region_contexts[region]))
        items = apps.list_namespaced_deployment(APP, label_selector=f"app.kubernetes.io/name={APP}").items
        return {
            d.metadata.name: d.metadata.labels.get("app.kubernetes.io/version", "")
            for d in items
            if (d.spec.replicas or 0) > 0
        }

    def log_lines(self, event: str) -> list[str]:
        """Lines of every controller log of this module that carry `event`."""
        return [
            line
            for path in sorted(self.state_dir.glob("*.log"))
            for line in path.read_text().splitlines()
            if event in line
        ]


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def raw_post_status(port: int, headers: dict[str, str]) -> int:
    """Send a request head only (no body) and return the status the server answers with: what a
    client announcing a huge body sees before it has sent a byte of it."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST /webhook/git HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def holds(probe: Callable[[], Any], seconds: float, what: str) -> None:
    """Assert `probe` stays true for `seconds` (for things that must NOT happen within a bound)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert probe(), f"{what} stopped holding"
        time.sleep(0.5)


@dataclass
class Sample:
    at: float  # wall time, epoch seconds (Prometheus' clock)
    deployments: dict[str, dict[str, dict[str, Any]]]  # region -> Deployment name -> facts
    weights: dict[str, int]


class RegionWatcher:
    """Samples what the regions and the global weights show, independently of the controller's
    records, every `interval_s` in a background thread."""

    def __init__(self, shop: Shop, interval_s: float = 0.5):
        self.shop = shop
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="region-watcher", daemon=True)

    def __enter__(self) -> RegionWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        apis = {r: self.shop.lab.api_client(c) for r, c in self.shop.lab.region_contexts.items()}
        while not self._stop.is_set():
            at = time.time()
            try:
                deployments = {r: self.shop.region_deployments(r, api) for r, api in apis.items()}
                self.samples.append(Sample(at, deployments, self.shop.weights()))
            except Exception:  # noqa: BLE001 - a missed sample only widens the bounds; counted
                self.errors += 1
            self._stop.wait(self.interval_s)

    def started(self, region: str, version: str) -> float | None:
        """First time the region ran `version` in any Deployment with replicas."""
        for s in self.samples:
            if any(d["version"] == version and d["replicas"] > 0 for d in s.deployments[region].values()):
                return s.at
        return None

    def finished(self, region: str, version: str) -> float | None:
        """First time, after it started, that every Deployment with replicas ran `version`."""
        began = self.started(region, version)
        if began is None:
            return None
        for s in self.samples:
            live = [d for d in s.deployments[region].values() if d["replicas"] > 0]
            if s.at >= began and live and all(d["version"] == version for d in live):
                return s.at
        return None

    def weight_below(self, region: str, limit: int) -> list[float]:
        return [s.at for s in self.samples if s.weights.get(region, 100) < limit]

    @property
    def gap_s(self) -> float:
        """The largest time between two samples: the resolution of every figure read here."""
        times = [s.at for s in self.samples]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def _phase_in(release: dict[str, Any] | None, phases: set[str]) -> dict[str, Any] | None:
    return release if release and (release.get("status") or {}).get("phase") in phases else None


def _describe(release: dict[str, Any] | None) -> str:
    if release is None:
        return "no such release"
    status = release.get("status") or {}
    regions = {n: r.get("phase") for n, r in (status.get("regions") or {}).items()}
    return f"phase={status.get('phase')} wave={status.get('currentWave')} regions={regions} msg={status.get('message')}"


def wait_for(probe: Callable[[], Any], timeout_s: float, what: str, describe: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; {describe()}")


@pytest.fixture(scope="module")
def shop(
    request: pytest.FixtureRequest, lab: Lab, lab_traffic: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    """A module may set PLAN_OVERRIDES (top-level plan fields, or smokeWindow for every wave)."""
    state = tmp_path_factory.mktemp("e2e")
    install_crds(lab.kubeconfig, lab.home_context)
    # integration suites run before e2e on the same lab and may leave Releases of other Git
    # servers behind; a controller would find them and the app's next release would wait on them
    _cleanup(lab)
    identities = install_identities(lab, state)
    git = GitServer(state / "git").start()
    clone = git.clone(state / "clone")
    overrides = getattr(request.module, "PLAN_OVERRIDES", None)
    changes = single_app_changes(APP, lambda p: (clone.path / p).read_text(), set(lab.region_contexts), overrides)
    for other in (d for d in (clone.path / "apps").iterdir() if d.is_dir() and d.name != APP):
        changes.update({str(f.relative_to(clone.path)): None for f in other.rglob("*") if f.is_file()})
    git.commit_files(changes, "e2e: checkout only, at lab scale")
    sim = lab_traffic.client()
    sim.set_apps([AppSpec(APP, APP, RATE_RPS)])
    shop = Shop(lab, git, state / "clone", sim, lab_traffic.prometheus_url, state, identities)
    try:
        yield shop
    finally:
        shop.stop_controllers()
        git.stop()
        _cleanup(lab)
        # the policy goes (other suites sharing the lab create actions as the admin); RBAC stays
        for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
            lab.kubectl(lab.home_context, "delete", "--ignore-not-found", kind, POLICY, check=False)


def install_identities(lab: Lab, state: Path) -> Identities:
    """deploy/base's RBAC and admission policy in home, the region deployer in every region, the
    app's namespace granted to the deployer, and kubeconfigs for the controller and two people."""
    home = lab.home_context
    for name in HOME_MANIFESTS:
        lab.kubectl(home, "apply", "--server-side", "--force-conflicts", "-f", str(BASE / name))
    grant = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "rollout-deployer", "namespace": APP},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "rollout-region-deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": "rollout-deployer", "namespace": NAMESPACE}],
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APP}}
    # the operator's grant of the app's namespace to the deployer (deploy/base/region's template)
    template = BASE / "region" / "app-namespace.yaml"
    app_grant = (
        template.read_text().replace("APP_NAMESPACE", APP)
        if template.exists()
        else yaml.safe_dump_all([namespace, grant])
    )
    tokens = {home: _token(lab, home, "rollout-controller")}
    for context in lab.region_contexts.values():
        lab.kubectl(context, "apply", "--server-side", "--force-conflicts", "-k", str(BASE / "region"))
        lab.kubectl(context, "apply", "--server-side", "--force-conflicts", "-f", "-", input=app_grant)
        tokens[context] = _token(lab, context, "rollout-deployer")
    admin = yaml.safe_load(lab.kubeconfig.read_text())
    controller = _kubeconfig(
        state / "controller.kubeconfig", admin, home, {ctx: {"token": token} for ctx, token in tokens.items()}
    )
    ca = CertificateAuthority(lab.pki)
    people = {}
    for person, role in ((RESPONDER, "rollout-responder"), (VIEWER, "rollout-viewer")):
        pair = ca.issue(f"e2e-{person}", person)
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{person}-{role}", "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": person}],
        }
        lab.kubectl(home, "apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(binding))
        people[person] = _kubeconfig(
            state / f"{person}.kubeconfig",
            admin,
            home,
            {home: {"client-certificate": str(pair.cert), "client-key": str(pair.key)}},
        )
    wait_for(lambda: _policy_active(lab), 60, "the admission policy to refuse a forged requester")
    return Identities(controller, people)


def _token(lab: Lab, context: str, account: str) -> str:
    out = lab.kubectl(context, "-n", NAMESPACE, "create", "token", account, "--duration=8h")
    return str(out.stdout).strip()


def _kubeconfig(path: Path, admin: dict[str, Any], current: str, users: dict[str, dict[str, str]]) -> Path:
    """The lab's clusters (servers, CA) with one user per context: nothing of the admin's identity."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [c for c in admin["clusters"] if c["name"] in users],
        "users": [{"name": f"{ctx}-user", "user": user} for ctx, user in users.items()],
        "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": f"{ctx}-user"}} for ctx in users],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def _policy_active(lab: Lab) -> bool:
    """Policies take effect asynchronously: true once a forged requester is refused (dry run)."""
    body = {
        "apiVersion": "rollout.dev/v1alpha1",
        "kind": "ReleaseAction",
        "metadata": {"generateName": "probe-"},
        "spec": {"action": "pause", "app": APP, "reason": "policy probe", "requestedBy": "someone-else"},
    }
    custom = client.CustomObjectsApi(lab.api_client(lab.home_context))
    try:
        custom.create_namespaced_custom_object(
            "rollout.dev", "v1alpha1", NAMESPACE, "releaseactions", body, dry_run="All"
        )
    except client.exceptions.ApiException as exc:
        return exc.status == 422 and POLICY in (exc.body or "")
    return False


def _cleanup(lab: Lab, apps: Sequence[str] = (APP,)) -> None:
    """Leave the lab as the next module expects it: no releases, none of `apps`, full weights."""
    custom = client.CustomObjectsApi(lab.api_client(lab.home_context))
    for plural in ("releases", "releaseactions", "rolloutsources"):
        for item in custom.list_namespaced_custom_object("rollout.dev", "v1alpha1", NAMESPACE, plural)["items"]:
            custom.delete_namespaced_custom_object(
                "rollout.dev", "v1alpha1", NAMESPACE, plural, item["metadata"]["name"]
            )
    for app in apps:
        with contextlib.suppress(client.exceptions.ApiException):
            custom.delete_namespaced_custom_object("externaldns.k8s.io", "v1alpha1", NAMESPACE, "dnsendpoints", app)
    cores = [client.CoreV1Api(lab.api_client(context)) for context in lab.region_contexts.values()]
    for core in cores:
        for app in apps:
            with contextlib.suppress(client.exceptions.ApiException):
                core.delete_namespace(app)

    def gone() -> bool:
        return not any(ns.metadata.name in apps for core in cores for ns in core.list_namespace().items)

    wait_for(gone, 120, f"namespaces {', '.join(apps)} to be deleted in every region")

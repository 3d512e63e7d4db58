"""The lab's Kubernetes part: one real control plane per region plus `home`, on loopback.

One shared etcd (each cluster under its own --etcd-prefix); per cluster a kube-apiserver (TLS,
client-cert authentication, Node+RBAC authorisation, service-account token signing), a
kube-controller-manager and, for regions, a kube-scheduler and kwok playing `nodes_per_region`
fake nodes with the lab's deterministic stage set (deploy/lab/kwok/stages.yaml). `home` holds the
controller's state and the global-traffic DNSEndpoints (namespace `rollout-system`); it runs no
workloads, so no scheduler or kwok.

Everything lives in the state folder: pki/, pids/, logs/, etcd/, one kubeconfig (`kubeconfig`,
a context per cluster, user `lab-admin` in system:masters) and `lab.json`, which lets another
process (`rollout-lab status|down`) find the running lab.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
import structlog
import yaml

from deploy.lab import procs
from deploy.lab.build import builder, versions
from deploy.lab.pki import CertificateAuthority, KeyPair, service_account_keys
from deploy.lab.procs import wait_until  # the lab's one condition poll (tests import it from here too)

log = structlog.get_logger(__name__)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_REGIONS = REPO / "config" / "examples" / "shop" / "regions"
STAGES = Path(__file__).resolve().parent / "kwok" / "stages.yaml"
VENDORED_DNSENDPOINT_CRD = Path(__file__).resolve().parent / "crds" / "dnsendpoints.externaldns.k8s.io.yaml"
HOME = "home"
HOME_NAMESPACE = "rollout-system"
DNSENDPOINT_GROUP = "externaldns.k8s.io"
ADMIN_USER = "lab-admin"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
FAULT_LABEL = "lab.rollout.dev/fault"  # values: never-ready, crash-loop (see stages.yaml)
SERVICE_CIDR = "10.96.0.0/16"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


class LabError(RuntimeError):
    """The lab could not be started (the message names the component and its log tail)."""


@dataclass(frozen=True)
class RegionRef:
    name: str  # region name (config field `name`)
    context: str  # kubeconfig context (config field `cluster`)


def default_regions(directory: Path = EXAMPLE_REGIONS) -> list[RegionRef]:
    """The example repository's regions, sorted by name."""
    out = []
    for f in sorted(directory.glob("*.yaml")):
        doc = yaml.safe_load(f.read_text()) or {}
        out.append(RegionRef(doc["name"], doc.get("cluster") or doc["name"]))
    return out


def select_regions(names: Sequence[str] | None, directory: Path = EXAMPLE_REGIONS) -> list[RegionRef]:
    """Regions by name from the example set; unknown names get a context of the same name."""
    known = {r.name: r for r in default_regions(directory)}
    if not names:
        return list(known.values())
    return [known.get(n, RegionRef(n, n)) for n in names]


@dataclass(frozen=True)
class ClusterInfo:
    """One control plane: its context and the ports of its components."""

    context: str
    region: str | None  # None for home
    apiserver_port: int
    controller_manager_port: int
    scheduler_port: int | None = None
    kwok_port: int | None = None
    nodes: int = 0

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def runs_workloads(self) -> bool:
        return self.kwok_port is not None


@dataclass
class LabState:
    """What lab.json holds."""

    etcd_client_port: int
    etcd_peer_port: int
    clusters: list[ClusterInfo] = field(default_factory=list)
    started_at: float = 0.0
    ready_after_s: float = 0.0


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int
    port: int | None
    alive: bool
    healthy: bool
    rss_bytes: int


class Lab:
    """A set of real control planes. `Lab(state_dir, regions).up()` ... `.down()`."""

    def __init__(
        self,
        state_dir: Path,
        regions: Sequence[RegionRef] | None = None,
        *,
        nodes_per_region: int = 3,
        home: bool = True,
        ready_timeout_s: float = 120.0,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.regions = list(regions) if regions is not None else default_regions()
        self.nodes_per_region = nodes_per_region
        self.home = home
        self.ready_timeout_s = ready_timeout_s
        self.state: LabState | None = None

    # --- paths and identities -------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def admin_cert(self) -> tuple[str, str]:
        return str(self.pki / "admin.crt"), str(self.pki / "admin.key")

    @property
    def ca_file(self) -> str:
        return str(self.pki / "ca.crt")

    @property
    def clusters(self) -> list[ClusterInfo]:
        return list(self.state.clusters) if self.state else []

    @property
    def contexts(self) -> list[str]:
        return [c.context for c in self.clusters]

    @property
    def region_contexts(self) -> dict[str, str]:
        """region name -> context, regions only."""
        return {c.region: c.context for c in self.clusters if c.region is not None}

    @property
    def home_context(self) -> str:
        return HOME

    def cluster(self, context: str) -> ClusterInfo:
        for c in self.clusters:
            if c.context == context:
                return c
        raise KeyError(context)

    def api_client(self, context: str) -> Any:
        """A `kubernetes.client.ApiClient` for `context` as lab-admin."""
        from kubernetes import config as kconfig

        return kconfig.new_client_from_config(config_file=str(self.kubeconfig), context=context)

    def kubectl(
        self, context: str, *args: str, input: str | None = None, check: bool = True, timeout_s: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--context", context, *args]
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout_s, check=False)
        if check and res.returncode != 0:
            raise LabError(f"kubectl {' '.join(args)} ({context}) failed: {res.stderr.strip()[-2000:]}")
        return res

    def get(self, context: str, path: str, timeout_s: float = 5.0) -> requests.Response:
        """GET an API path as lab-admin (cheap readiness polls without a client object)."""
        return requests.get(
            self.cluster(context).server + path, verify=self.ca_file, cert=self.admin_cert, timeout=timeout_s
        )

    # --- lifecycle ------------------------------------------------------------------------------

    @classmethod
    def load(cls, state_dir: Path) -> Lab:
        """The lab recorded in `state_dir/lab.json` (raises FileNotFoundError if none)."""
        lab = cls(state_dir, regions=[])
        raw = json.loads((lab.state_dir / "lab.json").read_text())
        clusters = [ClusterInfo(**c) for c in raw.pop("clusters")]
        lab.state = LabState(clusters=clusters, **raw)
        lab.regions = [RegionRef(c.region, c.context) for c in clusters if c.region]
        lab.home = any(c.context == HOME for c in clusters)
        return lab

    def up(self, attempts: int = 3) -> Lab:
        """Start everything and wait until Deployments can roll; cleans leftovers first.

        Ports are picked free but only bound by the components later, so another process (another
        lab on this machine) can take one in between: such a start is retried with fresh ports.
        """
        for attempt in range(1, attempts + 1):
            try:
                return self._up_once()
            except (LabError, procs.ProcessError) as exc:
                if attempt == attempts or not self._port_clash():
                    raise
                log.warning("lab.up.port_clash_retry", attempt=attempt, error=str(exc)[:200])
        raise AssertionError("unreachable")

    def _port_clash(self) -> bool:
        logs = (self.state_dir / "logs").glob("*.log")
        return any("address already in use" in f.read_text(errors="replace") for f in logs)

    def _up_once(self) -> Lab:
        t0 = time.monotonic()
        self.down(quiet=True)
        for sub in ("pki", "pids", "logs", "etcd", "clusters"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        binaries = self._binaries()
        lab_crds()  # parse once here, not in every cluster's thread
        self.state = self._plan()
        self._write_pki()
        self._write_kubeconfigs()
        self._save()
        try:
            self._start_etcd(binaries["etcd"])
            with ThreadPoolExecutor(max_workers=len(self.state.clusters)) as pool:
                list(pool.map(lambda c: self._bring_up(c, binaries), self.state.clusters))
        except BaseException:
            log.error("lab.up.failed", state_dir=str(self.state_dir))
            self.down(keep_logs=True, quiet=True)
            raise
        self.state.started_at = time.time()
        self.state.ready_after_s = round(time.monotonic() - t0, 1)
        self._save()
        log.info("lab.up", contexts=self.contexts, seconds=self.state.ready_after_s, kubeconfig=str(self.kubeconfig))
        return self

    def down(self, *, keep_logs: bool = False, quiet: bool = False) -> list[str]:
        """Stop every process recorded in pids/ (workers first, etcd last) and remove the state.

        Returns the names of processes that had to be SIGKILLed.
        """
        recs = procs.records(self.state_dir)
        tiers = [
            [r for r in recs if r.name.startswith(("kwok", "scheduler", "controller-manager"))],
            [r for r in recs if r.name.startswith("apiserver")],
            [r for r in recs if r.name == "etcd"],
        ]
        rest = [r for r in recs if not any(r in t for t in tiers)]
        killed: list[str] = []
        for tier in [*tiers, rest]:
            if tier:
                killed += procs.stop(tier, self.state_dir)
        if recs and not quiet:
            log.info("lab.down", stopped=[r.name for r in recs], killed=killed)
        self._clean_state(keep_logs)
        self.state = None
        return killed

    def status(self) -> list[ComponentStatus]:
        out = []
        for r in procs.records(self.state_dir):
            is_alive = procs.alive(r)
            cert = self.admin_cert if r.name.startswith("apiserver") else None
            ok = is_alive and procs.healthy(r, ca=self.ca_file, cert=cert)
            out.append(ComponentStatus(r.name, r.pid, r.port, is_alive, ok, procs.rss_bytes(r) if is_alive else 0))
        return out

    def processes(self) -> list[procs.ProcessRecord]:
        return procs.records(self.state_dir)

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # --- planning and files ---------------------------------------------------------------------

    def _binaries(self) -> dict[str, str]:
        names = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
        paths = {n: builder.binary(n) for n in names}
        missing = [n for n, p in paths.items() if not p.is_file()]
        if missing:
            raise LabError(f"missing lab binaries {missing}: run `rollout-lab build` first")
        return {n: str(p) for n, p in paths.items()}

    def _plan(self) -> LabState:
        taken: set[int] = set()
        port = lambda: procs.free_port(taken)  # noqa: E731
        clusters = [
            ClusterInfo(r.context, r.name, port(), port(), port(), port(), self.nodes_per_region) for r in self.regions
        ]
        if self.home:
            clusters.append(ClusterInfo(HOME, None, port(), port()))
        contexts = [c.context for c in clusters]
        if len(set(contexts)) != len(contexts):
            raise LabError(f"duplicate contexts in {contexts}")
        return LabState(etcd_client_port=port(), etcd_peer_port=port(), clusters=clusters)

    def _save(self) -> None:
        assert self.state is not None
        tmp = self.state_dir / ".lab.json.tmp"
        tmp.write_text(json.dumps(asdict(self.state), indent=2))
        tmp.rename(self.state_dir / "lab.json")

    def _write_pki(self) -> None:
        ca = CertificateAuthority(self.pki)
        hosts = (
            "127.0.0.1",
            "localhost",
            "10.96.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
        ca.issue("apiserver", "kube-apiserver", server=True, hosts=hosts)
        # Serving certs for the controller manager's and scheduler's health ports: probes verify TLS.
        ca.issue("components-serving", "lab-components", server=True, hosts=("127.0.0.1", "localhost"))
        ca.issue("admin", ADMIN_USER, orgs=("system:masters",))
        # The controller manager and scheduler use their built-in RBAC identities, as in kubeadm.
        ca.issue("controller-manager", "system:kube-controller-manager")
        ca.issue("scheduler", "system:kube-scheduler")
        ca.issue("kwok", "lab:kwok", orgs=("system:masters",))
        service_account_keys(self.pki)

    def _write_kubeconfigs(self) -> None:
        assert self.state is not None
        users = {ADMIN_USER: KeyPair(*map(Path, self.admin_cert))}
        self.kubeconfig.write_text(render_kubeconfig(self.state.clusters, self.ca_file, users, ADMIN_USER))
        self.kubeconfig.chmod(0o600)
        for c in self.state.clusters:
            d = self._cluster_dir(c)
            d.mkdir(parents=True, exist_ok=True)
            for ident in ("controller-manager", "scheduler", "kwok"):
                pair = KeyPair(self.pki / f"{ident}.crt", self.pki / f"{ident}.key")
                (d / f"{ident}.kubeconfig").write_text(render_kubeconfig([c], self.ca_file, {ident: pair}, ident))

    def _cluster_dir(self, c: ClusterInfo) -> Path:
        return self.state_dir / "clusters" / c.context

    def _clean_state(self, keep_logs: bool) -> None:
        """Remove what the cluster part wrote; other lab parts' files are theirs to clean."""
        mine = ["pki", "etcd", "clusters", "kubeconfig", "lab.json", ".lab.json.tmp"]
        if not keep_logs:
            mine.append("logs")
        for name in mine:
            path = self.state_dir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (self.state_dir / "pids").rmdir()  # only if no other part still records a process
            self.state_dir.rmdir()

    # --- processes ------------------------------------------------------------------------------

    def _start_etcd(self, etcd: str) -> None:
        assert self.state is not None
        cp, pp = self.state.etcd_client_port, self.state.etcd_peer_port
        argv = [
            etcd,
            "--name=lab",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{cp}",
            f"--advertise-client-urls=http://127.0.0.1:{cp}",
            f"--listen-peer-urls=http://127.0.0.1:{pp}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{pp}",
            f"--initial-cluster=lab=http://127.0.0.1:{pp}",
            "--unsafe-no-fsync=true",  # a throw-away lab: durability buys nothing, fsync costs seconds
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ]
        rec = procs.start("etcd", argv, state_dir=self.state_dir, port=cp, health_url=f"http://127.0.0.1:{cp}/health")
        procs.wait_healthy(rec, self.ready_timeout_s)

    def _bring_up(self, c: ClusterInfo, binaries: dict[str, str]) -> None:
        t0 = time.monotonic()
        api = self._start_apiserver(c, binaries["kube-apiserver"])
        procs.wait_healthy(api, self.ready_timeout_s, ca=self.ca_file, cert=self.admin_cert)
        t_api = time.monotonic()
        workers = [self._start_controller_manager(c, binaries["kube-controller-manager"])]
        if c.runs_workloads:
            workers += [
                self._start_scheduler(c, binaries["kube-scheduler"]),
                self._start_kwok(c, binaries["kwok"]),
            ]
        self._install(c)
        t_install = time.monotonic()
        for w in workers:
            procs.wait_healthy(w, self.ready_timeout_s, ca=self.ca_file)
        self._wait_ready(c)
        end = time.monotonic()
        log.info(
            "lab.cluster.ready",
            context=c.context,
            seconds=round(end - t0, 1),
            apiserver_ready=round(t_api - t0, 1),
            installed=round(t_install - t_api, 1),
            nodes_ready=round(end - t_install, 1),
        )

    def _start_apiserver(self, c: ClusterInfo, binary: str) -> procs.ProcessRecord:
        assert self.state is not None
        argv = [
            binary,
            f"--etcd-servers=http://127.0.0.1:{self.state.etcd_client_port}",
            f"--etcd-prefix=/registry/{c.context}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={c.apiserver_port}",
            f"--tls-cert-file={self.pki / 'apiserver.crt'}",
            f"--tls-private-key-file={self.pki / 'apiserver.key'}",
            f"--client-ca-file={self.ca_file}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer=https://{c.context}.lab.regional-rollout.invalid",
            f"--service-account-key-file={self.pki / 'sa.pub'}",
            f"--service-account-signing-key-file={self.pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # Endpoints may not hold loopback addresses; no pod reaches this apiserver anyway.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={self._cluster_dir(c) / 'apiserver'}",
            "--profiling=false",
        ]
        return procs.start(
            f"apiserver-{c.context}",
            argv,
            state_dir=self.state_dir,
            port=c.apiserver_port,
            health_url=f"{c.server}/readyz",
        )

    def _start_controller_manager(self, c: ClusterInfo, binary: str) -> procs.ProcessRecord:
        kc = self._cluster_dir(c) / "controller-manager.kubeconfig"
        argv = [
            binary,
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={c.controller_manager_port}",
            *self._serving_flags(),
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self.ca_file}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            f"--cluster-name={c.context}",
            "--profiling=false",
        ]
        return procs.start(
            f"controller-manager-{c.context}",
            argv,
            state_dir=self.state_dir,
            port=c.controller_manager_port,
            health_url=f"https://127.0.0.1:{c.controller_manager_port}/healthz",
        )

    def _serving_flags(self) -> list[str]:
        return [
            f"--tls-cert-file={self.pki / 'components-serving.crt'}",
            f"--tls-private-key-file={self.pki / 'components-serving.key'}",
        ]

    def _start_scheduler(self, c: ClusterInfo, binary: str) -> procs.ProcessRecord:
        kc = self._cluster_dir(c) / "scheduler.kubeconfig"
        argv = [
            binary,
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={c.scheduler_port}",
            *self._serving_flags(),
            "--leader-elect=false",
            "--profiling=false",
        ]
        return procs.start(
            f"scheduler-{c.context}",
            argv,
            state_dir=self.state_dir,
            port=c.scheduler_port,
            health_url=f"https://127.0.0.1:{c.scheduler_port}/healthz",
        )

    def _start_kwok(self, c: ClusterInfo, binary: str) -> procs.ProcessRecord:
        argv = [
            binary,
            f"--kubeconfig={self._cluster_dir(c) / 'kwok.kubeconfig'}",
            f"--config={STAGES}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            "--node-lease-duration-seconds=40",
            "--cidr=10.244.0.0/16",  # pod IPs; the default /24 would cap a region at 254 pods
            f"--server-address=127.0.0.1:{c.kwok_port}",
        ]
        # kwok reads ~/.kwok/kwok.yaml when present: pin HOME so only our stage set is ever loaded.
        env = {"HOME": str(self._cluster_dir(c)), "PATH": "/usr/bin:/bin"}
        return procs.start(
            f"kwok-{c.context}",
            argv,
            state_dir=self.state_dir,
            port=c.kwok_port,
            health_url=f"http://127.0.0.1:{c.kwok_port}/healthz",
            env=env,
        )

    # --- objects --------------------------------------------------------------------------------

    def _install(self, c: ClusterInfo) -> None:
        """CRDs, nodes and namespaces by server-side apply over REST (no kubectl start-up and discovery
        per cluster; server-side also because the Gateway API CRDs exceed the client-side annotation limit)."""
        # Home serves only the global-traffic DNSEndpoints: the Gateway API CRDs (CEL-heavy, seconds of
        # apiserver CPU each) are installed where routes live, in the regions.
        wanted = lab_crds() if c.region else [o for o in lab_crds() if o["spec"].get("group") == DNSENDPOINT_GROUP]
        objects = [*wanted, *(node_manifest(c, i) for i in range(c.nodes))]
        if c.context == HOME:
            objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": HOME_NAMESPACE}})
        session = requests.Session()
        # Per request, not session.verify: requests lets REQUESTS_CA_BUNDLE override a session's verify.
        tls: dict[str, Any] = {"verify": self.ca_file, "cert": self.admin_cert}
        for obj in objects:
            t_obj = time.monotonic()
            resp = session.patch(
                c.server + object_path(obj),
                params={"fieldManager": "rollout-lab", "force": "true"},
                data=json.dumps(obj),
                headers={"Content-Type": "application/apply-patch+yaml"},
                timeout=30,
                **tls,
            )
            if resp.status_code >= 300:
                raise LabError(
                    f"{c.context}: apply {obj['kind']}/{obj['metadata']['name']}: {resp.status_code} {resp.text[:500]}"
                )
            log.debug(
                "lab.apply",
                context=c.context,
                kind=obj["kind"],
                name=obj["metadata"]["name"],
                seconds=round(time.monotonic() - t_obj, 2),
            )
        crds = [o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"]
        wait_until(lambda: self._unestablished(session, tls, c, crds), 60, f"{c.context} CRDs established")

    @staticmethod
    def _unestablished(session: requests.Session, tls: dict[str, Any], c: ClusterInfo, names: list[str]) -> str | None:
        for name in names:
            resp = session.get(
                f"{c.server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", timeout=10, **tls
            )
            if resp.status_code != 200:
                return f"{name}: HTTP {resp.status_code}"
            # A CRD just created may carry "status": {"conditions": null} until the apiserver fills it in.
            status = resp.json().get("status") or {}
            conds = {x["type"]: x["status"] for x in status.get("conditions") or []}
            if conds.get("Established") != "True":
                return f"{name} not Established"
        return None

    def _wait_ready(self, c: ClusterInfo) -> None:
        """Nodes Ready without the not-ready taint, and the default ServiceAccount created."""
        wait_until(lambda: self._not_ready_reason(c), self.ready_timeout_s, f"{c.context} ready")

    def wait_for_service_account(
        self, context: str, namespace: str, name: str = "default", timeout_s: float = 60.0
    ) -> None:
        """Pods are refused until the controller manager has created the namespace's ServiceAccount."""
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}"

        def missing() -> str | None:
            try:
                return None if self.get(context, path).status_code == 200 else f"no {namespace}/{name} yet"
            except requests.RequestException as exc:
                return str(exc)

        wait_until(missing, timeout_s, f"ServiceAccount {namespace}/{name} in {context}")

    def _not_ready_reason(self, c: ClusterInfo) -> str | None:
        try:
            if self.get(c.context, "/api/v1/namespaces/default/serviceaccounts/default").status_code != 200:
                return "no default ServiceAccount yet"
            nodes = self.get(c.context, "/api/v1/nodes").json().get("items", [])
        except requests.RequestException as exc:
            return str(exc)
        if len(nodes) < c.nodes:
            return f"{len(nodes)}/{c.nodes} nodes"
        for n in nodes:
            if not node_schedulable(n):
                return f"node {n['metadata']['name']} not Ready/schedulable yet"
        return None


def node_schedulable(node: dict[str, Any]) -> bool:
    ready = any(
        cond["type"] == "Ready" and cond["status"] == "True" for cond in node.get("status", {}).get("conditions", [])
    )
    tainted = any(t["key"].startswith("node.kubernetes.io/") for t in node.get("spec", {}).get("taints") or [])
    return ready and not tainted


def node_manifest(c: ClusterInfo, index: int) -> dict[str, Any]:
    name = f"{c.context}-node-{index}"
    zone = f"{c.region or c.context}-{'abc'[index % 3]}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "topology.kubernetes.io/region": c.region or c.context,
                "topology.kubernetes.io/zone": zone,
            },
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        },
    }


def render_kubeconfig(clusters: Sequence[ClusterInfo], ca_file: str, users: dict[str, KeyPair], user: str) -> str:
    """Certificates by path: the Python client then needs no temp files outside the state folder."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": c.context, "cluster": {"server": c.server, "certificate-authority": ca_file}} for c in clusters
        ],
        "users": [
            {"name": n, "user": {"client-certificate": str(p.cert), "client-key": str(p.key)}} for n, p in users.items()
        ],
        "contexts": [{"name": c.context, "context": {"cluster": c.context, "user": user}} for c in clusters],
        "current-context": clusters[0].context if clusters else "",
    }
    return yaml.safe_dump(doc, sort_keys=False)


_PATHS = {  # kind -> (API prefix, plural) for what the lab applies; all cluster-scoped
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions"),
    "ValidatingAdmissionPolicy": ("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicies"),
    "ValidatingAdmissionPolicyBinding": ("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings"),
    "Node": ("/api/v1", "nodes"),
    "Namespace": ("/api/v1", "namespaces"),
}


def object_path(obj: dict[str, Any]) -> str:
    prefix, plural = _PATHS[obj["kind"]]
    return f"{prefix}/{plural}/{obj['metadata']['name']}"


def lab_crds() -> list[dict[str, Any]]:
    """Gateway API standard channel (the resources its config/crd kustomization lists) + DNSEndpoint."""
    return list(_load_crds())


@functools.cache
def _load_crds() -> tuple[dict[str, Any], ...]:
    root = gateway_api_crds()
    files = [root / f for f in yaml.safe_load((root / "kustomization.yaml").read_text())["resources"]]
    # libyaml: the pure-Python loader needs seconds for these ~1 MB of CRDs.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(d for f in [*files, dnsendpoint_crd()] for d in yaml.load_all(f.read_text(), Loader=loader) if d)


def gateway_api_crds() -> Path:
    """The gateway-api module's standard-channel kustomization folder (config/crd)."""
    return go_module_dir("sigs.k8s.io/gateway-api", versions.GATEWAY_API) / "config" / "crd"


def dnsendpoint_crd() -> Path:
    """The DNSEndpoint CRD from the external-dns module when it is in the module cache, else our copy."""
    rel = Path("config/crd/standard/dnsendpoints.externaldns.k8s.io.yaml")
    with contextlib.suppress(OSError, subprocess.SubprocessError, KeyError, ValueError):
        cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout
        path = Path(cache.strip()) / f"sigs.k8s.io/external-dns@{versions.EXTERNAL_DNS}" / rel
        if path.is_file():
            return path
    return VENDORED_DNSENDPOINT_CRD


_MODULE_DIRS: dict[str, Path] = {}


def go_module_dir(module: str, version: str) -> Path:
    """`go mod download -json` -> .Dir; served from the module cache after the first call."""
    key = f"{module}@{version}"
    if key not in _MODULE_DIRS:
        res = subprocess.run(
            ["go", "mod", "download", "-json", key],
            capture_output=True,
            text=True,
            check=False,
            env=builder._go_env(),
        )
        try:
            _MODULE_DIRS[key] = Path(json.loads(res.stdout)["Dir"])
        except (ValueError, KeyError) as exc:
            raise LabError(f"go mod download {key} failed: {res.stdout[-500:]} {res.stderr[-500:]}") from exc
    return _MODULE_DIRS[key]


@contextlib.contextmanager
def running_lab(state_dir: Path, regions: Sequence[RegionRef] | None = None, **kw: Any) -> Iterator[Lab]:
    lab = Lab(state_dir, regions, **kw).up()
    try:
        yield lab
    finally:
        lab.down()

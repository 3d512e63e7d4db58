"""Process hygiene and PKI of the lab, without the lab binaries."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from cryptography import x509

from deploy.lab import procs
from deploy.lab.cluster import ClusterInfo, Lab, node_manifest, node_schedulable, render_kubeconfig
from deploy.lab.pki import CertificateAuthority


def test_start_and_stop_by_pidfile(tmp_path: Path) -> None:
    rec = procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"], state_dir=tmp_path)
    assert procs.alive(rec)
    loaded = procs.records(tmp_path)
    assert [r.pid for r in loaded] == [rec.pid]
    assert procs.stop(loaded, tmp_path, deadline_s=5) == []
    assert not procs.alive(rec)
    assert procs.records(tmp_path) == []


def test_sigkill_after_deadline(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(600)"
    )
    rec = procs.start("stubborn", [sys.executable, "-c", code], state_dir=tmp_path)
    log = Path(rec.log_file)
    end = time.monotonic() + 10.0
    while "up" not in log.read_text() and time.monotonic() < end:  # SIGTERM must arrive after the handler
        time.sleep(0.02)
    assert procs.stop([rec], tmp_path, deadline_s=0.5) == ["stubborn"]
    assert not procs.alive(rec)


def test_recycled_pid_is_not_ours(tmp_path: Path) -> None:
    rec = procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"], state_dir=tmp_path)
    impostor = procs.ProcessRecord(rec.name, rec.pid, rec.start_ticks + 1, rec.argv, rec.log_file)
    assert not procs.alive(impostor)
    procs.stop([impostor], tmp_path)  # must not signal the real process
    assert procs.alive(rec)
    procs.stop([rec], tmp_path)
    assert not procs.alive(rec)


def test_free_port_is_bindable() -> None:
    taken: set[int] = set()
    port = procs.free_port(taken)
    assert port in taken
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_ca_issues_client_and_server_certs(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    admin = ca.issue("admin", "lab-admin", orgs=("system:masters",))
    cert = x509.load_pem_x509_certificate(admin.cert.read_bytes())
    assert cert.subject.rfc4514_string() == "CN=lab-admin,O=system:masters"
    ca_cert = x509.load_pem_x509_certificate(ca.pair.cert.read_bytes())
    cert.verify_directly_issued_by(ca_cert)
    pair = ca.issue("s", "s", server=True, hosts=("127.0.0.1", "lh"))
    server = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert CertificateAuthority(tmp_path).pair == ca.pair  # reloaded, not regenerated


def test_kubeconfig_has_a_context_per_cluster(tmp_path: Path) -> None:
    import yaml

    from deploy.lab.pki import KeyPair

    clusters = [ClusterInfo("eu-west", "eu-west", 1001, 1002, 1003, 1004, 3), ClusterInfo("home", None, 2001, 2002)]
    doc = yaml.safe_load(
        render_kubeconfig(clusters, "/x/ca.crt", {"lab-admin": KeyPair(Path("a.crt"), Path("a.key"))}, "lab-admin")
    )
    assert [c["name"] for c in doc["contexts"]] == ["eu-west", "home"]
    assert doc["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:2001"


def test_nodes_are_kwok_managed_and_untainted() -> None:
    node = node_manifest(ClusterInfo("eu-west", "eu-west", 1, 2, 3, 4, 3), 1)
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["metadata"]["labels"]["topology.kubernetes.io/region"] == "eu-west"
    assert "taints" not in node.get("spec", {})
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}, "spec": {}}
    assert node_schedulable(ready)
    ready["spec"] = {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}
    assert not node_schedulable(ready)


def test_down_without_a_lab_is_harmless(tmp_path: Path) -> None:
    assert Lab(tmp_path / "nothing", regions=[]).down() == []

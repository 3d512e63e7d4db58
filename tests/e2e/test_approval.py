"""An approval gate in the lab (issue 17 item 2, 'done when'): the checkout plan's first wave needs
one approval from the group e2e-release-managers. The release waits without touching its first
region; an approval by a responder outside the group is refused (not counted); one by a member of
the group opens the gate and the region's Deployment appears. People act through the CLI with their
own client certificates; the group is the certificate's organisation, as the API server sees it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from deploy.lab.pki import CertificateAuthority
from rollout.cli import main
from tests.e2e.conftest import APP, NAMESPACE, RESPONDER, VIEWER, Shop, _kubeconfig, holds, wait_for

pytestmark = pytest.mark.e2e
# The gate is under test, not a strategy: a quick rolling update and a short smoke window.
PLAN_OVERRIDES = {
    "strategy": {"rolling": {"maxSurge": "50%", "maxUnavailable": 0, "progressDeadline": "60s"}},
    "smokeWindow": "2s",
}
APPROVER, GROUP = "e2e-dana", "e2e-release-managers"


def _bind(shop: Shop, person: str, role: str) -> str:
    name = f"{person}-{role}"
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": person}],
    }
    home = shop.lab.home_context
    shop.lab.kubectl(home, "apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(binding))
    return name


@pytest.fixture(scope="module")
def approver(shop: Shop) -> Iterator[Path]:
    """A member of GROUP (the certificate's O) who may respond and approve; the responder may approve
    too (RBAC), but is not in the group the gate allows."""
    pair = CertificateAuthority(shop.lab.pki).issue(f"e2e-{APPROVER}", APPROVER, orgs=(GROUP,))
    admin = yaml.safe_load(shop.lab.kubeconfig.read_text())
    home = shop.lab.home_context
    kubeconfig = _kubeconfig(
        shop.state_dir / f"{APPROVER}.kubeconfig",
        admin,
        home,
        {home: {"client-certificate": str(pair.cert), "client-key": str(pair.key)}},
    )
    bindings = [
        _bind(shop, APPROVER, "rollout-responder"),
        _bind(shop, APPROVER, "rollout-approver"),
        _bind(shop, RESPONDER, "rollout-approver"),
    ]
    try:
        yield kubeconfig
    finally:
        for name in bindings:
            shop.lab.kubectl(home, "-n", NAMESPACE, "delete", "--ignore-not-found", "rolebinding", name, check=False)


def test_a_gated_wave_waits_refuses_a_disallowed_approval_and_starts_once_an_allowed_one_approves(
    shop: Shop, approver: Path
) -> None:
    plan = yaml.safe_load(shop.git_show(shop.git.head(), f"apps/{APP}/rollout.yaml"))
    first = plan["waves"][0]
    first["approval"] = {"required": 1, "from": {"groups": [GROUP]}}
    shop.git.commit_files({f"apps/{APP}/rollout.yaml": yaml.safe_dump(plan, sort_keys=False)}, "e2e: gate wave 1")
    shop.start_controller()

    def waiting() -> dict[str, Any] | None:
        release = shop.release("1.4.0")
        gate = ((release or {}).get("status") or {}).get("awaitingApproval") or {}
        return release if gate.get("wave") == first["name"] else None

    release = wait_for(waiting, 60, f"1.4.0 to await approval for wave {first['name']}")
    assert release["status"].get("phase", "Pending") == "Pending"
    assert release["status"]["awaitingApproval"] == {
        "wave": first["name"],
        "required": 1,
        "have": 0,
        "from": f"groups {GROUP}",
    }
    region = release["spec"]["waves"][0]["regions"][0]
    holds(lambda: not shop.deployed(region), 3, f"no checkout Deployment in {region} while the gate is closed")

    def cli(person: str | Path, *args: str) -> Any:
        kube = (
            ["--kubeconfig", str(person), "--context", shop.lab.home_context]
            if isinstance(person, Path)
            else shop.cli_kube(person)
        )
        return CliRunner().invoke(main, [*args, *kube], terminal_width=200)

    approve = ("approve", APP, "--wave", first["name"], "--reason")
    viewed = cli(VIEWER, *approve, "e2e: a viewer tries")
    assert viewed.exit_code == 1 and "permission denied" in viewed.output, viewed.output
    outsider = cli(RESPONDER, *approve, "e2e: not in the group")
    assert outsider.exit_code == 1, outsider.output
    assert f"not counted: identity not allowed: {RESPONDER}" in outsider.output, outsider.output
    status = shop.release("1.4.0")["status"]
    assert status["awaitingApproval"]["have"] == 0 and not shop.deployed(region)

    allowed = cli(approver, *approve, "e2e: dashboards green")
    assert allowed.exit_code == 0, allowed.output
    assert f"counted: 1/1 approvals for wave {first['name']}" in allowed.output, allowed.output
    wait_for(lambda: "1.4.0" in shop.deployed(region).values(), 60, f"checkout 1.4.0 to run in {region}")
    status = shop.release("1.4.0")["status"]
    assert not status.get("awaitingApproval")
    approved = [a for a in status["audit"] if a["action"] == "approved"]
    assert len(approved) == 1 and APPROVER in approved[0]["reason"]
    assert [a["action"] for a in status["audit"]].count("awaiting-approval") == 1
    (mine,) = [a for a in status["approvals"] if a["by"] == APPROVER]
    assert mine["counted"] and GROUP in mine["groups"]

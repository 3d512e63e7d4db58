"""Controller benchmarks in the lab. Prints figures; asserts nothing (DESIGN §6).

    .venv/bin/python bench/controller_bench.py [--idle-apps 200]

1. Git push -> first region changed, with the webhook and with polling (5 s interval).
2. Failing check -> rollback started (from the status' own timestamps).
3. Drain to 99 % (the drain record, measured by the controller against Prometheus).
4. API requests and writes per reconcile that finds nothing to do.
5. Controller RSS and CPU with N apps x 5 regions of idle (Succeeded) releases.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from kubernetes import client

from deploy.lab import services
from deploy.lab.cluster import Lab
from deploy.lab.controllerproc import ControllerProcess, install_crds
from deploy.lab.demo import single_app_changes
from deploy.lab.gitserver import GitServer
from deploy.lab.simulator.model import AppSpec, FaultProfile

APP, NS, SECRET = "checkout", "rollout-system", "bench-secret"


def t(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Bench:
    def __init__(self, lab: Lab, traffic: services.ServicesHandle, git: GitServer, state: Path):
        self.lab, self.traffic, self.git, self.state = lab, traffic, git, state
        self.custom = client.CustomObjectsApi(lab.api_client(lab.home_context))
        self.apps = client.AppsV1Api(lab.api_client(lab.region_contexts["eu-canary"]))

    def controller(self, poll: float, identity: str) -> ControllerProcess:
        proc = ControllerProcess(
            self.lab.kubeconfig,
            self.lab.home_context,
            self.git.url,
            self.state,
            self.traffic.prometheus_url,
            identity=identity,
            poll_seconds=poll,
            extra_args=["--analysis-window-seconds", "5"],
            env={"ROLLOUT_WEBHOOK_SECRET": SECRET},
        )
        proc.start().wait_healthy()
        return proc

    def release(self, version: str) -> dict[str, Any] | None:
        items = self.custom.list_namespaced_custom_object("rollout.dev", "v1alpha1", NS, "releases")["items"]
        found = [r for r in items if r["spec"]["app"] == APP and r["spec"]["version"] == version]
        return found[-1] if found else None

    def wait(self, version: str, phases: set[str], timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rel = self.release(version)
            if rel and (rel.get("status") or {}).get("phase") in phases:
                return rel
            time.sleep(0.5)
        raise TimeoutError(version)

    def canary_region_version_seen(self, version: str) -> bool:
        deps = self.apps.list_namespaced_deployment(APP).items
        return any(d.metadata.labels.get("app.kubernetes.io/version") == version for d in deps)

    def push_to_first_change(self, version: str, proc: ControllerProcess, webhook: bool) -> float:
        self.git.bump_app_version(APP, version)
        start = time.monotonic()
        if webhook:
            body = b"{}"
            sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            requests.post(
                f"http://127.0.0.1:{proc.http_port}/webhook/git",
                data=body,
                headers={"X-Hub-Signature-256": sig},
                timeout=5,
            )
        while not self.canary_region_version_seen(version):
            time.sleep(0.05)
        return time.monotonic() - start


def api_calls(proc: ControllerProcess) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in proc.metrics().splitlines():
        m = re.match(r"rollout_api_calls_total\{(.*)\} ([0-9.e+]+)", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("resource") in ("leases", "events"):
            continue  # the leader's lease renewals are not reconcile work
        key = "read" if labels.get("verb") == "GET" else "write"
        out[key] = out.get(key, 0) + float(m.group(2))
    return out


def process_usage(pid: int) -> tuple[float, float]:
    stat = Path(f"/proc/{pid}/stat").read_text().split()
    cpu = (int(stat[13]) + int(stat[14])) / 100.0
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * 4096 / 2**20
    return cpu, rss


def idle_releases(custom: client.CustomObjectsApi, count: int) -> None:
    regions = ["eu-canary", "eu-west", "ap-south", "us-east", "ap-east"]
    for i in range(count):
        commit = hashlib.sha1(f"idle-{i}".encode()).hexdigest()
        body = {
            "apiVersion": "rollout.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": f"idle{i:03d}-{commit[:12]}", "labels": {"app.kubernetes.io/name": f"idle{i:03d}"}},
            "spec": {
                "app": f"idle{i:03d}",
                "commit": commit,
                "version": "1.0.0",
                "planDigest": "x",
                "contentDigest": commit,
                "waves": [{"name": "all", "regions": regions, "smokeSeconds": 60, "maxParallel": 5}],
            },
        }
        created = custom.create_namespaced_custom_object("rollout.dev", "v1alpha1", NS, "releases", body)
        created["status"] = {
            "phase": "Succeeded",
            "currentWave": 0,
            "regions": {r: {"phase": "Succeeded", "wave": 0} for r in regions},
        }
        custom.replace_namespaced_custom_object_status(
            "rollout.dev", "v1alpha1", NS, "releases", created["metadata"]["name"], created
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-apps", type=int, default=200)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    lab = Lab(state / "lab").up()
    traffic = git = None
    try:
        traffic = services.start(lab, state / "traffic", services.TrafficOptions(apps=[AppSpec(APP, APP, 3000.0)]))
        install_crds(lab.kubeconfig, lab.home_context)
        git = GitServer(state / "git").start()
        clone = git.clone(state / "clone")
        git.commit_files(
            single_app_changes(APP, lambda p: (clone.path / p).read_text(), set(lab.region_contexts)),
            "bench: checkout at lab scale",
        )
        bench = Bench(lab, traffic, git, state)
        figures: dict[str, str] = {}

        proc = bench.controller(poll=300, identity="bench-webhook")
        bench.wait("1.4.0", {"Succeeded"})  # the first sync runs at start
        figures["push -> first region changed (webhook)"] = f"{bench.push_to_first_change('1.5.0', proc, True):.2f}s"
        bench.wait("1.5.0", {"Succeeded"})

        before = api_calls(proc)
        cpu0, _ = process_usage(proc.pid)  # type: ignore[arg-type]
        window = 30
        time.sleep(window)
        after = api_calls(proc)
        cpu1, rss = process_usage(proc.pid)  # type: ignore[arg-type]
        ticks = window / 1.0
        for kind in ("read", "write"):
            per_tick = (after.get(kind, 0) - before.get(kind, 0)) / ticks
            figures[f"idle: API {kind}s per reconcile tick"] = f"{per_tick:.2f}"
        figures["idle: controller CPU, 1 app"] = f"{100 * (cpu1 - cpu0) / window:.1f}%  RSS {rss:.0f} MiB"
        proc.stop()

        proc = bench.controller(poll=5, identity="bench-poll")
        took = bench.push_to_first_change("1.6.0", proc, False)
        figures["push -> first region changed (polling 5s)"] = f"{took:.2f}s"
        bench.wait("1.6.0", {"Succeeded"})

        traffic.client().set_fault(APP, "1.7.0", FaultProfile(error_ratio=0.3))
        bench.git.bump_app_version(APP, "1.7.0")
        bad = bench.wait("1.7.0", {"RolledBack", "Succeeded"})
        status = bad["status"]
        failing = min(
            t(m["at"])
            for r in status["regions"].values()
            for run in r.get("analysis", {}).values()
            if isinstance(run, dict)
            for m in run.get("measurements", [])
            if m["verdict"] == "failure"
        )
        reacted = min(t(a["time"]) for a in status["audit"] if a["action"] in ("drain", "rollback-start"))
        figures["failing check -> rollback started"] = f"{reacted - failing:.2f}s (analysis interval 2s)"
        drain = status["drains"][0]
        figures["drain to 99%"] = f"{drain['seconds']:.2f}s (target {drain['targetSeconds']:g}s, met={drain['met']})"

        idle_releases(bench.custom, args.idle_apps)
        time.sleep(5)
        cpu0, _ = process_usage(proc.pid)  # type: ignore[arg-type]
        time.sleep(window)
        cpu1, rss = process_usage(proc.pid)  # type: ignore[arg-type]
        usage = f"CPU {100 * (cpu1 - cpu0) / window:.1f}%  RSS {rss:.0f} MiB"
        figures[f"idle: {args.idle_apps} apps x 5 regions"] = usage
        proc.stop()
        print("\nbenchmark figures")
        for key, value in figures.items():
            print(f"  {key:45s} {value}")
    finally:
        if git is not None:
            git.stop()
        if traffic is not None:
            services.stop(traffic)
        lab.down()


if __name__ == "__main__":
    main()

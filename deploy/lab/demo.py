"""`rollout-lab demo`: the whole product in the lab, in a few minutes.

Starts the lab (5 regions and a home cluster, Prometheus, the traffic simulator, a Git server
seeded with config/examples/shop), installs the CRDs, runs the controller, then:
1. a commit shortens smoke windows and check intervals to lab scale (the only demo-specific change);
2. the first releases of every app are promoted wave by wave;
3. checkout 1.5.0 (healthy) is promoted through every region;
4. checkout 1.6.0 answers 30 % errors: caught in the canary region, drained, rolled back,
   quarantined.
It prints a timeline (time, wave, region, event) and the measured drain and rollback durations.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from rich.console import Console
from rich.table import Table

from config.times import parse_time
from deploy.lab import procs, services
from deploy.lab.cluster import Lab
from deploy.lab.controllerproc import ControllerProcess, install_crds
from deploy.lab.gitserver import GitServer
from deploy.lab.simulator.model import AppSpec, FaultProfile
from rollout.store import as_object

EXAMPLE = services.EXAMPLE  # the repository the lab's Git server is seeded with
APPS = tuple(sorted(p.parent.name for p in (EXAMPLE / "apps").glob("*/rollout.yaml")))  # every app of it
DEMO_RATE_RPS = 3000.0  # per app: the 2 % canary region still sees 60 rps, enough evidence in 5 s
console = Console()


def lab_scale_plans(read: Callable[[str], str]) -> dict[str, str]:
    """The demo's one commit of its own: windows and intervals in seconds instead of minutes."""
    changes: dict[str, str] = {}
    for app in APPS:
        path = f"apps/{app}/rollout.yaml"
        plan = yaml.safe_load(read(path))
        if isinstance(plan["waves"], list):
            for wave in plan["waves"]:
                wave["smokeWindow"] = "5s"
        else:
            plan["autoWaves"]["smokeWindow"] = {"auto": {"floor": "3s", "ceiling": "5s"}}
        strategy = plan["strategy"]
        for kind in strategy.values():
            kind["progressDeadline"] = "60s"
            if "scaleDownDelay" in kind:
                kind["scaleDownDelay"] = "5s"
            for step in kind.get("steps", []):
                if "pause" in step and step["pause"].get("duration"):
                    step["pause"]["duration"] = "3s"
        analysis = plan.setdefault("analysis", {})
        analysis["minRequests"] = 20
        for check in analysis.get("checks", []):
            check.update(interval="2s", count=3)
        plan.setdefault("rollback", {})["drainTarget"] = {"percent": 99, "within": "15s"}
        changes[path] = yaml.safe_dump(plan, sort_keys=False)
    return changes


def single_app_changes(
    app: str, read: Callable[[str], str], lab_regions: set[str], plan_overrides: dict[str, Any] | None = None
) -> dict[str, str | None]:
    """Commit contents reducing the example to one app at lab scale, on the regions a lab runs
    (tests and benchmarks use it)."""
    changes: dict[str, str | None] = {
        path: text for path, text in lab_scale_plans(read).items() if path.startswith(f"apps/{app}/")
    }
    for other in (a for a in APPS if a != app):
        for f in sorted((EXAMPLE / "apps" / other).rglob("*")):
            if f.is_file():
                changes[f.relative_to(EXAMPLE).as_posix()] = None
    for f in sorted((EXAMPLE / "regions").glob("*.yaml")):
        if f.stem not in lab_regions:
            changes[f"regions/{f.name}"] = None
    plan = yaml.safe_load(changes[f"apps/{app}/rollout.yaml"] or "")
    if isinstance(plan["waves"], list):  # `waves: auto` plans regions by their tiers: nothing to cut
        for wave in plan["waves"]:
            wave["regions"] = [r for r in wave.get("regions", []) if r in lab_regions]
        plan["waves"] = [w for w in plan["waves"] if w["regions"] or "select" in w]
    plan["excludeRegions"] = []
    for key, value in (plan_overrides or {}).items():
        if key == "smokeWindow" and isinstance(plan["waves"], list):
            for wave in plan["waves"]:
                wave["smokeWindow"] = value
        elif key == "smokeWindow":
            plan["autoWaves"]["smokeWindow"] = value
        else:
            plan[key] = value
    changes[f"apps/{app}/rollout.yaml"] = yaml.safe_dump(plan, sort_keys=False)
    return changes


@dataclass
class Timeline:
    api: client.CustomObjectsApi
    namespace: str = "rollout-system"
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.time()
        self.seen: set[tuple[str, int]] = set()
        self.rows: list[tuple[str, str, str, str, str]] = []

    def releases(self) -> list[dict[str, Any]]:
        listed = self.api.list_namespaced_custom_object("rollout.dev", "v1alpha1", self.namespace, "releases")
        return as_object(listed)["items"]

    def poll(self) -> list[dict[str, Any]]:
        """Print the audit entries not printed yet; return the releases they were read from (the
        caller decides on this same listing, so a phase it sees always has its lines printed)."""
        listed = self.releases()
        for rel in sorted(listed, key=lambda r: r["metadata"]["creationTimestamp"]):
            status = rel.get("status") or {}
            for index, entry in enumerate(status.get("audit") or []):
                key = (rel["metadata"]["name"], index)
                if key in self.seen:
                    continue
                self.seen.add(key)
                wave = ""
                region = entry.get("region") or ""
                if region:
                    wave = next((w["name"] for w in rel["spec"]["waves"] if region in w["regions"]), "")
                at = _at(entry["time"]).timestamp()
                row = (
                    f"{at - self.started:6.0f}s",
                    f"{rel['spec']['app']} {rel['spec']['version']}",
                    wave,
                    region,
                    f"{entry['action']}: {entry['reason']}",
                )
                self.rows.append(row)
                console.print("  ".join(row), soft_wrap=True)
        return listed

    def wait_for(self, app: str, version: str, phases: set[str], timeout_s: float) -> dict[str, Any]:
        reached: dict[str, Any] = {}

        def problem() -> str | None:
            found = [r for r in self.poll() if r["spec"]["app"] == app and r["spec"]["version"] == version]
            rel = found[-1] if found else None
            phase = (rel.get("status") or {}).get("phase") if rel else None
            if rel and phase in phases:
                reached.update(rel)
                return None
            return f"phase {phase}" if rel else "no release yet"

        procs.wait_until(problem, timeout_s, f"{app} {version} to reach {sorted(phases)}", max_delay_s=0.5)
        return reached


@contextmanager
def demo_lab(state_dir: Path) -> Iterator[tuple[Lab, services.ServicesHandle, GitServer]]:
    console.rule("starting the lab: 5 regions + home, Prometheus, traffic simulator, Git server")
    lab = Lab(state_dir / "lab").up()
    handle = None
    git = None
    try:
        apps = [AppSpec(a.name, a.namespace, DEMO_RATE_RPS) for a in services.example_apps()]
        handle = services.start(lab, state_dir / "traffic", services.TrafficOptions(apps=apps))
        git = GitServer(state_dir / "git").start()
        yield lab, handle, git
    finally:
        if git is not None:
            git.stop()
        if handle is not None:
            services.stop(handle)
        lab.down()


def fresh_state(state_dir: Path) -> None:
    """Start every demo from an empty `state_dir`: a second run must not clone over the first run's
    working copy nor serve its Git history (which already holds 1.6.0). Refused, with the way out,
    while a process recorded there by an earlier demo is still alive (only our own records count:
    `procs.alive` checks the pid's start time, so a reused pid is not mistaken for ours)."""
    live = [rec for pids in state_dir.rglob("pids") for rec in procs.records(pids.parent) if procs.alive(rec)]
    if live:
        names = ", ".join(f"{rec.name} (pid {rec.pid})" for rec in live)
        raise SystemExit(
            f"a demo still runs in {state_dir}: {names}; stop that demo first (Ctrl-C in its "
            "terminal; if it was killed, stop these pids) or give this one another --state-dir"
        )
    shutil.rmtree(state_dir, ignore_errors=True)


def run(state_dir: Path, keep: bool = False) -> bool:
    """The demo in `state_dir` (made absolute first: it reaches Prometheus' config and every child)."""
    t0 = time.monotonic()
    state_dir = Path(state_dir).resolve()
    fresh_state(state_dir)
    with demo_lab(state_dir) as (lab, traffic, git):
        install_crds(lab.kubeconfig, lab.home_context)
        clone = git.clone(state_dir / "work")
        git.commit_files(
            lab_scale_plans(lambda p: (clone.path / p).read_text()),
            "demo: smoke windows and check intervals at lab scale",
        )
        controller = ControllerProcess(
            lab.kubeconfig,
            lab.home_context,
            git.url,
            state_dir / "controller",
            traffic.prometheus_url,
            extra_args=["--analysis-window-seconds", "5"],
        )
        controller.start()
        controller.wait_healthy()
        home = config.new_client_from_config(config_file=str(lab.kubeconfig), context=lab.home_context)
        timeline = Timeline(client.CustomObjectsApi(home))
        try:
            console.rule("first releases of every app, promoted wave by wave")
            for app in APPS:
                values = yaml.safe_load((clone.path / f"apps/{app}/values.yaml").read_text())
                timeline.wait_for(app, str(values["version"]), {"Succeeded"}, 600)
            console.rule("checkout 1.5.0: a healthy release")
            git.bump_app_version("checkout", "1.5.0")
            timeline.wait_for("checkout", "1.5.0", {"Succeeded"}, 600)
            console.rule("checkout 1.6.0: answers 30% errors")
            traffic.client().set_fault("checkout", "1.6.0", FaultProfile(error_ratio=0.3))
            git.bump_app_version("checkout", "1.6.0")
            bad = timeline.wait_for("checkout", "1.6.0", {"RolledBack", "Succeeded"}, 600)
        finally:
            controller.stop()
        summary(bad, time.monotonic() - t0)
        if keep:
            console.print(f"lab state kept in {state_dir}")
        return bad["status"]["phase"] == "RolledBack"


def summary(bad: dict[str, Any], total_s: float) -> None:
    status = bad["status"]
    table = Table("measure", "value", title="checkout 1.6.0")
    table.add_row("outcome", f"{status['phase']} (quarantined: {status.get('quarantined')})")
    table.add_row("failed region", str(status.get("failedRegion")))
    table.add_row("reason", status.get("message", ""))
    table.add_row("time to detect", f"{status.get('detectSeconds', 0):.1f}s after the region started")
    for drain in status.get("drains", []):
        met = "met" if drain.get("met") else "missed"
        table.add_row(
            f"drain {drain['region']}",
            f"{drain.get('seconds', 0):.1f}s to {drain.get('targetPercent'):g}% "
            f"(target {drain.get('targetSeconds'):g}s: {met})",
        )
    audit = status.get("audit", [])
    failed = next((a["time"] for a in audit if a["action"] == "failed"), None)
    end = next((a["time"] for a in reversed(audit) if a["action"] == "rolled-back"), None)
    if failed and end:
        seconds = (_at(end) - _at(failed)).total_seconds()
        table.add_row(
            "rollback",
            f"{seconds:.1f}s from the failing verdict to every region back on "
            f"{status.get('previousVersion')}, traffic restored",
        )
    table.add_row("demo total", f"{total_s:.0f}s")
    console.print(table)


def _at(text: str) -> datetime:
    parsed = parse_time(text)
    assert parsed is not None
    return parsed

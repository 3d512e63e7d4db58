"""Scale benchmark: N apps x R lab regions on one controller process. Prints figures; asserts nothing.

    .venv/bin/python bench/scale.py --apps 200 --regions 5 [--in-flight 50]
    .venv/bin/python bench/scale.py --quick          # 20 apps x 2 regions, a few minutes

Run it alone on the machine (it starts R+1 kube-apiservers): `flock /tmp/lab-tests.lock ...`.
Everything is measured from outside the controller:

1. first sync: controller start -> every app's first release Succeeded in every region
   (app-regions per second);
2. at rest, everything Succeeded: RSS and CPU from /proc/<pid>; API calls per reconcile pass,
   from the controller's rollout_api_calls_total (lease renewals left out) and from every
   apiserver's apiserver_request_total (watches and leases left out), with the same window
   measured again after the controller stopped (what the lab's own components send);
3. K releases in flight (one push bumping K apps): reconcile p50/p99 from the controller's
   rollout_reconcile_seconds histogram, push -> first region (Deployment carries the new version);
4. fleet-wide incident: one push gives K apps a version the metrics say is broken; time until
   all K releases are RolledBack.

Metrics come from a stub Prometheus in this process that answers every check with 1, or 0 for a
version marked broken: the benchmark measures the controller, not a metrics pipeline.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import re
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import yaml
from kubernetes import client

from deploy.lab.cluster import Lab, RegionRef, select_regions
from deploy.lab.controllerproc import ControllerProcess, install_crds
from deploy.lab.gitserver import GitServer, set_app_version
from deploy.lab.procs import free_port

NS, SECRET = "rollout-system", "scale-bench-secret"
LAB_REGIONS = ["eu-canary", "eu-west", "ap-south", "us-east", "ap-east"]
GOOD, NEXT, BAD = "1.0.0", "2.0.0", "3.0.0"
TICK_S = 1.0  # the controller's reconcile tick (Settings.tick_seconds)

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ app }}
spec:
  replicas: {{ params.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ app }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ app }}
    spec:
      containers:
        - name: {{ app }}
          image: {{ image }}
          ports:
            - containerPort: 8080
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {{ app }}
spec:
  selector:
    app.kubernetes.io/name: {{ app }}
  ports:
    - port: 80
      targetPort: 8080
"""


# --- the generated repository -------------------------------------------------------------------


def app_names(count: int) -> list[str]:
    return [f"app{i:04d}" for i in range(count)]


def region_refs(count: int) -> list[RegionRef]:
    names = LAB_REGIONS[:count] + [f"region-{i:02d}" for i in range(len(LAB_REGIONS), count)]
    return select_regions(names)


def values(version: str) -> str:
    return yaml.safe_dump({"version": version, "image": {"repository": "bench/app", "tag": version}})


def plan(app: str, regions: list[str]) -> str:
    waves: list[dict[str, Any]] = [{"name": "canary", "regions": regions[:1], "smokeWindow": "2s", "maxParallel": 1}]
    if len(regions) > 1:
        waves.append({"name": "rest", "regions": regions[1:], "smokeWindow": "2s", "maxParallel": len(regions) - 1})
    doc = {
        "app": app,
        "owner": {"team": "bench", "contact": "#bench"},
        "playbook": "https://runbooks.example.com/bench",
        "strategy": {"rolling": {"maxSurge": "100%", "maxUnavailable": 0, "progressDeadline": "60s"}},
        "waves": waves,
        "analysis": {
            "minRequests": 0,
            "checks": [
                {
                    "name": "up",
                    "query": 'sum(up{app="{{ app }}",region="{{ region }}",version="{{ version }}"})',
                    "successCondition": "result > 0",
                    "interval": "1s",
                    "count": 2,
                }
            ],
        },
        "rollback": {"drainFirst": False, "quarantine": False},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_repository(root: Path, apps: list[str], regions: list[RegionRef]) -> None:
    for index, ref in enumerate(regions):
        region = {
            "name": ref.name,
            "cluster": ref.context,
            "tier": "canary" if index == 0 else "low",
            "trafficShare": round(1 / len(regions), 4),
            "params": {"replicas": 1},
        }
        path = root / "regions" / f"{ref.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(region, sort_keys=False))
    names = [r.name for r in regions]
    for app in apps:
        base = root / "apps" / app
        (base / "manifests").mkdir(parents=True, exist_ok=True)
        (base / "rollout.yaml").write_text(plan(app, names))
        (base / "values.yaml").write_text(values(GOOD))
        (base / "manifests" / "deployment.yaml").write_text(DEPLOYMENT)
        (base / "manifests" / "service.yaml").write_text(SERVICE)


# --- a stub Prometheus ----------------------------------------------------------------------------


class StubPrometheus:
    """Answers every instant or range query with 1, or 0 when the query names a broken version."""

    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.queries = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                self._answer(parse_qs(urlsplit(self.path).query))

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                self._answer(parse_qs(body))

            def _answer(self, params: dict[str, list[str]]) -> None:
                stub.queries += 1
                query = (params.get("query") or [""])[0]
                found = re.search(r'version="([^"]+)"', query)
                value = "0" if found and found.group(1) in stub.broken else "1"
                now = time.time()
                if urlsplit(self.path).path.endswith("query_range"):
                    data = {"resultType": "matrix", "result": [{"metric": {}, "values": [[now, value]]}]}
                else:
                    data = {"resultType": "vector", "result": [{"metric": {}, "value": [now, value]}]}
                body = json.dumps({"status": "success", "data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


# --- measurements ---------------------------------------------------------------------------------

Sample = dict[tuple[str, ...], float]
METRIC_LINE = re.compile(r"^(\w+)\{(.*)\} ([0-9.eE+-]+|NaN|\+Inf)$")


def parse_metric(text: str, name: str, keys: tuple[str, ...]) -> Sample:
    out: Sample = defaultdict(float)
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if not m or m.group(1) != name:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        out[tuple(labels.get(k, "") for k in keys)] += float(m.group(3))
    return out


def delta(after: Sample, before: Sample) -> Sample:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def controller_calls(proc: ControllerProcess) -> Sample:
    return parse_metric(proc.metrics(), "rollout_api_calls_total", ("cluster", "verb", "resource"))


def apiserver_calls(lab: Lab) -> Sample:
    out: Sample = {}
    for context in lab.contexts:
        sample = parse_metric(lab.get(context, "/metrics", 10).text, "apiserver_request_total", ("verb", "resource"))
        out.update({(context, *k): v for k, v in sample.items()})
    return out


def reconcile_buckets(proc: ControllerProcess) -> Sample:
    return parse_metric(proc.metrics(), "rollout_reconcile_seconds_bucket", ("le",))


def quantile(buckets: Sample, q: float) -> float:
    """histogram_quantile over cumulative buckets (summed over apps), linear inside a bucket."""
    edges = sorted(((math.inf if k[0] == "+Inf" else float(k[0])), v) for k, v in buckets.items())
    if not edges or edges[-1][1] <= 0:
        return math.nan
    rank, lower, below = q * edges[-1][1], 0.0, 0.0
    for upper, count in edges:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = upper, count
    return lower


def process_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds so far, RSS MiB)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / 100.0
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * 4096 / 2**20
    return cpu, rss


def not_lease(key: tuple[str, ...]) -> bool:
    return key[-1] not in ("leases",)


def region_reads(calls: Sample) -> tuple[float, int]:
    """(GETs in the region clusters, how many resources they read), namespaces and discovery left
    out: the prune step's listings (one per kind it lists) and the reads observe and the ownership
    check did not serve from the region watches. Keys: (cluster, verb, resource)."""
    kept = {
        key: v
        for key, v in calls.items()
        if key[0] != "home" and key[1] == "GET" and key[2] not in ("namespaces", "discovery", "version")
    }
    return sum(kept.values()), len({key[2] for key in kept})


# --- the run --------------------------------------------------------------------------------------


class Scale:
    def __init__(self, args: argparse.Namespace, state: Path):
        self.args, self.state = args, state
        self.apps = app_names(args.apps)
        self.regions = region_refs(args.regions)
        self.figures: list[tuple[str, str]] = []
        self.summary: dict[str, float] = {}

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def figure(self, name: str, value: str) -> None:
        self.figures.append((name, value))
        self.say(f"{name}: {value}")

    def releases(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
            "rollout.dev", "v1alpha1", NS, "releases"
        )["items"]
        return items

    def wait_phase(self, version: str, apps: list[str], phases: set[str], timeout: float) -> float:
        """Seconds until every app in `apps` has a release of `version` in one of `phases`."""
        start, deadline, wanted = time.monotonic(), time.monotonic() + timeout, set(apps)
        while True:
            done = {
                r["spec"]["app"]
                for r in self.releases()
                if r["spec"]["version"] == version and (r.get("status") or {}).get("phase") in phases
            }
            if wanted <= done:
                return time.monotonic() - start
            if time.monotonic() > deadline:
                missing = sorted(wanted - done)
                raise TimeoutError(f"{len(missing)} apps not {phases} at {version} after {timeout:.0f}s: {missing[:5]}")
            time.sleep(1.0)

    def push(self, changes: dict[str, str]) -> float:
        self.git.commit_files(changes, f"bench: {len(changes)} files")
        pushed = time.monotonic()
        body = b"{}"
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        requests.post(
            f"http://127.0.0.1:{self.proc.http_port}/webhook/git",
            data=body,
            headers={"X-Hub-Signature-256": sig},
            timeout=5,
        )
        return pushed

    def bump(self, apps: list[str], version: str) -> float:
        return self.push({f"apps/{a}/values.yaml": set_app_version(values(GOOD), version) for a in apps})

    def first_region_times(self, apps: list[str], version: str, pushed: float, timeout: float) -> list[float]:
        """Push -> the first region's Deployment of each app carries `version`."""
        first = self.lab.region_contexts[self.regions[0].name]
        api = client.AppsV1Api(self.lab.api_client(first))
        seen: dict[str, float] = {}
        deadline = pushed + timeout
        while len(seen) < len(apps) and time.monotonic() < deadline:
            now = time.monotonic()
            for d in api.list_deployment_for_all_namespaces(label_selector="app.kubernetes.io/version").items:
                name = d.metadata.name
                if name in apps and name not in seen and d.metadata.labels.get("app.kubernetes.io/version") == version:
                    seen[name] = now - pushed
            time.sleep(0.25)
        return sorted(seen.values())

    def idle_window(self, window: float) -> tuple[Sample, Sample, float, float]:
        pid = self.proc.pid
        assert pid is not None
        c0, a0, (cpu0, _) = controller_calls(self.proc), apiserver_calls(self.lab), process_usage(pid)
        time.sleep(window)
        c1, a1, (cpu1, rss) = controller_calls(self.proc), apiserver_calls(self.lab), process_usage(pid)
        return delta(c1, c0), delta(a1, a0), 100 * (cpu1 - cpu0) / window, rss

    def run(self) -> None:
        args = self.args
        repo = self.state / "repo"
        write_repository(repo, self.apps, self.regions)
        nodes = max(3, math.ceil(2.2 * len(self.apps) / 100))
        t0 = time.monotonic()
        self.lab = Lab(self.state / "lab", self.regions, nodes_per_region=nodes)
        self.lab.up()
        self.say(f"lab up: {len(self.regions)} regions + home, {nodes} KWOK nodes each, {time.monotonic() - t0:.0f}s")
        self.prom = StubPrometheus()
        self.git = GitServer(self.state / "git", seed=repo).start()
        try:
            install_crds(self.lab.kubeconfig, self.lab.home_context)
            self.custom = client.CustomObjectsApi(self.lab.api_client(self.lab.home_context))
            self.proc = ControllerProcess(
                self.lab.kubeconfig,
                self.lab.home_context,
                self.git.url,
                self.state,
                self.prom.url,
                identity="scale",
                poll_seconds=args.poll_seconds,
                extra_args=["--analysis-window-seconds", "2", "--region-watches"]
                + (["--workers", str(args.workers)] if args.workers else []),
                env={"ROLLOUT_WEBHOOK_SECRET": SECRET},
            )
            self.phases(args)
        finally:
            if getattr(self, "proc", None) is not None:
                self.proc.stop()
            self.git.stop()
            self.prom.stop()
            if not args.keep:
                self.lab.down()
        self.report()

    def phases(self, args: argparse.Namespace) -> None:
        n, r = len(self.apps), len(self.regions)
        self.figure("controller --workers", str(args.workers or "default (8)"))
        started = time.monotonic()
        self.proc.start().wait_healthy(60)
        self.wait_phase(GOOD, self.apps, {"Succeeded"}, args.timeout)
        took = time.monotonic() - started
        sync_calls = {k: v for k, v in controller_calls(self.proc).items() if not_lease(k)}
        busiest = sorted(sync_calls.items(), key=lambda kv: -kv[1])[:6]
        self.figure("first sync: controller API calls per app-region", f"{sum(sync_calls.values()) / (n * r):.1f}")
        for key, value in busiest:
            self.figure(f"first sync: controller {'/'.join(key)}", f"{value:.0f}")
        by_kind: dict[tuple[str, ...], float] = {}  # the region clusters summed: what one app-region costs
        for (cluster, *rest), value in sync_calls.items():
            key = ("home" if cluster == "home" else "regions", *rest)
            by_kind[key] = by_kind.get(key, 0.0) + value
        for key, value in sorted(by_kind.items(), key=lambda kv: -kv[1])[:10]:
            self.figure(f"first sync: per app-region {'/'.join(key)}", f"{value / (n * r):.2f}")
        reads, kinds = region_reads(sync_calls)
        self.figure(
            "first sync: per app-region region GETs (prune listings; reads not served by watches)",
            f"{reads / (n * r):.2f} over {kinds} resources",
        )
        self.summary["first_sync_app_regions_per_s"] = n * r / took
        self.figure("first sync: start -> all Succeeded", f"{took:.1f}s for {n * r} app-regions")
        self.figure("first sync: app-regions per second", f"{n * r / took:.2f}")

        time.sleep(args.settle)  # let the last status writes and watch events land
        calls, served, cpu, rss = self.idle_window(args.window)
        passes = args.window / TICK_S
        own = {k: v for k, v in calls.items() if not_lease(k)}
        for key, value in sorted(own.items()):
            self.figure(f"idle: controller {'/'.join(key)}", f"{value:.0f} calls ({value / passes:.3f}/pass)")
        leases = sum(v for k, v in calls.items() if not not_lease(k))
        self.figure("idle: controller lease calls (leader renewals)", f"{leases:.0f} in {args.window:.0f}s")
        noop = sum(v for k, v in own.items() if k[1] != "WATCH") / passes  # a watch is a stream, not a call per pass
        self.summary["noop_api_calls_per_pass"] = noop
        self.figure("idle: controller API calls per no-op pass (no watch)", f"{noop:.3f} ({args.window:.0f} passes)")
        self.served_idle = {k: v for k, v in served.items() if k[1] != "WATCH" and not_lease(k)}
        self.figure(
            "idle: apiserver requests (all clients, no watch/lease)",
            f"{sum(self.served_idle.values()):.0f} in {args.window:.0f}s",
        )
        self.summary["idle_rss_mib"] = rss
        self.figure("idle: controller RSS", f"{rss:.0f} MiB")
        self.figure("idle: controller CPU", f"{cpu:.1f}% of one core")

        k = min(args.in_flight, n)
        chosen = self.apps[:k]
        before = reconcile_buckets(self.proc)
        pushed = self.bump(chosen, NEXT)
        firsts = self.first_region_times(chosen, NEXT, pushed, args.timeout)
        self.wait_phase(NEXT, chosen, {"Succeeded"}, args.timeout)
        all_done = time.monotonic() - pushed
        buckets = delta(reconcile_buckets(self.proc), before)
        p50, p99 = quantile(buckets, 0.5), quantile(buckets, 0.99)
        self.summary["p99_reconcile_s"] = p99
        passes_seen = max(buckets.values(), default=0)
        self.figure(f"in flight ({k}): reconcile p50 / p99", f"{p50:.3f}s / {p99:.3f}s over {passes_seen:.0f} passes")
        if firsts:
            mid, last = firsts[len(firsts) // 2], firsts[-1]
            self.figure(f"in flight ({k}): push -> first region, median / last", f"{mid:.1f}s / {last:.1f}s")
        self.figure(f"in flight ({k}): push -> all {k} Succeeded in {r} regions", f"{all_done:.1f}s")

        self.prom.broken.add(BAD)
        pushed = self.bump(chosen, BAD)
        self.wait_phase(BAD, chosen, {"RolledBack"}, args.timeout)
        self.figure(f"incident: push -> {k} apps RolledBack", f"{time.monotonic() - pushed:.1f}s")

        self.proc.stop()
        time.sleep(args.settle)
        a0 = apiserver_calls(self.lab)
        time.sleep(args.window)
        background = {k: v for k, v in delta(apiserver_calls(self.lab), a0).items() if k[1] != "WATCH" and not_lease(k)}
        idle, bg = sum(self.served_idle.values()), sum(background.values())
        self.figure("idle: apiserver requests, controller stopped", f"{bg:.0f} in {args.window:.0f}s")
        self.figure(
            "idle: apiserver requests due to the controller", f"{(idle - bg) / (args.window / TICK_S):.3f}/pass"
        )
        for key in sorted(set(self.served_idle) | set(background)):
            a, b = self.served_idle.get(key, 0), background.get(key, 0)
            if a != b:
                self.figure(f"idle: apiserver {'/'.join(key)} (running vs stopped)", f"{a:.0f} vs {b:.0f}")

    def report(self) -> None:
        print("\nscale benchmark figures")
        width = max((len(name) for name, _ in self.figures), default=10)
        for name, value in self.figures:
            print(f"  {name:{width}s}  {value}")
        s = self.summary
        print(
            f"scale: apps={len(self.apps)} regions={len(self.regions)}"
            f" first_sync_app_regions_per_s={s.get('first_sync_app_regions_per_s', math.nan):.2f}"
            f" idle_rss_mib={s.get('idle_rss_mib', math.nan):.0f}"
            f" noop_api_calls_per_pass={s.get('noop_api_calls_per_pass', math.nan):.3f}"
            f" p99_reconcile_s={s.get('p99_reconcile_s', math.nan):.3f}"
        )


def main(argv: list[str] | None = None, run: Callable[[Scale], None] = Scale.run) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--regions", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="20 apps x 2 regions, 10 in flight")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of each idle measurement")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before an idle measurement")
    parser.add_argument("--poll-seconds", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds any one phase may take")
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    parser.add_argument("--workers", type=int, default=None, help="the controller's --workers (default: its own)")
    args = parser.parse_args(argv)
    if args.quick:
        args.apps, args.regions, args.in_flight, args.window = 20, 2, 10, 30.0
    state = Path(tempfile.mkdtemp(prefix="rollout-scale-")).resolve()
    print(f"state: {state}", flush=True)
    run(Scale(args, state))


if __name__ == "__main__":
    main()

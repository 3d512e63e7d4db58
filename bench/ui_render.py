"""How long `rollout ui` takes to build and render the fleet page for a large fleet (issue 16 item 7).

Makes --apps synthetic apps with --releases-per-app Releases each (the newest in progress over
--regions regions in three waves, with analysis measurements), puts them in the server's shared
copy (rollout/ui/live.py's Hub) and times what a page load or a live refresh does: the page values
(rollout/ui/model.py) plus the Jinja rendering of the whole page. No cluster, no sockets.

    .venv/bin/python -m bench.ui_render [--apps 1000] [--regions 10] [--releases-per-app 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from rollout.store import ACTIONS, RELEASES
from rollout.ui.live import Hub
from rollout.ui.server import UI

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PHASES = ("Succeeded", "Smoke", "Progressing", "Pending", "Failed", "RolledBack", "Waiting")


def stamp(offset_s: float) -> str:
    return (NOW + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def synthetic(apps: int, regions: int, per_app: int) -> list[dict[str, Any]]:
    names = [f"region-{i:02d}" for i in range(regions)]
    waves = [names[:1], names[1 : max(2, regions // 2)], names[max(2, regions // 2) :]]
    out = []
    for a in range(apps):
        for r in range(per_app):
            newest = r == per_app - 1
            states = {}
            for i, region in enumerate(names):
                phase = PHASES[(a + i) % len(PHASES)] if newest else "Succeeded"
                states[region] = {
                    "phase": phase,
                    "wave": 0,
                    "weight": (a * 7 + i) % 100,
                    "smokeStartedAt": stamp(-60),
                    "smokeSeconds": 300,
                    "strategy": {"stepName": "setWeight 50", "step": 2},
                    "message": "error-rate 0.31 > 0.05" if phase == "Failed" else "",
                    "analysis": {
                        "smoke": {
                            "startedAt": stamp(-60),
                            "measurements": [
                                {"check": "error-rate", "at": stamp(-60 + 10 * k), "verdict": "success", "value": 0.01}
                                for k in range(3)
                            ],
                        }
                    },
                }
            out.append(
                {
                    "metadata": {"name": f"app-{a:04d}-{r:02d}", "creationTimestamp": stamp(-3600 + r)},
                    "spec": {
                        "app": f"app-{a:04d}",
                        "commit": f"{a:020d}{r:020d}",
                        "version": f"1.{r}",
                        "waves": [
                            {"name": f"w{i}", "regions": w, "smokeSeconds": 300, "maxParallel": 2}
                            for i, w in enumerate(waves)
                            if w
                        ],
                    },
                    "status": {"phase": "Progressing" if newest else "Succeeded", "currentWave": 1, "regions": states},
                }
            )
    return out


class _Backend:
    namespace = "rollout-system"
    api_client: Any = None

    def whoami(self) -> str:
        return "bench"

    def submit(self, action: str, app: str | None, reason: str, *, region: str | None = None) -> dict[str, Any]:
        raise NotImplementedError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--regions", type=int, default=10)
    parser.add_argument("--releases-per-app", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    releases = synthetic(args.apps, args.regions, args.releases_per_app)
    hub = Hub()
    hub.replace(RELEASES, releases)
    hub.replace(ACTIONS, [])
    ui = UI(_Backend(), hub, now=lambda: NOW, access=lambda: False)
    timings, size = [], 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        html = ui.render("/", {}, live_only=False)
        timings.append(time.perf_counter() - start)
        size = len(html or "")
    print(
        f"fleet page: {args.apps} apps x {args.regions} regions from {len(releases)} Release objects: "
        f"median {statistics.median(timings):.3f} s, max {max(timings):.3f} s over {args.repeat} renders "
        f"({size / 1e6:.1f} MB of HTML)"
    )


if __name__ == "__main__":
    main()

"""Per-region strategies (rolling, blue/green, canary) and in-region traffic routers.

Pure part: `decide(rollout, status, snapshot, now) -> Decision` (no IO). Acting part:
`strategies.cluster.KubernetesCluster` (observe / execute), and `strategies.driver`: rendering a
region's release (`Renderer`) and one region step with its error policy (`drive`), used by the
release reconciler and the drill.
"""

from __future__ import annotations

from datetime import datetime

from strategies import bluegreen, canary, rolling
from strategies.model import (
    AnalysisRequest,
    Decision,
    Phase,
    RegionRollout,
    Snapshot,
    StrategyStatus,
)


def decide(rollout: RegionRollout, status: StrategyStatus, snapshot: Snapshot, now: datetime) -> Decision:
    """The next actions and status for one app in one region. Pure: same inputs, same answer."""
    deciders = {"rolling": rolling.decide, "blueGreen": bluegreen.decide, "canary": canary.decide}
    return deciders[rollout.kind](rollout, status, snapshot, now)


def check(rollout: RegionRollout) -> None:
    """Raise ManifestError (permanent) when a release lacks what its strategy needs; called when
    the rollout is built, before any step, so a bad release fails its region once and at once."""
    from strategies import manifests

    if rollout.kind == "rolling":
        return  # every workload rolls as rendered: nothing is looked up by name
    for rendered in (rollout.release, rollout.canary_release):
        if rendered is None:
            continue
        manifests.find(rendered, "Deployment", rollout.workload)
        manifests.find(rendered, "Service", rollout.app)
        if rollout.kind == "canary" and getattr(rollout.strategy, "traffic_router", "") == "gatewayAPI":
            manifests.service_port(rendered, rollout.app)


def pending_analysis(rollout: RegionRollout, status: StrategyStatus, snapshot: Snapshot) -> AnalysisRequest | None:
    """The analysis the current step waits for, if any: the caller runs it and puts the verdict
    in the next snapshot (`Snapshot.analysis`)."""
    if status.phase is not Phase.PROGRESSING:
        return None
    if rollout.kind == "canary":
        steps = canary.steps(rollout)[0]
    elif rollout.kind == "blueGreen":
        steps = bluegreen.steps(rollout, status, snapshot)
    else:
        return None
    if status.step >= len(steps) or steps[status.step].checks is None:
        return None
    return AnalysisRequest(
        rollout.app,
        rollout.region,
        rollout.release_number,
        status.step,
        steps[status.step].checks or (),
        status.step_started_at,
    )


__all__ = ["check", "decide", "pending_analysis", "Decision", "Phase", "RegionRollout", "Snapshot", "StrategyStatus"]

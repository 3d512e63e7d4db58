"""Per-region strategies (rolling, blue/green, canary) and in-region traffic routers.

Pure part: `decide(rollout, status, snapshot, now) -> Decision` (no IO). Acting part:
`strategies.cluster.KubernetesCluster` (observe / execute) and `strategies.runner`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from config.identity import ReleaseIdentity
from config.render import Rendered, render
from config.repository import Repository
from strategies import bluegreen, canary, rolling
from strategies.model import (
    DEFAULT_GATEWAY,
    AnalysisRequest,
    Decision,
    Phase,
    RegionRollout,
    Snapshot,
    StrategyStatus,
)


def prepare(repo: Repository, app: str, region: str, identity: ReleaseIdentity,
            previous: Rendered | None = None, *, gateway: str = DEFAULT_GATEWAY) -> RegionRollout:
    """Render the new release for `region` (both tracks for a canary plan) into a RegionRollout.

    `previous` is the live release rendered from *its own* pinned commit (None for a first release).
    """
    plan = repo.apps[app].plan
    spec = plan.strategy.rolling or plan.strategy.blue_green or plan.strategy.canary
    assert spec is not None
    stable = render(repo, app, region, replace(identity, track="stable"))
    canary_release = render(repo, app, region, replace(identity, track="canary")) \
        if plan.strategy.canary is not None else None
    return RegionRollout(app, plan.target_namespace, region, spec, stable, previous, canary_release, gateway)


def decide(rollout: RegionRollout, status: StrategyStatus, snapshot: Snapshot, now: datetime) -> Decision:
    """The next actions and status for one app in one region. Pure: same inputs, same answer."""
    deciders = {"rolling": rolling.decide, "blueGreen": bluegreen.decide, "canary": canary.decide}
    return deciders[rollout.kind](rollout, status, snapshot, now)


def pending_analysis(rollout: RegionRollout, status: StrategyStatus,
                     snapshot: Snapshot) -> AnalysisRequest | None:
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
    return AnalysisRequest(rollout.app, rollout.region, rollout.release_number, status.step,
                           steps[status.step].checks or (), status.step_started_at)


__all__ = ["decide", "prepare", "pending_analysis", "Decision", "Phase", "RegionRollout", "Snapshot",
           "StrategyStatus"]

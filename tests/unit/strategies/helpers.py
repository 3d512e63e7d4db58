"""Shared test helpers: example rollouts, a manual clock, a never-ready release, a settle loop."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from config.identity import ReleaseIdentity
from config.loader import load_repository
from config.render import Rendered
from strategies.cluster import Cluster
from strategies.driver import AnalysisHook, Driven, ReleaseAt, Renderer, drive
from strategies.fake import FAULT_LABEL
from strategies.model import Commands, RegionRollout, StrategyStatus

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "examples" / "shop"
V1 = ReleaseIdentity("1" * 40, "1.0.0")
V2 = ReleaseIdentity("2" * 40, "1.1.0")
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_repo = None


def repo():  # type: ignore[no-untyped-def]
    global _repo
    if _repo is None:
        _repo = load_repository(EXAMPLE)
    return _repo


def rollout(
    app: str, region: str = "eu-west", *, first: bool = False, namespace: str | None = None, **strategy: object
) -> RegionRollout:
    """The example app's release V2 over V1 (or V1 alone when `first`), plan fields overridden."""
    renderer = Renderer(lambda commit: repo())
    v1, v2 = ReleaseAt(V1.commit, V1.version), ReleaseAt(V2.commit, V2.version)
    r = renderer.rollout(app, region, v1, None) if first else renderer.rollout(app, region, v2, v1)
    if strategy:
        r = replace(r, strategy=r.strategy.model_copy(update=strategy))
    if namespace:
        r = replace(
            r,
            namespace=namespace,
            release=in_namespace(r.release, namespace),
            previous=in_namespace(r.previous, namespace),
            canary_release=in_namespace(r.canary_release, namespace),
        )
    return r


def in_namespace(rendered: Rendered | None, namespace: str) -> Rendered | None:
    if rendered is None:
        return None
    objs = copy.deepcopy(list(rendered.objects))
    for o in objs:
        o["metadata"]["namespace"] = namespace
    return replace(rendered, objects=tuple(objs))


def never_ready(rendered: Rendered | None) -> Rendered | None:
    """The same release whose pods never become Ready (the lab's KWOK fault label)."""
    if rendered is None:
        return None
    objs = copy.deepcopy(list(rendered.objects))
    for o in objs:
        if o["kind"] == "Deployment":
            o["spec"]["template"]["metadata"]["labels"][FAULT_LABEL] = "never-ready"
    return replace(rendered, objects=tuple(objs))


def broken(r: RegionRollout) -> RegionRollout:
    return replace(r, release=never_ready(r.release), canary_release=never_ready(r.canary_release))


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=max(seconds, 0.001))


def world(*objs: dict, ready: bool | dict[str, bool] = True, stuck: tuple[str, ...] = (), analysis=None, commands=None):  # type: ignore[no-untyped-def]
    """A snapshot of a cluster holding `objs` (as applied), Deployments settled unless not `ready`.

    `ready` may name Deployments (name -> bool); `stuck` names Deployments whose Progressing
    condition says ProgressDeadlineExceeded.
    """
    from strategies.observe import snapshot

    raw = []
    for obj in objs:
        o = copy.deepcopy(obj)
        o["metadata"]["generation"] = 1
        if o["kind"] == "Deployment":
            name = o["metadata"]["name"]
            ok = ready.get(name, True) if isinstance(ready, dict) else ready
            n = int(o["spec"].get("replicas", 1))
            conditions = (
                [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
                if name in stuck
                else []
            )
            o["status"] = {
                "observedGeneration": 1,
                "replicas": n,
                "updatedReplicas": n,
                "readyReplicas": n if ok else 0,
                "availableReplicas": n if ok else 0,
                "conditions": conditions,
            }
        raw.append(o)
    return snapshot(raw, analysis=analysis, commands=commands)


def writes(decision) -> list[str]:  # type: ignore[no-untyped-def]
    """Short names of the objects a decision writes: 'Deployment/checkout=2' (replicas) etc."""
    from strategies.model import Apply, Scale, SetWeights

    out = []
    for a in decision.actions:
        if isinstance(a, Apply | SetWeights):
            out += [f"{o['kind']}/{o['metadata']['name']}" for o in a.objects]
        elif isinstance(a, Scale):
            out.append(f"Deployment/{a.name}={a.replicas}")
    return out


def events(decision) -> list[str]:  # type: ignore[no-untyped-def]
    from strategies.model import Event

    return [a.reason for a in decision.actions if isinstance(a, Event)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def run_until_settled(
    cluster: Cluster,
    rollout: RegionRollout,
    status: StrategyStatus | None = None,
    *,
    timeout: float = 300.0,
    analysis: AnalysisHook | None = None,
    commands: Callable[[StrategyStatus], Commands] | None = None,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    max_wait: float = 1.0,
    stop: Callable[[StrategyStatus], bool] | None = None,
    on_pass: Callable[[Driven], None] | None = None,
) -> StrategyStatus:
    """Drive region steps (strategies.driver.drive, as the reconciler does once per pass) until the
    status is terminal or paused (or `stop(status)`); TimeoutError otherwise."""
    status = status or StrategyStatus()
    deadline = clock() + timedelta(seconds=timeout)  # on the given clock, so fake clocks time out too
    failures = 0
    while True:
        result = drive(
            cluster,
            rollout,
            status,
            clock(),
            analysis=analysis,
            commands=commands(status) if commands else None,
            failures=failures,
        )
        failures = failures + 1 if result.transient else 0
        status = result.status
        if on_pass is not None:
            on_pass(result)
        if status.settled or (stop is not None and stop(status)):
            return status
        if clock() > deadline:
            raise TimeoutError(
                f"{rollout.app} in {rollout.region} not settled after {timeout}s: "
                f"{status.phase.value} step {status.step} ({status.step_name}) "
                f"{status.message}"
            )
        sleep(min(max_wait, result.requeue_after if result.requeue_after is not None else max_wait))

"""The drill's IO: gather this tick's observations, advance the pure machine, write the action's
status (guarded by its resourceVersion), then set the global weight it holds.

The runner reaches the controller's adapters only through `DrillHost`, a small typed interface
the release reconciler implements: no private attribute of another object is read here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, cast

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from config.repository import Repository
from config.times import format_time
from rollout.drill.machine import advance, current_and_previous, plan_drill, serving_release
from rollout.drill.model import (
    BUSY,
    DRAIN,
    FINAL,
    FORWARD,
    RESTORE,
    ROLLBACK,
    RUNNING,
    STEPS,
    DrillState,
    Facts,
    Observations,
    ReleaseInfo,
    ReleaseRef,
    Setup,
    Targets,
    without_none,
)
from rollout.failures import permanent_reason
from rollout.release import ReleasePhase
from rollout.store import ACTIONS, GROUP, VERSION, StoredRelease
from strategies.cluster import Cluster
from strategies.driver import ReleaseAt, drive
from strategies.errors import TemporaryError
from strategies.model import Phase as StrategyPhase
from strategies.model import RegionRollout, StrategyStatus

log = structlog.get_logger("rollout.drill")


class DrillHost(Protocol):
    """What a drill needs from the controller: the release reconciler provides it."""

    def may_write(self) -> bool:
        """This replica leads: it may change clusters, traffic and statuses."""
        ...

    def repository(self, commit: str) -> Repository: ...

    def region_cluster(self, repo: Repository, region: str) -> Cluster: ...

    def region_rollout(self, app: str, region: str, release: ReleaseAt, rollback_to: ReleaseAt | None) -> RegionRollout:
        """`release` rendered for `region`, whose rollback returns to `rollback_to`."""
        ...

    def request_rate(self, app: str, region: str, now: datetime) -> float | None: ...

    def region_weight(self, app: str, region: str) -> int | None: ...

    def set_region_weight(self, app: str, region: str, weight: int) -> None: ...


def release_info(stored: StoredRelease, region: str) -> ReleaseInfo:
    """What the drill needs to know of one stored release, seen from `region`."""
    status = stored.status
    previous = (
        (status.previous_commit, status.previous_version)
        if status.previous_commit and status.previous_version
        else None
    )
    here = status.regions.get(region)
    return ReleaseInfo(
        ReleaseRef(stored.name, stored.spec.commit, stored.spec.version),
        status.phase,
        stored.created,
        tuple(r for w in stored.spec.waves for r in w.regions),
        previous,
        here.phase if here else None,
        dict(here.strategy) if here else {},
    )


def observation_failed(state: DrillState, exc: BaseException, now: datetime) -> Observations:
    """What a tick whose observation raised saw. A permanent error (the release's commit cannot be
    read: `rollout.failures.permanent_reason`) fails a strategy step at once with its message; anything
    else is nothing seen: the step waits, and fails at its deadline if it lasts."""
    facts = state.facts
    reason = permanent_reason(exc, facts.app, facts.current.commit) if facts is not None else None
    if reason is None or state.step not in (ROLLBACK, FORWARD):
        return Observations()
    recorded = StrategyStatus.from_dict(state.strategy) if state.strategy else StrategyStatus()
    failed = replace(recorded, phase=StrategyPhase.FAILED, reason="Unbuildable", message=reason, finished_at=now)
    return Observations(strategy=failed.to_dict())


def forced(spec: Mapping[str, Any]) -> bool:
    """The drill's "allow a high-traffic region" flag: `force`, or `full` on actions stored by earlier
    versions (which carried --force in the promote's field)."""
    return bool(spec.get("force", spec.get("full", False)))


class DrillRunner:
    """Advances drill ReleaseActions through the controller's adapters (clusters, traffic, metrics)."""

    def __init__(
        self,
        host: DrillHost,
        api_client: client.ApiClient,
        namespace: str,
        list_actions: Callable[[], list[dict[str, Any]]],
    ):
        self.host = host
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.list_actions = list_actions

    def tick(self, action: dict[str, Any], releases: Sequence[StoredRelease], now: datetime) -> dict[str, Any] | None:
        """One step of one drill; returns the action as written (None: nothing written)."""
        name = action["metadata"]["name"]
        state = DrillState.from_status(action.get("status"))
        if state.state in FINAL:
            return None
        try:
            obs = self.observe(action, state, releases, now)
        except Exception as exc:  # noqa: BLE001 - one drill's failure must not stop the controller
            obs = observation_failed(state, exc, now)
            log.warning(
                "drill: observation failed",
                action=name,
                error=f"{type(exc).__name__}: {exc}"[:500],
                outcome="the step fails" if obs.strategy is not None else "the step waits; its deadline still runs",
            )
            if not state.state:
                return None
        new, weights = advance(state, obs, now)
        if not self.host.may_write():
            return None
        written = action
        old = action.get("status") or {}
        status = without_none({**new.to_status(), "handledAt": old.get("handledAt") or format_time(now)})
        if status != old:
            # the whole status, guarded by the resourceVersion it was decided from (a JSON patch: the
            # controller's role may patch releaseactions/status, not update it)
            body = [
                {"op": "test", "path": "/metadata/resourceVersion", "value": action["metadata"]["resourceVersion"]},
                {"op": "add", "path": "/status", "value": status},
            ]
            try:
                written = cast(
                    dict[str, Any],
                    self.custom.patch_namespaced_custom_object_status(
                        GROUP, VERSION, self.namespace, ACTIONS, name, body, _content_type="application/json-patch+json"
                    ),
                )
            except ApiException as exc:
                log.info("drill status not written; will re-read", action=name, status=exc.status)
                return None
            if new.state != state.state or new.step != state.step:
                log.info(
                    "drill",
                    action=name,
                    state=new.state,
                    step=STEPS[min(new.step, len(STEPS) - 1)],
                    message=new.message,
                )
        if new.facts is not None:  # after the status recorded the intent
            for w in weights:
                self.host.set_region_weight(new.facts.app, w.region, w.weight)
        return written if written is not action else None

    # --- gather --------------------------------------------------------------------------------

    def observe(
        self, action: dict[str, Any], state: DrillState, releases: Sequence[StoredRelease], now: datetime
    ) -> Observations:
        spec = action.get("spec") or {}
        app, region = str(spec.get("app") or ""), str(spec.get("region") or "")
        if not state.state:
            setup = self._setup(action, app, region, releases)
            rate = self.host.request_rate(app, region, now) if isinstance(plan_drill(setup), Facts) else None
            return Observations(setup=setup, rate=rate)
        assert state.facts is not None
        facts = state.facts
        busy = [r.name for r in releases if ReleasePhase(r.status.phase) in BUSY]
        interrupted = busy[0] if busy else None
        if state.step in (DRAIN, RESTORE):
            return Observations(
                rate=self.host.request_rate(app, region, now),
                weight=self.host.region_weight(app, region),
                interrupted_by=interrupted,
            )
        try:
            strategy, serving = self._drive(facts, state, now)
        except TemporaryError as exc:
            log.warning("drill: region unreachable; waiting", region=region, error=str(exc))
            return Observations(interrupted_by=interrupted)
        return Observations(strategy=strategy, region_release=serving, interrupted_by=interrupted)

    def _setup(self, action: dict[str, Any], app: str, region: str, releases: Sequence[StoredRelease]) -> Setup:
        spec = action.get("spec") or {}
        infos = tuple(release_info(r, region) for r in sorted(releases, key=lambda r: (r.created, r.name)))
        others = [
            a["metadata"]["name"]
            for a in self.list_actions()
            if a["metadata"]["name"] != action["metadata"]["name"]
            and (a.get("spec") or {}).get("action") == "drill"
            and (a.get("spec") or {}).get("app") == app
            and (a.get("status") or {}).get("state") == RUNNING
        ]
        setup = Setup(app, region, forced(spec), infos, other_drill=others[0] if others else None)
        picked = current_and_previous(infos)
        if picked is None:
            return setup
        current, previous = picked
        try:
            repo = self.host.repository(current.ref.commit)
            if region not in repo.regions or app not in repo.apps:
                return setup
            plan = repo.apps[app].plan
            chosen = plan.strategy.rolling or plan.strategy.blue_green or plan.strategy.canary
            assert chosen is not None
            targets = Targets(
                plan.rollback.drain_target.percent,
                plan.rollback.drain_target.within.total_seconds(),
                chosen.progress_deadline.total_seconds(),
            )
            setup = replace(setup, tier=repo.regions[region].tier.value, targets=targets)
            facts = Facts(app, region, current.ref, previous, targets, dict(current.region_strategy))
            snapshot = self.host.region_cluster(repo, region).observe(self._rollout(facts, ROLLBACK))
            return replace(setup, region_release=serving_release(snapshot))
        except TemporaryError as exc:
            return replace(setup, problem=f"its cluster is unreachable ({exc})")
        except Exception as exc:  # noqa: BLE001 - an invalid repository, a render error: refuse, say why
            return replace(setup, problem=f"{type(exc).__name__}: {exc}")

    # --- the strategy, one region step per tick (strategies.driver) ------------------------------

    def _rollout(self, facts: Facts, step: int) -> RegionRollout:
        """Step 2 (ROLLBACK): the current release with the previous one as its rollback target, as the
        release itself would roll back. Step 3 (FORWARD): the current release as its own rollback
        target, so that the restore path re-applies exactly what the release left in the region."""
        current = ReleaseAt(facts.current.commit, facts.current.version)
        target = ReleaseAt(facts.previous.commit, facts.previous.version) if step == ROLLBACK else current
        return self.host.region_rollout(facts.app, facts.region, current, target)

    def _drive(self, facts: Facts, state: DrillState, now: datetime) -> tuple[dict[str, Any], str | None]:
        """One region step of the strategy; a permanent error fails it at once (the machine then
        records the step as failed), a transient one raises TemporaryError (the step waits)."""
        repo = self.host.repository(facts.current.commit)
        step = drive(
            self.host.region_cluster(repo, facts.region),
            lambda: self._rollout(facts, state.step),  # a release that does not render fails the step once
            StrategyStatus.from_dict(state.strategy),
            now,
            may_write=self.host.may_write(),
            logger=log.bind(drill=STEPS[state.step]),
        )
        if step.transient:
            raise TemporaryError(step.error)
        return step.status.to_dict(), serving_release(step.snapshot) if step.snapshot is not None else None

"""Pruning: what a release that passed a region deletes there. Pure (the listing is done by the
cluster adapter, `Cluster.inventory`, only while a region is at the prune step).

The prune step is the last forward step of every strategy (engine.around), so it runs only for a
release that was built (its repository read and its manifests rendered: a release that cannot be
built never gets a step list, see driver.unbuildable) and that passed every earlier step in this
region. A rollback re-applies the previous release, which renders the pruned objects again (a
release that passed region A, pruning X there, then failed in region B is rolled back in A too:
X comes back), and then runs the same step against the restored release (the last rollback
step): what only the rolled-back release added goes, by the same candidate rules.

An object found in the region is a candidate when all of these hold:
- it carries `app.kubernetes.io/managed-by: regional-rollout` and this app's
  `app.kubernetes.io/name` (another app's objects are never looked at; the executor's
  ownership check refuses them again before deleting);
- it lives in the app's target namespace (cluster-scoped objects only for the kinds the plan opts
  into), was applied by the controller (the applied-hash annotation) and has no ownerReferences
  (Pods, ReplicaSets and the like belong to their controller);
- its `rollout.dev/release` label names another release than the current one, the current release
  does not render it, and the strategy does not manage it (the other colour of a blue/green app,
  the canary track and its Services and route: `strategy_owned`).

A candidate is kept (and the reason reported) when annotated `rollout.dev/prune: "false"`, when its
kind is a Namespace, CustomResourceDefinition or PersistentVolumeClaim the plan did not list in
`prune.kinds` (the app's own target namespace is never deleted), or when it is a Job still
running. Jobs of older releases (`<name>-<release>`, manifests.one_shot) are otherwise pruned
like any object, once finished: their ttlSecondsAfterFinished is only a default the manifest may
drop, and a Job removed from Git should leave the region with its release, not an hour later.

Safety bound: when the deletions would exceed `prune.maxDeletions`, or would leave the app with no
object at all in the region, nothing is deleted: the step pauses with the reason (a Warning Event,
the region's status message); a responder's promote finishes the release without pruning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from config.hooks import LABEL_HOOK_PHASE
from config.identity import LABEL_MANAGED_BY, LABEL_NAME, LABEL_RELEASE, MANAGED_BY
from config.render import Rendered
from strategies.manifests import ref_of
from strategies.model import (
    ANNOTATION_APPLIED,
    Delete,
    Event,
    LiveObject,
    ObjectRef,
    Phase,
    RegionRollout,
    StrategyStatus,
)
from strategies.routers import canary_service, stable_service

PRUNE_STEP = "prune"  # the step's name (engine.around appends it to every strategy's forward and rollback steps)
ANNOTATION_PRUNE = "rollout.dev/prune"  # "false": never pruned
GUARDED_KINDS = ("Namespace", "CustomResourceDefinition", "PersistentVolumeClaim")
CLUSTER_SCOPED_KINDS = ("Namespace", "CustomResourceDefinition")
REFUSED = "PruneRefused"
FAILED = "PruneFailed"  # the region refused a prune's read or delete: the region pauses (driver.drive)
FAILED_FIX = (
    "pruning stopped, nothing else is undone: grant the region's deployer list and delete on that "
    "kind, or promote to finish without pruning"
)


@dataclass(frozen=True)
class PrunePlan:
    delete: tuple[LiveObject, ...] = ()
    kept: tuple[tuple[ObjectRef, str], ...] = ()  # candidates left in place, and why
    refused: str | None = None  # the safety bound stopped the prune: why


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def _key(ref: ObjectRef) -> tuple[str, str, str]:
    """Identity across API versions (apps/v1 and apps/v1beta2 name the same object)."""
    return group_of(ref.api_version), ref.kind, ref.name


def strategy_owned(rollout: RegionRollout) -> set[tuple[str, str]]:
    """(kind, name) of the objects the strategy makes itself from the rendered ones: they carry the
    release that last changed them, not necessarily the current one, and are the strategy's to keep."""
    app = rollout.app
    if rollout.kind == "blueGreen":
        return {("Deployment", f"{app}-blue"), ("Deployment", f"{app}-green"), ("Service", f"{app}-preview")}
    if rollout.kind == "canary":
        return {
            ("Deployment", f"{app}-canary"),
            ("Service", stable_service(app)),
            ("Service", canary_service(app)),
            ("HTTPRoute", app),
        }
    return set()


def is_ours(rollout: RegionRollout, obj: LiveObject) -> bool:
    """The app's own object, applied by the controller, not made by another controller."""
    if obj.label(LABEL_MANAGED_BY) != MANAGED_BY or obj.label(LABEL_NAME) != rollout.app:
        return False
    if obj.owned or obj.annotation(ANNOTATION_APPLIED) is None:
        return False
    if obj.ref.namespace is None:
        return obj.ref.kind in CLUSTER_SCOPED_KINDS
    return obj.ref.namespace == rollout.namespace


def target(rollout: RegionRollout, rolling_back: bool = False) -> tuple[Rendered, ...]:
    """The releases whose objects stay: the release and its canary track going forward; the
    previous release (the one restored) in a rollback."""
    if rolling_back:
        return (rollout.previous,) if rollout.previous is not None else ()
    return tuple(r for r in (rollout.release, rollout.canary_release) if r is not None)


def plan(rollout: RegionRollout, inventory: Iterable[LiveObject], rolling_back: bool = False) -> PrunePlan:
    """What the prune step of `rollout` deletes among the listed objects, what it keeps and why,
    or why it refuses to delete anything. `rolling_back`: the rollback's prune step, after the
    previous release was restored: what only the rolled-back release (or another later one) added
    goes, by the same rules; its hook Jobs stay (the record of the pre-rollback hook that just ran:
    left to their delete policy and TTL)."""
    ours = [o for o in inventory if is_ours(rollout, o)]
    keep = target(rollout, rolling_back)
    if not keep:  # nothing to compare with: never read as "nothing desired"
        return PrunePlan()
    current = {r.identity.number for r in keep}
    rendered = {_key(ref_of(o)) for r in keep for o in r.objects}
    managed = strategy_owned(rollout)
    delete: list[LiveObject] = []
    kept: list[tuple[ObjectRef, str]] = []
    for obj in ours:
        release = obj.label(LABEL_RELEASE)
        if release is None or release in current or _key(obj.ref) in rendered:
            continue
        if (obj.ref.kind, obj.ref.name) in managed or obj.deleting:
            continue
        if rolling_back and obj.label(LABEL_HOOK_PHASE) is not None:
            continue
        why = _protected(rollout, obj)
        if why:
            kept.append((obj.ref, why))
        else:
            delete.append(obj)
    if not delete:
        return PrunePlan((), tuple(kept))
    bound = rollout.prune.max_deletions
    if len(delete) > bound:
        return PrunePlan(
            (),
            tuple(kept),
            f"pruning would delete {len(delete)} objects, more than prune.maxDeletions ({bound}): "
            f"{_names(o.ref for o in delete)}; nothing deleted. Promote to finish without pruning, "
            "or raise prune.maxDeletions in rollout.yaml",
        )
    if len(delete) == len(ours) or not keep[0].objects:
        return PrunePlan(
            (),
            tuple(kept),
            f"pruning would delete every object of app {rollout.app} in {rollout.namespace} "
            f"({_names(o.ref for o in delete)}); nothing deleted. Check the release's labels and manifests; "
            "promote to finish without pruning",
        )
    return PrunePlan(tuple(delete), tuple(kept))


def _protected(rollout: RegionRollout, obj: LiveObject) -> str | None:
    if (obj.annotation(ANNOTATION_PRUNE) or "").strip().lower() == "false":
        return f'annotated {ANNOTATION_PRUNE}: "false"'
    kind = obj.ref.kind
    if kind == "Namespace" and obj.ref.name == rollout.namespace:
        return "the app's target namespace is never pruned"
    if kind in GUARDED_KINDS and kind not in rollout.prune.kinds:
        return f"{kind} is pruned only when listed in rollout.yaml prune.kinds"
    if obj.running:
        return "a Job still running (pruned by a later release once finished, or by its TTL)"
    return None


def _names(refs: Iterable[ObjectRef], limit: int = 10) -> str:
    names = [f"{r.kind}/{r.name}" for r in refs]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def wants_inventory(status_phase: Phase, step_name: str) -> bool:
    """Whether the next observation lists the app's objects: only at the prune step, going forward
    or rolling back (one list per kind is too dear for every pass)."""
    return status_phase in (Phase.PROGRESSING, Phase.ROLLING_BACK) and step_name == PRUNE_STEP


def refused_by_region(status: StrategyStatus, error: str, now: datetime) -> StrategyStatus:
    """The status when the region refuses the prune step's listing or a delete (forbidden, another
    app's object): going forward the release passed, so the region pauses for a responder instead
    of rolling back; in a rollback the previous release is already restored, so the rollback ends
    RolledBack and says what was left in place."""
    if status.phase is Phase.ROLLING_BACK:
        message = f"{status.message}; " if status.message else ""
        return status.to(
            Phase.ROLLED_BACK,
            now,
            message=f"{message}pruning after the restore failed, the rolled-back release's own objects "
            f"may be left: {error}; grant the region's deployer list and delete on that kind and delete them",
        )
    return status.to(Phase.PAUSED, now, reason=FAILED, message=f"{error}; {FAILED_FIX}")


@dataclass(frozen=True)
class Outcome:
    """What the prune step does in one pass (engine.prune_step turns it into a step result)."""

    kind: Literal["wait", "done", "pause"]
    actions: tuple[Delete | Event, ...] = ()
    reason: str = ""
    message: str = ""


def decide(rollout: RegionRollout, inventory: Iterable[LiveObject] | None, rolling_back: bool = False) -> Outcome:
    """The prune step's pass: wait for the listing, delete what goes (in the background: a Job's
    Pods go with it), pause on the safety bound, or finish (reporting what was kept). In a
    rollback (`rolling_back`) the safety bound does not pause (a rollback is not held): the step
    finishes with a Warning Event and the reason as its message."""
    if not rollout.prune.enabled:
        return Outcome("done")
    if inventory is None:  # the engine records the step's name; the driver's next observation lists
        return Outcome("wait")
    p = plan(rollout, inventory, rolling_back)
    if p.refused and rolling_back:
        return Outcome("done", (Event(rollout.app, REFUSED, p.refused, "Warning"),), REFUSED, p.refused)
    if p.refused:
        return Outcome("pause", reason=REFUSED, message=p.refused)
    if p.delete:
        deletes = tuple(Delete(o.ref, propagation="Background") for o in p.delete)
        return Outcome(
            "wait", (*deletes, Event(rollout.app, "Pruning", f"deleting {_names((d.ref for d in deletes), 50)}"))
        )
    if p.kept:
        kept = "; ".join(f"{r.kind}/{r.name}: {why}" for r, why in p.kept[:20])
        return Outcome("done", (Event(rollout.app, "PruneKept", f"not pruned: {kept}"),))
    return Outcome("done")


def live_object(obj: Mapping[str, Any]) -> LiveObject:
    """An object as listed from the API (a plain dict) -> what the prune rules look at."""
    meta = obj.get("metadata") or {}
    running = False
    if obj.get("kind") == "Job":
        conditions = (obj.get("status") or {}).get("conditions") or []
        running = not any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)
    return LiveObject(
        ref=ref_of(obj),
        labels=tuple(sorted((meta.get("labels") or {}).items())),
        annotations=tuple(sorted((meta.get("annotations") or {}).items())),
        owned=bool(meta.get("ownerReferences")),
        deleting=meta.get("deletionTimestamp") is not None,
        running=running,
    )

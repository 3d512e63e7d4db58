"""An in-memory `Cluster` for unit tests: stores applied objects, plays a Deployment controller.

Deployments converge at once when observed, except pods whose template carries the lab's fault
label `lab.rollout.dev/fault: never-ready` (they are created but never become Ready). Every write
is recorded, so tests can count them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from regions.analysis.model import Verdict
from strategies.manifests import Obj, ref_of
from strategies.model import (
    Action,
    Apply,
    Commands,
    Delete,
    Event,
    LiveObject,
    ObjectRef,
    RegionRollout,
    Scale,
    SetWeights,
    Snapshot,
)
from strategies.observe import snapshot
from strategies.prune import live_object

FAULT_LABEL = "lab.rollout.dev/fault"


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[ObjectRef, Obj] = {}
        self.writes: list[tuple[str, ObjectRef]] = []
        self.events: list[Event] = []
        self.inventories = 0  # how often the prune step's listing was asked for

    def observe(
        self, rollout: RegionRollout, *, analysis: Verdict | None = None, commands: Commands | None = None
    ) -> Snapshot:
        for obj in self.objects.values():
            if obj["kind"] == "Deployment":
                _play_controller(obj)
        return snapshot(
            [
                copy.deepcopy(o)
                for o in self.objects.values()
                if (o["metadata"].get("namespace") in (None, rollout.namespace))
            ],
            analysis=analysis,
            commands=commands,
        )

    def inventory(self, rollout: RegionRollout) -> tuple[LiveObject, ...]:
        """Every stored object, as the prune step's listing (the rules filter by labels and namespace)."""
        self.inventories += 1
        return tuple(live_object(copy.deepcopy(o)) for o in self.objects.values())

    def execute(self, rollout: RegionRollout, actions: Sequence[Action], *, logger: Any = None) -> int:
        count = 0
        for action in actions:
            if isinstance(action, Apply | SetWeights):
                for obj in action.objects:
                    self.apply(obj)
                    count += 1
            elif isinstance(action, Scale):
                self.apply(action.object)
                count += 1
            elif isinstance(action, Delete):
                self.objects.pop(action.ref, None)
                self.writes.append(("delete", action.ref))
                count += 1
            elif isinstance(action, Event):
                self.events.append(action)
        return count

    def apply(self, obj: Obj) -> None:
        ref = ref_of(obj)
        new = copy.deepcopy(obj)
        old = self.objects.get(ref)
        generation = int((old or {}).get("metadata", {}).get("generation", 0))
        if old is None or old.get("spec") != new.get("spec"):
            generation += 1
        new["metadata"]["generation"] = max(generation, 1)
        new["status"] = (old or {}).get("status", {})
        self.objects[ref] = new
        self.writes.append(("apply", ref))


def _play_controller(dep: Obj) -> None:
    spec = dep["spec"]
    replicas = int(spec.get("replicas", 1))
    labels = (spec.get("template", {}).get("metadata") or {}).get("labels") or {}
    broken = labels.get(FAULT_LABEL) == "never-ready"
    ready = 0 if broken else replicas
    dep["status"] = {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [{"type": "Available", "status": "True" if ready == replicas else "False"}],
    }

"""Pruning (issue 12 item 4): the pure rules of strategies/prune.py, each protection on its own,
and whole releases on the fake cluster (the object dropped from Git is deleted once the release
passed the region, and a rollback brings it back)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from config.identity import LABEL_MANAGED_BY, LABEL_NAME, LABEL_RELEASE, MANAGED_BY
from config.render import Rendered
from config.schema import Prune
from regions.analysis.model import Verdict
from strategies import prune
from strategies.engine import Ctx, prune_step
from strategies.fake import FakeCluster
from strategies.manifests import stamped
from strategies.model import Commands, Delete, Event, LiveObject, Phase, RegionRollout, Snapshot, StrategyStatus
from strategies.prune import ANNOTATION_PRUNE, PRUNE_STEP, live_object, plan

from .helpers import T0, Clock, rollout, run_until_settled

OLD = "111111111111"  # the previous release's number in helpers.rollout
NEW = "222222222222"


def obj(
    kind: str, name: str, *, app: str = "catalog", release: str = OLD, ns: str | None = "catalog", **kw: Any
) -> dict:
    api = {
        "Deployment": "apps/v1",
        "Job": "batch/v1",
        "CustomResourceDefinition": "apiextensions.k8s.io/v1",
        "HTTPRoute": "gateway.networking.k8s.io/v1",
    }.get(kind, "v1")
    meta: dict[str, Any] = {
        "name": name,
        "labels": {LABEL_NAME: app, LABEL_MANAGED_BY: MANAGED_BY, LABEL_RELEASE: release, **kw.get("labels", {})},
        "annotations": dict(kw.get("annotations", {})),
    }
    if ns is not None:
        meta["namespace"] = ns
    if kw.get("owned"):
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "x", "uid": "u", "apiVersion": "apps/v1"}]
    out = stamped(
        {"apiVersion": api, "kind": kind, "metadata": meta, **({"data": {"k": "v"}} if kind == "ConfigMap" else {})}
    )
    if "status" in kw:
        out["status"] = kw["status"]
    return out


def live(*objs: dict) -> list[LiveObject]:
    return [live_object(o) for o in objs]


def current(r: RegionRollout) -> list[dict]:
    """The objects the current release applied (they carry its release label)."""
    return [stamped(o) for o in r.release.objects]


def deleted(p: prune.PrunePlan) -> list[str]:
    return sorted(f"{o.ref.kind}/{o.ref.name}" for o in p.delete)


def kept(p: prune.PrunePlan) -> dict[str, str]:
    return {f"{r.kind}/{r.name}": why for r, why in p.kept}


R = rollout("catalog")


def test_an_object_of_an_older_release_that_the_release_no_longer_renders_is_deleted() -> None:
    p = plan(R, live(*current(R), obj("ConfigMap", "extra")))
    assert deleted(p) == ["ConfigMap/extra"] and p.refused is None


def test_what_the_current_release_renders_or_labels_is_never_deleted() -> None:
    stale_label = obj("Deployment", "catalog")  # rendered by the release, label not updated yet
    mine = obj("ConfigMap", "made-now", release=NEW)  # carries the current release
    p = plan(R, live(*current(R), stale_label, mine))
    assert p.delete == () and p.kept == ()


def test_the_prune_annotation_protects_an_object() -> None:
    keep = obj("ConfigMap", "keep-me", annotations={ANNOTATION_PRUNE: "false"})
    p = plan(R, live(*current(R), keep, obj("ConfigMap", "extra")))
    assert deleted(p) == ["ConfigMap/extra"]
    assert "annotated" in kept(p)["ConfigMap/keep-me"]


def test_another_apps_objects_and_objects_not_managed_here_are_never_candidates() -> None:
    theirs = obj("ConfigMap", "extra-of-search", app="search")  # same labels but the app
    unmanaged = obj("ConfigMap", "by-hand")
    unmanaged["metadata"]["labels"][LABEL_MANAGED_BY] = "helm"
    elsewhere = obj("ConfigMap", "elsewhere", ns="other")
    not_applied = obj("ConfigMap", "no-hash")
    del not_applied["metadata"]["annotations"]["rollout.dev/applied-hash"]
    made_by_controller = obj("Pod", "catalog-abc", owned=True)
    no_release = obj("ConfigMap", "no-release")
    del no_release["metadata"]["labels"][LABEL_RELEASE]
    p = plan(R, live(*current(R), theirs, unmanaged, elsewhere, not_applied, made_by_controller, no_release))
    assert p.delete == () and p.kept == ()


@pytest.mark.parametrize(
    "kind, ns",
    [("PersistentVolumeClaim", "catalog"), ("Namespace", None), ("CustomResourceDefinition", None)],
)
def test_namespaces_crds_and_pvcs_are_pruned_only_when_the_plan_opts_in(kind: str, ns: str | None) -> None:
    gone = obj(kind, "old-one", ns=ns)
    p = plan(R, live(*current(R), gone))
    assert p.delete == () and "prune.kinds" in kept(p)[f"{kind}/old-one"]
    opted = replace(R, prune=Prune(kinds=[kind]))
    assert deleted(plan(opted, live(*current(R), gone))) == [f"{kind}/old-one"]


def test_the_apps_own_namespace_is_never_pruned_even_when_opted_in() -> None:
    opted = replace(R, prune=Prune(kinds=["Namespace"]))
    p = plan(opted, live(*current(R), obj("Namespace", "catalog", ns=None)))
    assert p.delete == () and "never" in kept(p)["Namespace/catalog"]


def test_jobs_of_older_releases_are_pruned_once_finished_a_running_one_is_left() -> None:
    done_ = {"conditions": [{"type": "Complete", "status": "True"}]}
    finished = obj("Job", f"db-backup-{OLD}", status=done_)
    running = obj("Job", f"migrate-{OLD}", status={"active": 1})
    p = plan(R, live(*current(R), finished, running))
    assert deleted(p) == [f"Job/db-backup-{OLD}"]
    assert "running" in kept(p)[f"Job/migrate-{OLD}"]


def test_over_the_bound_nothing_is_deleted_and_the_reason_is_given() -> None:
    many = [obj("ConfigMap", f"cm-{i}") for i in range(4)]
    bounded = replace(R, prune=Prune(max_deletions=3))
    p = plan(bounded, live(*current(R), *many))
    assert p.delete == () and p.refused is not None
    assert "4 objects, more than prune.maxDeletions (3)" in p.refused and "Promote" in p.refused
    assert deleted(plan(replace(R, prune=Prune(max_deletions=4)), live(*current(R), *many))) == [
        f"ConfigMap/cm-{i}" for i in range(4)
    ]


def test_deleting_every_object_of_the_app_is_refused() -> None:
    # none of the current release's objects found: something is off (labels, listing): delete nothing
    p = plan(R, live(obj("ConfigMap", "extra"), obj("Secret", "token")))
    assert p.delete == () and p.refused is not None and "every object of app catalog" in p.refused


def test_blue_green_colours_and_preview_belong_to_the_strategy() -> None:
    bg = rollout("search")
    assert bg.kind == "blueGreen"
    ns = bg.namespace
    theirs = [
        obj("Deployment", "search-blue", app="search", ns=ns),
        obj("Deployment", "search-green", app="search", ns=ns),
        obj("Service", "search-preview", app="search", ns=ns),
    ]
    extra = obj("ConfigMap", "extra", app="search", ns=ns)
    p = plan(bg, live(*current(bg), *theirs, extra))
    assert deleted(p) == ["ConfigMap/extra"]


def test_the_canary_track_its_services_and_route_belong_to_the_strategy() -> None:
    c = rollout("checkout")
    assert c.kind == "canary"
    ns = c.namespace
    theirs = [
        obj("Deployment", "checkout-canary", app="checkout", ns=ns),
        obj("Service", "checkout-stable", app="checkout", ns=ns),
        obj("Service", "checkout-canary", app="checkout", ns=ns),
        obj("HTTPRoute", "checkout", app="checkout", ns=ns),
    ]
    extra = obj("ConfigMap", "extra", app="checkout", ns=ns)
    p = plan(c, live(*current(c), *theirs, extra))
    assert deleted(p) == ["ConfigMap/extra"]


def test_rolling_has_no_strategy_owned_objects() -> None:
    left = obj("Deployment", "catalog-blue")  # a colour left by an earlier blue/green plan
    assert deleted(plan(R, live(*current(R), left))) == ["Deployment/catalog-blue"]


# --- the step --------------------------------------------------------------------------------


def ctx(r: RegionRollout, inventory: list[LiveObject] | None, promote: bool = False) -> Ctx:
    status = StrategyStatus(phase=Phase.PROGRESSING, step_name=PRUNE_STEP)
    snap = Snapshot(inventory=None if inventory is None else tuple(inventory), commands=Commands(promote=promote))
    return Ctx(r, status, snap, T0)


def test_the_step_asks_for_the_listing_and_deletes_in_the_background() -> None:
    step = prune_step()
    assert step.name == PRUNE_STEP
    first = step.run(ctx(R, None))
    assert first.kind == "wait" and first.actions == () and first.requeue == 0.0
    out = step.run(ctx(R, live(*current(R), obj("ConfigMap", "extra"))))
    assert out.kind == "wait"
    deletes = [a for a in out.actions if isinstance(a, Delete)]
    assert [(d.ref.name, d.propagation) for d in deletes] == [("extra", "Background")]
    assert any(isinstance(a, Event) and a.reason == "Pruning" and "ConfigMap/extra" in a.message for a in out.actions)
    assert step.run(ctx(R, live(*current(R)))).kind == "done"


def test_the_step_pauses_on_the_bound_and_reports_what_it_kept() -> None:
    bounded = replace(R, prune=Prune(max_deletions=1))
    out = prune_step().run(ctx(bounded, live(*current(R), obj("ConfigMap", "a"), obj("ConfigMap", "b"))))
    assert out.kind == "pause" and out.reason == "PruneRefused" and "maxDeletions" in out.message
    keep = obj("ConfigMap", "keep", annotations={ANNOTATION_PRUNE: "false"})
    done_ = prune_step().run(ctx(R, live(*current(R), keep)))
    assert done_.kind == "done"
    assert [a.reason for a in done_.actions if isinstance(a, Event)] == ["PruneKept"]


def test_pruning_off_means_no_listing_and_no_deletion() -> None:
    off = replace(R, prune=Prune(enabled=False))
    assert prune_step().run(ctx(off, None)).kind == "done"


def test_the_listing_is_asked_for_only_at_the_prune_step_forward_or_rolling_back() -> None:
    assert prune.wants_inventory(Phase.PROGRESSING, PRUNE_STEP)
    assert prune.wants_inventory(Phase.ROLLING_BACK, PRUNE_STEP)
    assert not prune.wants_inventory(Phase.PROGRESSING, "apply")
    assert not prune.wants_inventory(Phase.ROLLING_BACK, "restore")
    assert not prune.wants_inventory(Phase.PAUSED, PRUNE_STEP)


# --- the rollback's prune (against the restored release) ---------------------------------------


def restored(r: RegionRollout) -> list[dict]:
    """The previous release's objects as the rollback re-applied them (they carry its label)."""
    assert r.previous is not None
    return [stamped(o) for o in r.previous.objects]


def test_a_rollback_removes_what_only_the_rolled_back_release_added() -> None:
    added = obj("ConfigMap", "only-new", release=NEW)
    p = plan(R, live(*restored(R), added), rolling_back=True)
    assert deleted(p) == ["ConfigMap/only-new"] and p.refused is None
    # going forward the same object is the current release's own
    assert deleted(plan(R, live(*current(R), added))) == []


def test_a_rollback_keeps_what_the_restored_release_renders_even_under_the_newer_label() -> None:
    assert R.previous is not None
    shared = [obj(o["kind"], o["metadata"]["name"], release=NEW) for o in R.previous.objects]
    assert deleted(plan(R, live(*shared), rolling_back=True)) == []


def test_a_rollbacks_prune_follows_the_same_candidate_rules() -> None:
    protected = obj("ConfigMap", "keep-new", release=NEW, annotations={ANNOTATION_PRUNE: "false"})
    theirs = obj("ConfigMap", "theirs", app="search", release=NEW)
    pvc = obj("PersistentVolumeClaim", "data-new", release=NEW)
    running = obj("Job", "migrate-" + NEW, release=NEW)
    hook = obj("Job", f"backup-{NEW}-pre-rollback", release=NEW, labels={"rollout.dev/hook-phase": "pre-rollback"})
    hook["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    p = plan(R, live(*restored(R), protected, theirs, pvc, running, hook), rolling_back=True)
    assert deleted(p) == []
    assert set(kept(p)) == {"ConfigMap/keep-new", "PersistentVolumeClaim/data-new", "Job/migrate-" + NEW}
    opted = replace(R, prune=Prune(kinds=["PersistentVolumeClaim"]))
    assert deleted(plan(opted, live(*restored(R), pvc), rolling_back=True)) == ["PersistentVolumeClaim/data-new"]


def test_a_rollback_with_nothing_to_restore_prunes_nothing() -> None:
    first = replace(R, previous=None)
    assert plan(first, live(obj("ConfigMap", "x", release=NEW)), rolling_back=True) == prune.PrunePlan()


def test_the_rollbacks_prune_step_does_not_pause_on_the_bound_it_warns_and_finishes() -> None:
    bounded = replace(R, prune=Prune(max_deletions=1))
    extra = [obj("ConfigMap", n, release=NEW) for n in ("a", "b")]
    status = StrategyStatus(phase=Phase.ROLLING_BACK, step_name=PRUNE_STEP, message="aborted")
    snap = Snapshot(inventory=tuple(live(*restored(R), *extra)))
    out = prune_step().run(Ctx(bounded, status, snap, T0))
    assert out.kind == "done" and out.reason == "PruneRefused" and not [a for a in out.actions if isinstance(a, Delete)]
    assert [(a.reason, a.type) for a in out.actions if isinstance(a, Event)] == [("PruneRefused", "Warning")]
    assert out.status is not None and out.status.message.startswith("aborted; pruning would delete 2 objects")
    out = prune_step().run(Ctx(R, status, snap, T0))
    assert out.kind == "wait" and sorted(a.ref.name for a in out.actions if isinstance(a, Delete)) == ["a", "b"]


def test_a_prune_the_region_refuses_pauses_going_forward_and_ends_a_rollback_rolled_back() -> None:
    forward = StrategyStatus(phase=Phase.PROGRESSING, step_name=PRUNE_STEP)
    paused = prune.refused_by_region(forward, "Forbidden (403)", T0)
    assert paused.phase is Phase.PAUSED and paused.reason == "PruneFailed" and "promote" in paused.message
    back = StrategyStatus(phase=Phase.ROLLING_BACK, step_name=PRUNE_STEP, reason="Aborted", message="abort")
    done_ = prune.refused_by_region(back, "Forbidden (403)", T0)
    assert done_.phase is Phase.ROLLED_BACK and done_.reason == "Aborted"
    assert done_.message.startswith("abort; pruning after the restore failed") and "Forbidden (403)" in done_.message


def test_the_plan_field_refuses_unknown_keys_and_kinds() -> None:
    assert Prune() == Prune(enabled=True, kinds=[], max_deletions=20)
    assert Prune.model_validate({"kinds": ["PersistentVolumeClaim"], "maxDeletions": 5}).max_deletions == 5
    with pytest.raises(ValidationError):
        Prune.model_validate({"enabled": True, "dryRun": True})
    with pytest.raises(ValidationError):
        Prune.model_validate({"kinds": ["Secret"]})
    with pytest.raises(ValidationError):
        Prune.model_validate({"maxDeletions": 0})


# --- whole releases on the fake cluster --------------------------------------------------------


def with_extra(rendered: Rendered | None, *extra: dict) -> Rendered | None:
    if rendered is None:
        return None
    objs = copy.deepcopy(list(rendered.objects))
    labels = next(o for o in objs if o["kind"] == "Deployment")["metadata"]["labels"]
    for e in extra:
        e = copy.deepcopy(e)
        e["metadata"]["labels"] = {**labels, **e["metadata"].get("labels", {})}
        objs.append(e)
    return replace(rendered, objects=tuple(objs))


def configmap(name: str, ns: str, annotations: dict[str, str] | None = None) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


@pytest.mark.parametrize("app", ["catalog", "search", "checkout"])
def test_a_release_that_drops_an_object_deletes_it_after_passing_and_a_rollback_restores_it(app: str) -> None:
    second = rollout(app)
    ns = second.namespace
    extra, keep = configmap("extra", ns), configmap("keep", ns, {ANNOTATION_PRUNE: "false"})
    first = replace(second, release=with_extra(second.previous, extra, keep), previous=None, canary_release=None)
    first = replace(first, canary_release=with_extra(second.previous, extra, keep) if second.kind == "canary" else None)
    second = replace(second, previous=first.release)
    cluster, clock = FakeCluster(), Clock()
    kw: dict[str, Any] = {"clock": clock, "sleep": clock.sleep, "timeout": 3600, "analysis": lambda _: Verdict.SUCCESS}
    kw["commands"] = lambda s: Commands(promote=s.phase is Phase.PAUSED)  # plans that wait for a promote
    assert run_until_settled(cluster, first, **kw).phase is Phase.SUCCEEDED
    theirs = obj("ConfigMap", "extra-theirs", app="other", ns=ns)
    cluster.apply(theirs)
    names = lambda: {(r.kind, r.name) for r in cluster.objects}  # noqa: E731
    assert ("ConfigMap", "extra") in names()

    listed_before = cluster.inventories
    status = run_until_settled(cluster, second, **kw)
    assert status.phase is Phase.SUCCEEDED, status
    assert ("ConfigMap", "extra") not in names()
    assert {("ConfigMap", "keep"), ("ConfigMap", "extra-theirs")} <= names()
    assert ("delete", next(r for r in cluster.writes if r[1].name == "extra")[1]) in cluster.writes
    assert 1 <= cluster.inventories - listed_before <= 3  # listed at the prune step only

    kw["commands"] = lambda s: Commands(abort="test")
    rolled = run_until_settled(cluster, second, status, **kw)
    assert rolled.phase is Phase.ROLLED_BACK, rolled
    assert ("ConfigMap", "extra") in names()
    assert {("ConfigMap", "keep"), ("ConfigMap", "extra-theirs")} <= names()


@pytest.mark.parametrize("app", ["catalog", "search", "checkout"])
def test_a_rollback_deletes_what_only_the_rolled_back_release_added(app: str) -> None:
    second = rollout(app)
    ns = second.namespace
    added, kept_ = configmap("added", ns), configmap("added-kept", ns, {ANNOTATION_PRUNE: "false"})
    second = replace(second, release=with_extra(second.release, added, kept_))
    if second.kind == "canary":
        second = replace(second, canary_release=with_extra(second.canary_release, added, kept_))
    first = replace(second, release=second.previous, previous=None, canary_release=None)
    first = replace(first, canary_release=second.previous if second.kind == "canary" else None)
    cluster, clock = FakeCluster(), Clock()
    kw: dict[str, Any] = {"clock": clock, "sleep": clock.sleep, "timeout": 3600, "analysis": lambda _: Verdict.SUCCESS}
    kw["commands"] = lambda s: Commands(promote=s.phase is Phase.PAUSED)
    assert run_until_settled(cluster, first, **kw).phase is Phase.SUCCEEDED
    status = run_until_settled(cluster, second, **kw)
    assert status.phase is Phase.SUCCEEDED, status
    names = lambda: {(r.kind, r.name) for r in cluster.objects}  # noqa: E731
    assert {("ConfigMap", "added"), ("ConfigMap", "added-kept")} <= names()
    kw["commands"] = lambda s: Commands(abort="test")
    rolled = run_until_settled(cluster, second, status, **kw)
    assert rolled.phase is Phase.ROLLED_BACK, rolled
    assert ("ConfigMap", "added") not in names() and ("ConfigMap", "added-kept") in names()


def test_over_the_bound_the_region_pauses_and_a_promote_finishes_without_pruning() -> None:
    second = replace(rollout("catalog"), prune=Prune(max_deletions=1))
    extras = [configmap("a", "catalog"), configmap("b", "catalog")]
    first = replace(second, release=with_extra(second.previous, *extras), previous=None)
    second = replace(second, previous=first.release)
    cluster, clock = FakeCluster(), Clock()
    kw: dict[str, Any] = {"clock": clock, "sleep": clock.sleep, "timeout": 3600}
    assert run_until_settled(cluster, first, **kw).phase is Phase.SUCCEEDED
    paused = run_until_settled(cluster, second, **kw)
    assert paused.phase is Phase.PAUSED and paused.reason == "PruneRefused", paused
    assert "more than prune.maxDeletions (1)" in paused.message
    assert any(e.reason == "Paused" and e.type == "Warning" for e in cluster.events)
    assert not [w for w in cluster.writes if w[0] == "delete"]
    done_ = run_until_settled(cluster, second, paused, commands=lambda s: Commands(promote=True), **kw)
    assert done_.phase is Phase.SUCCEEDED
    assert {"a", "b"} <= {r.name for r in cluster.objects} and not [w for w in cluster.writes if w[0] == "delete"]


# --- the cluster adapter's listing, on a stand-in discovery client (the lab test uses a real one) ---


class _Res:
    def __init__(self, kind: str, group_version: str, *, namespaced: bool = True, **kw: Any) -> None:
        self.kind, self.group_version, self.namespaced = kind, group_version, namespaced
        self.preferred = kw.get("preferred", True)
        self.verbs = kw.get("verbs", ["list", "delete", "get"])
        self.items: list[dict] = kw.get("items", [])
        self.status: int | None = kw.get("status")
        self.calls: list[tuple[str | None, str]] = []
        if "base_kind" in kw:
            self.base_kind = kw["base_kind"]

    def get(self, *, namespace: str | None, label_selector: str, _request_timeout: float) -> Any:
        self.calls.append((namespace, label_selector))
        if self.status:
            raise type("ApiException", (Exception,), {"status": self.status, "body": "{}"})()
        items = self.items
        return type("Listed", (), {"to_dict": lambda _self: {"items": copy.deepcopy(items)}})()


def test_the_adapter_lists_each_served_kind_by_the_apps_labels_and_skips_what_it_may_not_list() -> None:
    from strategies.cluster import KubernetesCluster
    from strategies.errors import Backoff

    cm = {"metadata": {"name": "extra", "namespace": "catalog", "labels": {LABEL_NAME: "catalog"}}}
    resources = {
        "cm": _Res("ConfigMap", "v1", items=[cm]),
        "pod": _Res("Pod", "v1"),  # made by controllers: never listed
        "list": _Res("ConfigMapList", "v1", base_kind="ConfigMap"),  # discovery's list entries
        "old": _Res("Deployment", "apps/v1beta2", preferred=False),
        "review": _Res("LocalSubjectAccessReview", "authorization.k8s.io/v1", verbs=["create"]),
        "forbidden": _Res("Secret", "v1", status=403),
        "ns": _Res("Namespace", "v1", namespaced=False),
        "crd": _Res("CustomResourceDefinition", "apiextensions.k8s.io/v1", namespaced=False),
    }
    adapter = KubernetesCluster.__new__(KubernetesCluster)
    adapter.backoff, adapter.timeout, adapter.sleep = Backoff(attempts=1), 1.0, lambda _: None
    adapter._watch = False  # the listing from the region watches: test_prune_census.py
    discovery = type("R", (), {"search": lambda _s: list(resources.values()), "get": lambda _s, **_k: None})()
    adapter._dynamic = type("Dyn", (), {"resources": discovery})()
    found = adapter.inventory(R)
    assert [(o.ref.api_version, o.ref.kind, o.ref.name) for o in found] == [("v1", "ConfigMap", "extra")]
    selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_NAME}=catalog"
    assert resources["cm"].calls == [("catalog", selector)] and resources["forbidden"].calls
    assert not any(resources[k].calls for k in ("pod", "list", "old", "review", "ns", "crd"))
    adapter.inventory(replace(R, prune=Prune(kinds=["Namespace"])))
    assert resources["ns"].calls == [(None, selector)] and not resources["crd"].calls


def test_a_delete_the_region_refuses_pauses_the_region_and_does_not_roll_back() -> None:
    from strategies.errors import PermanentError

    class NoDelete(FakeCluster):
        def execute(self, rollout: RegionRollout, actions: Any, *, logger: Any = None) -> int:
            if any(isinstance(a, Delete) for a in actions):
                raise PermanentError('Forbidden (403): cannot delete configmaps "extra"', reason="Forbidden")
            return super().execute(rollout, actions, logger=logger)

    second = rollout("catalog")
    first = replace(second, release=with_extra(second.previous, configmap("extra", "catalog")), previous=None)
    second = replace(second, previous=first.release)
    cluster, clock = NoDelete(), Clock()
    kw: dict[str, Any] = {"clock": clock, "sleep": clock.sleep, "timeout": 3600}
    assert run_until_settled(cluster, first, **kw).phase is Phase.SUCCEEDED
    status = run_until_settled(cluster, second, **kw)
    assert status.phase is Phase.PAUSED and status.reason == "PruneFailed", status
    assert "Forbidden" in status.message and "promote" in status.message
    assert any(e.reason == "Forbidden" and e.type == "Warning" for e in cluster.events)
    assert run_until_settled(cluster, second, status, commands=lambda s: Commands(promote=True), **kw).phase is (
        Phase.SUCCEEDED
    )

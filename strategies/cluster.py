"""A region's cluster: reads that build the snapshot, and the executor of actions.

One class per outside system behind the small `Cluster` protocol. `KubernetesCluster` talks to a
real API server (kubeconfig path + context): server-side apply with the fixed field manager
`regional-rollout`, never forcing conflicts, after checking that no object the step writes belongs
to another app (`check_ownership`); Events on the workload; every API answer classified
into temporary (retried here with backoff) or permanent errors (raised for the caller to fail the
step with a reason).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import structlog

from config.identity import LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY
from config.times import format_time
from regions.analysis.model import Verdict
from strategies import hooks
from strategies.errors import Backoff, ClusterError, PermanentError, TemporaryError, Unreachable, classify
from strategies.manifests import Obj, ref_of
from strategies.model import (
    FIELD_MANAGER,
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
from strategies.region_cache import KindCache

T = TypeVar("T")
OWNED_BY_ANOTHER_APP = "OwnedByAnotherApp"
# Namespaces the controller creates: Pod Security admission enforces the default grant's level
# (config/grants.py, baseline) and warns/audits against restricted. An app granted `privileged`
# needs a namespace the operator creates and labels (docs/security.md).
NAMESPACE_POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}
log = structlog.get_logger("strategies.cluster")
ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
# the prune copies' watch requests (see `KubernetesCluster.census`): about 30 kinds per cluster, so one
# request per kind every 5 minutes at rest rather than every minute (bookmarks keep each resumable)
CENSUS_WATCH_SECONDS = 300
# kinds only controllers make from the app's objects (they copy its labels): never listed for pruning
NEVER_PRUNED = frozenset({"Pod", "ReplicaSet", "ControllerRevision", "Event", "Endpoints", "EndpointSlice", "Lease"})


class Cluster(Protocol):
    """What the strategies need from a region's cluster."""

    def observe(
        self, rollout: RegionRollout, *, analysis: Verdict | None = None, commands: Commands | None = None
    ) -> Snapshot: ...

    def execute(self, rollout: RegionRollout, actions: Sequence[Action], *, logger: Any = None) -> int:
        """Perform the actions in order; return the number of writes made (Events excluded)."""
        ...

    def inventory(self, rollout: RegionRollout) -> tuple[LiveObject, ...]:
        """The app's objects in the region (labels, annotations, owners): read by the prune step."""
        ...


def other_refs(rollout: RegionRollout) -> list[ObjectRef]:
    """Objects besides Deployments, Services and the HTTPRoute that either release renders."""
    refs: dict[ObjectRef, None] = {}
    for rendered in (rollout.release, rollout.previous):
        for obj in rendered.objects if rendered else ():
            if obj.get("kind") not in ("Deployment", "Service", "HTTPRoute"):
                refs[ref_of(obj)] = None
    refs.update(dict.fromkeys(hooks.refs(rollout)))  # the release's hook Jobs (strategies/hooks.py)
    return list(refs)


class KubernetesCluster:
    """A real region cluster, from a kubeconfig path and context."""

    def __init__(
        self,
        kubeconfig: str | None,
        context: str | None,
        *,
        backoff: Backoff | None = None,
        timeout: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        watch: bool = True,
    ):
        from kubernetes import client
        from kubernetes import config as kube_config  # not the project's config package

        self.context = context or ""
        self.api_client = kube_config.new_client_from_config(config_file=kubeconfig, context=context)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.sleep = sleep
        self._dynamic: Any = None
        self._namespaces: set[str] = set()
        self.writes = 0  # every write this adapter made (Events excluded): for tests and metrics
        # watch-fed copies of the kinds observe reads every pass (strategies/region_cache.py), by
        # kind: started the first time a release drives this cluster; off with watch=False
        self._watch = watch
        self._caches: dict[str, KindCache] = {}
        self._caches_lock = threading.Lock()
        # the prune step's listing from watches, by (group/version, kind): see `census`
        self._census: dict[tuple[str, str], KindCache] = {}
        self._census_started = False

    def caches(self) -> dict[str, KindCache]:
        """The kind caches, started on first use (reads fall back to the API until one is synced)."""
        if not self._watch:
            return {}
        with self._caches_lock:
            if not self._caches:
                lists: dict[str, tuple[str, Callable[..., Any], bool]] = {
                    "Deployment": ("apps/v1", self.apps.list_deployment_for_all_namespaces, True),
                    "Service": ("v1", self.core.list_service_for_all_namespaces, True),
                    # by name, labelled or not, as the GET it replaces
                    "HTTPRoute": (
                        f"{ROUTE_GROUP}/{ROUTE_VERSION}",
                        functools.partial(
                            self.custom.list_cluster_custom_object, ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL
                        ),
                        False,
                    ),
                }
                for kind, (api_version, list_fn, labelled) in lists.items():
                    cache = KindCache(list_fn, api_version, kind, cluster=self.context, labelled=labelled)
                    cache.start()
                    self._caches[kind] = cache
            return self._caches

    def census(self) -> dict[tuple[str, str], KindCache]:
        """The prune step's copies of the app kinds, started the first time a prune step lists in
        this cluster (with the region watches only): for every namespaced kind `inventory` lists,
        one list and then one watch of the whole cluster by the managed-by label, shared by every app,
        instead of one list per kind per app-region (about 30 calls each time). Metadata only (what
        the prune rules read: labels, annotations, owners, deletion), and whole objects for Jobs (a
        running one is kept). Deployments, Services and HTTPRoutes come from `caches`. A kind the
        cluster will not let us list or watch cluster-wide (403) is not retried: it is listed per
        app-region as before, as is every kind while its copy is not synced."""
        if not self._watch:
            return {}
        with self._caches_lock:
            if self._census_started:
                return self._census
        self._resource(ObjectRef("v1", "ConfigMap", None, "-"))  # the discovery client, once
        observed = {(c.store.api_version, c.store.kind) for c in self.caches().values()}
        with self._caches_lock:
            if not self._census_started:
                self._census_started = True
                for res in self._prunable(namespaced_only=True):
                    key = (str(res.group_version), str(res.kind))
                    if key in observed or "watch" not in (getattr(res, "verbs", None) or ()):
                        continue
                    cache = KindCache(
                        functools.partial(self._raw_list, str(res.path()), key[1] != "Job"),
                        key[0],
                        key[1],
                        cluster=self.context,
                        label_selector=f"{LABEL_MANAGED_BY}={MANAGED_BY}",
                        give_up_unserved=True,
                        watch_seconds=CENSUS_WATCH_SECONDS,
                        quiet=True,
                    )
                    cache.start()
                    self._census[key] = cache
            return self._census

    def _raw_list(self, path: str, metadata_only: bool, **params: Any) -> Any:
        """GET a kind's cluster-wide list or watch as raw JSON (the KindCache's list call), as object
        metadata only when `metadata_only` (no data of ConfigMaps or Secrets is read or held)."""
        from kubernetes.client.exceptions import ApiException

        as_list = "PartialObjectMetadata" if params.get("watch") else "PartialObjectMetadataList"
        accept = f"application/json;as={as_list};g=meta.k8s.io;v=v1,application/json" if metadata_only else None
        names = {
            "label_selector": "labelSelector",
            "watch": "watch",
            "resource_version": "resourceVersion",
            "timeout_seconds": "timeoutSeconds",
            "allow_watch_bookmarks": "allowWatchBookmarks",
        }
        query = [(names[k], str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if k in names]
        request = self.api_client.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": accept or "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(*request, _request_timeout=params.get("_request_timeout"))
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def close(self) -> None:
        """Stop the watches (a test's adapter; the controller's live as long as the process)."""
        for cache in [*self._caches.values(), *self._census.values()]:
            cache.stop()

    def _cached(self, ref: ObjectRef) -> KindCache | None:
        cache = self._caches.get(ref.kind)
        return cache if cache is not None and cache.store.api_version == ref.api_version else None

    # --- reads -----------------------------------------------------------------------------

    def observe(
        self, rollout: RegionRollout, *, analysis: Verdict | None = None, commands: Commands | None = None
    ) -> Snapshot:
        ns, app = rollout.namespace, rollout.app
        selector = f"{LABEL_NAME}={app}"
        objs: list[dict[str, Any]] = []
        caches = self.caches()
        lists: tuple[tuple[str, str, Callable[..., Any]], ...] = (
            ("apps/v1", "Deployment", self.apps.list_namespaced_deployment),
            ("v1", "Service", self.core.list_namespaced_service),
        )
        for api_version, kind, list_namespaced in lists:
            cached = caches[kind].of_app(ns, app) if caches else None
            if cached is None:  # not watched or not synced: the API
                listed: Any = self._call(
                    functools.partial(list_namespaced, ns, label_selector=selector, _request_timeout=self.timeout)
                )
                cached = [self._plain(item, api_version, kind) for item in listed.items]
            objs += cached
        known, route = caches["HTTPRoute"].lookup(ns, app) if caches else (False, None)
        if not known:
            found_route: object = self._get_or_none(
                lambda: self.custom.get_namespaced_custom_object(
                    ROUTE_GROUP, ROUTE_VERSION, ns, ROUTE_PLURAL, app, _request_timeout=self.timeout
                )
            )
            route = found_route if isinstance(found_route, dict) else None
        if isinstance(route, dict):
            objs.append(route)
        for ref in other_refs(rollout):
            found = self._read(ref)
            if found is not None:
                objs.append(found)
        return snapshot(objs, analysis=analysis, commands=commands)

    def inventory(self, rollout: RegionRollout) -> tuple[LiveObject, ...]:
        """The app's objects in the region, for the prune step only (one list per kind is too dear
        for every pass): every namespaced kind the API server serves that can be listed and deleted,
        listed by the app's labels in its namespace, and the cluster-scoped kinds the plan lets
        pruning delete. Kinds only controllers make (Pods, ReplicaSets, Events...) are skipped; a kind
        the controller may not list is skipped with a warning (it cannot delete it either)."""
        selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_NAME}={rollout.app}"
        self._resource(ObjectRef("v1", "ConfigMap", None, "-"))  # the discovery client, once
        copies: dict[tuple[str, str], KindCache] = {}
        if self._watch:  # observe's copies, then the census'
            copies = {(c.store.api_version, c.store.kind): c for c in list(self._caches.values())}
            copies.update(self.census())
        out: list[LiveObject] = []
        listed_kinds, from_watch, skipped = 0, 0, []
        for res in self._prunable(namespaced_only=False, cluster_kinds=rollout.prune.kinds):
            kind = str(res.kind)
            namespace = rollout.namespace if res.namespaced else None
            shared = copies.get((str(res.group_version), kind)) if res.namespaced else None
            held = shared.of_app(rollout.namespace, rollout.app) if shared is not None else None
            if held is not None:  # the shared copy, synced: what the list by the selector would return
                out += [live_object(o) for o in held if _labels(o).get(LABEL_MANAGED_BY) == MANAGED_BY]
                from_watch += 1
                continue
            try:
                listed = self._list(res, namespace, selector)
                listed_kinds += 1
            except PermanentError as exc:
                skipped.append(f"{kind}.{res.group_version} ({exc.reason})")
                continue
            for item in listed.get("items") or []:
                item.setdefault("apiVersion", res.group_version)
                item.setdefault("kind", kind)
                out.append(live_object(item))
        log.info(
            "prune: listed the app's objects",
            app=rollout.app,
            kinds=listed_kinds,
            kinds_from_watches=from_watch,
            objects=len(out),
        )
        if skipped:  # one line for all: a least-privilege deployer may list only a few kinds
            log.warning("prune: kinds not listed, their objects are not pruned", app=rollout.app, kinds=skipped)
        return tuple(out)

    def _prunable(self, *, namespaced_only: bool, cluster_kinds: Sequence[str] = ()) -> list[Any]:
        """The kinds the prune step lists (discovery, cached by the client): preferred versions that
        can be listed and deleted, not made only by controllers; cluster-scoped ones only when
        named in `cluster_kinds` (the plan's prune.kinds)."""
        out = []
        for res in self._dynamic.resources.search():
            verbs = getattr(res, "verbs", None) or ()
            kind = str(getattr(res, "kind", ""))
            if not getattr(res, "preferred", False) or "list" not in verbs or "delete" not in verbs:
                continue
            if kind in NEVER_PRUNED or (not res.namespaced and (namespaced_only or kind not in cluster_kinds)):
                continue
            if getattr(res, "base_kind", None):  # discovery's `<Kind>List` entries: the kind itself is listed
                continue
            out.append(res)
        return out

    def _read(self, ref: ObjectRef) -> Any:
        """The live object `ref` names, as plain JSON, or None when it does not exist."""
        return self._get_or_none(
            lambda: (
                self._resource(ref).get(name=ref.name, namespace=ref.namespace, _request_timeout=self.timeout).to_dict()
            )
        )

    def _list(self, resource: Any, namespace: str | None, selector: str) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            found: dict[str, Any] = resource.get(
                namespace=namespace, label_selector=selector, _request_timeout=self.timeout
            ).to_dict()
            return found

        return self._call(call)

    # --- writes ----------------------------------------------------------------------------

    def execute(self, rollout: RegionRollout, actions: Sequence[Action], *, logger: Any = None) -> int:
        logger = logger or log.bind(app=rollout.app, region=rollout.region, release=rollout.release_number)
        self.check_ownership(rollout.app, actions)  # before the first write: nothing half-applied
        writes = 0
        for action in actions:
            if isinstance(action, Apply | SetWeights):
                for obj in action.objects:
                    self.apply(obj)
                    writes += 1
                what = f"weight {action.weight}%" if isinstance(action, SetWeights) else action.reason
                logger.info(
                    "applied",
                    action=type(action).__name__,
                    detail=what,
                    objects=[str(ref_of(o)) for o in action.objects],
                )
            elif isinstance(action, Scale):
                self.apply(action.object)
                writes += 1
                logger.info("scaled", deployment=action.name, replicas=action.replicas)
            elif isinstance(action, Delete):
                self.delete(action.ref, action.propagation)
                writes += 1
                logger.info("deleted", object=str(action.ref))
            elif isinstance(action, Event):
                self.event(rollout.namespace, action)
                logger.info("event", reason=action.reason, message=action.message, type=action.type)
        return writes

    def apply(self, obj: Obj) -> None:
        """Server-side apply as `regional-rollout`; a conflict with another manager raises ApplyConflict."""
        ref = ref_of(obj)
        if ref.namespace:
            self.ensure_namespace(ref.namespace)
        body = json.loads(json.dumps(obj))
        applied = self._call(
            lambda: self._resource(ref).server_side_apply(
                body=body,
                name=ref.name,
                namespace=ref.namespace,
                field_manager=FIELD_MANAGER,
                force_conflicts=False,
                _request_timeout=self.timeout,
            )
        )
        self.writes += 1
        for cache in (self._cached(ref), self._census.get((ref.api_version, ref.kind))):
            if cache is not None and applied is not None:  # read-your-writes: never decide from the copy before
                cache.store.upsert(applied.to_dict() if hasattr(applied, "to_dict") else dict(applied))

    def check_ownership(self, app: str, actions: Sequence[Action]) -> None:
        """Raise OwnedByAnotherApp when any object the actions would change or delete carries
        another app's name label: an app never changes or deletes another app's objects."""
        for ref in action_targets(actions):
            cache = self._cached(ref)
            known, live = cache.lookup(ref.namespace or "", ref.name) if cache is not None else (False, None)
            if not known:
                live = self._read(ref)
            problem = owner_problem(app, ref, ((live or {}).get("metadata") or {}).get("labels") or {})
            if problem:
                raise PermanentError(problem, reason=OWNED_BY_ANOTHER_APP)

    def delete(self, ref: ObjectRef, propagation: str | None = None) -> None:
        """Delete `ref` (gone already is fine); `propagation`: Background, Foreground, Orphan or the
        server's default (None) for what the object owns (a Job's Pods)."""
        self._get_or_none(
            lambda: self._resource(ref).delete(
                name=ref.name, namespace=ref.namespace, propagation_policy=propagation, _request_timeout=self.timeout
            )
        )
        self.writes += 1
        for cache in (self._cached(ref), self._census.get((ref.api_version, ref.kind))):
            if cache is not None:
                cache.store.forget(ref.namespace or "", ref.name)

    def event(self, namespace: str, action: Event) -> None:
        now = datetime.now(UTC)
        body: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{action.deployment}.",
                "namespace": namespace,
                "labels": {LABEL_MANAGED_BY: MANAGED_BY},
            },
            "involvedObject": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": action.deployment,
                "namespace": namespace,
            },
            "reason": action.reason,
            "message": action.message[:1024],
            "type": action.type,
            "source": {"component": MANAGED_BY},
            "reportingComponent": MANAGED_BY,
            "reportingInstance": self.context or MANAGED_BY,
            "action": action.reason,
            "firstTimestamp": format_time(now),
            "lastTimestamp": format_time(now),
            "count": 1,
        }
        try:
            self._call(lambda: self.core.create_namespaced_event(namespace, body, _request_timeout=self.timeout))
        except ClusterError as exc:  # an Event is a courtesy: never fail a step for it
            log.warning("event not recorded", reason=action.reason, error=str(exc))

    def ensure_namespace(self, namespace: str) -> None:
        if namespace in self._namespaces:
            return
        found = self._get_or_none(lambda: self.core.read_namespace(namespace, _request_timeout=self.timeout))
        if found is None:
            body = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {LABEL_MANAGED_BY: MANAGED_BY, **NAMESPACE_POD_SECURITY}},
            }
            resource = self._resource(ObjectRef("v1", "Namespace", None, namespace))
            self._call(
                lambda: resource.server_side_apply(
                    body=body,
                    name=namespace,
                    field_manager=FIELD_MANAGER,
                    force_conflicts=False,
                    _request_timeout=self.timeout,
                )
            )
            self.writes += 1
        self._namespaces.add(namespace)

    # --- plumbing --------------------------------------------------------------------------

    def _resource(self, ref: ObjectRef) -> Any:
        if self._dynamic is None:
            from kubernetes.dynamic import DynamicClient

            self._dynamic = self._call(lambda: DynamicClient(self.api_client))
        return self._dynamic.resources.get(api_version=ref.api_version, kind=ref.kind)

    def _plain(self, model: Any, api_version: str, kind: str) -> dict[str, Any]:
        out: dict[str, Any] = self.api_client.sanitize_for_serialization(model)
        out.setdefault("apiVersion", api_version)
        out.setdefault("kind", kind)
        return out

    def _get_or_none(self, fn: Callable[[], T]) -> T | None:
        try:
            return self._call(fn)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one API call; retry temporary errors with backoff, raise permanent ones typed."""
        retry = 0
        while True:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - every client error is classified here
                error = to_cluster_error(exc)
                if not isinstance(error, TemporaryError) or retry + 1 >= self.backoff.attempts:
                    raise error from exc
                delay = self.backoff.delay(retry)
                log.warning("temporary cluster error, retrying", error=str(error), delay=round(delay, 2))
                self.sleep(delay)
                retry += 1


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def action_targets(actions: Sequence[Action]) -> list[ObjectRef]:
    """Every object the actions write to (Events excluded), once each, in order."""
    refs: dict[ObjectRef, None] = {}
    for action in actions:
        if isinstance(action, Apply | SetWeights):
            refs.update((ref_of(o), None) for o in action.objects)
        elif isinstance(action, Scale) and action.object:
            refs[ref_of(action.object)] = None
        elif isinstance(action, Delete):
            refs[action.ref] = None
    return list(refs)


def owner_problem(app: str, ref: ObjectRef, live_labels: Mapping[str, str]) -> str | None:
    """Why `app` may not write the live object `ref`, or None. The owner is the app named by the
    object's app.kubernetes.io/name label, which render stamps on every object (an author cannot
    choose it); objects without it are left to server-side apply's conflict detection."""
    owner = live_labels.get(LABEL_NAME)
    if owner is None or owner == app:
        return None
    return (
        f"{ref} belongs to app {owner!r} (label {LABEL_NAME}={owner}); app {app!r} may not change or "
        f"delete it. Fix: rename the object in app {app!r}'s manifests, or remove it from app {owner!r} first"
    )


def to_cluster_error(exc: BaseException) -> ClusterError:
    if isinstance(exc, ClusterError):
        return exc
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    if isinstance(status, int) and status > 0:
        reason, message, causes = "", str(exc), ()
        try:
            data = json.loads(body) if isinstance(body, str | bytes) else (body or {})
            reason, message = data.get("reason", ""), data.get("message", message)
            causes = tuple((data.get("details") or {}).get("causes") or ())
        except (ValueError, AttributeError):
            pass
        return classify(status, reason, message, causes=causes)
    name = type(exc).__name__
    if name in (
        "MaxRetryError",
        "NewConnectionError",
        "ConnectionError",
        "ProtocolError",
        "SSLError",
        "ConnectionRefusedError",
    ) or isinstance(exc, ConnectionError | OSError):
        return Unreachable(f"API server unreachable: {name}: {exc}")
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return TemporaryError(f"timed out: {exc}")
    return PermanentError(f"{name}: {exc}", reason="ClientError")

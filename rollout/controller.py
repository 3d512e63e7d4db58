"""`rollout controller`: the daemon. Wires Git sync, the release reconciler, responders' actions,
leader election and the HTTP endpoints together; decides nothing itself."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections import defaultdict
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
import urllib3
from apscheduler.schedulers.background import BackgroundScheduler
from kubernetes import client
from kubernetes import config as kube_config  # not the project's config package
from kubernetes.client.exceptions import ApiException

from config.freezes import Freeze
from config.times import format_time
from regions.analysis import PrometheusProvider
from regions.analysis.rate import DEFAULT_DRAIN_QUERY
from regions.traffic import DNSEndpointTraffic
from rollout import actions, metrics, notify
from rollout.cache import ReleaseIndex, WatchCache
from rollout.drill import RUNNING, DrillRunner
from rollout.failures import Retries
from rollout.gitsync import Credentials, GitMirror, HostKeyChecking, Secret, SizeCaps
from rollout.gitsync.push import GitPusher
from rollout.http import Endpoints
from rollout.leader import LeaderElector
from rollout.notify import Destinations, Dispatcher, KubernetesEvents, SigningKeys
from rollout.orchestrator import Request
from rollout.reconciler import ACTIVE, ClusterPool, ReleaseReconciler
from rollout.release import ReleasePhase
from rollout.revert import RevertWriter, pending
from rollout.shards import Fence, ShardLeases, shard_of
from rollout.store import ACTIONS, GROUP, RELEASES, VERSION, ReleaseStore, StoredRelease, as_object
from rollout.sync import SOURCES, GitSync
from rollout.throttle import throttled
from rollout.workers import AppPool, pool_size, sized
from rollout.workspace import Workspace, needed_commits

log = structlog.get_logger("rollout.controller")
# How often checked-out trees no live release needs are removed (rollout/workspace.py).
TREE_COLLECT_INTERVAL = timedelta(seconds=60)


@dataclass
class Settings:
    repo_url: str
    ref: str = "HEAD"
    kubeconfig: str | None = None
    regions_kubeconfig: str | None = None  # default: kubeconfig, then $KUBECONFIG
    home_context: str | None = None
    namespace: str = "rollout-system"
    source_name: str = "default"
    cache_dir: Path = Path("/tmp/rollout-cache")
    poll_seconds: float = 30.0
    tick_seconds: float = 1.0
    prometheus_url: str | None = None
    http_host: str = "127.0.0.1"  # probes and /metrics; the Deployment binds the pod IP
    http_port: int = 8080
    webhook_host: str | None = None  # default: http_host
    webhook_port: int | None = None  # default: the webhook shares the probes listener
    notify_allow: list[str] = field(default_factory=list)  # URL prefixes notifications may go to
    notify_keys: list[str] = field(default_factory=list)  # APP=FILE: the key signing APP's notifications
    notify_queue: int = 100
    notify_timeout_seconds: float = 10.0
    webhook_secret_env: str = "ROLLOUT_WEBHOOK_SECRET"
    git_token_env: str = "ROLLOUT_GIT_TOKEN"
    git_ssh_key: str | None = None
    # Secrets as files (a mounted Secret) take precedence over the environment variables above.
    webhook_secret_file: str | None = None
    git_token_file: str | None = None
    git_known_hosts: str | None = None  # known_hosts for ssh remotes (a mounted ConfigMap)
    git_host_key_checking: str = "yes"
    allow_insecure_git: bool = False  # http:// and git:// remotes (clear text): a lab only
    git_max_file_mib: int = 10  # size caps (rollout/gitsync/pure.py SizeCaps)
    git_max_commit_mib: int = 128
    git_max_repository_mib: int = 512
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    lease_seconds: int = 15
    renew_seconds: int = 10
    retry_seconds: int = 2
    shards: int = 1  # 1: one Lease (rollout-controller) for every app; S > 1: rollout/shards.py
    workers: int = 8  # reconciles of different apps at once (rollout/workers.py); 1: one after another
    kube_api_qps: float = 50.0  # client-side request rate per cluster (rollout/throttle.py); 0: none
    kube_api_burst: int = 100
    drain_query: str = DEFAULT_DRAIN_QUERY
    analysis_window_seconds: float | None = None
    # one watch per kind per region cluster for the reads of every pass (strategies/region_cache.py):
    # only with the opt-in cluster-wide read grant; the deployer is bound per namespace by default
    region_watches: bool = False
    regions_hint: list[str] = field(default_factory=list)


class SecretFileError(Exception):
    """A secret file the operator named exists but cannot be read: refuse to start."""


def read_secret(path: str | None, env: str | None) -> str | None:
    """A secret from its file (a mounted Secret, what the manifests use) or, without a file flag,
    from an environment variable (compatibility). A missing file is an absent optional Secret:
    no secret. Surrounding whitespace (the trailing newline of `echo >`) is not part of it."""
    if path:
        try:
            value = Path(path).read_text().strip()
        except FileNotFoundError:
            log.info("secret file absent; none used", path=path)
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretFileError(
                f"cannot read the secret file {path}: {exc}; mount it readable by the controller's "
                "user or group (Secret volume defaultMode 0440 with the pod's fsGroup)"
            ) from None
        return value or None
    return (os.environ.get(env) if env else None) or None


class Controller:
    shard_leases: ShardLeases | None = None  # set with --shards > 1
    _followed: str | None = None  # the last good commit this replica validated (shards > 1)
    _pool = AppPool(1)  # replaced in __init__ by one of `--workers` threads
    _terminating = False  # SIGTERM received (shards: hand them back before exiting)

    def __init__(self, settings: Settings):
        self.s = settings
        home = sized(
            kube_config.new_client_from_config(config_file=settings.kubeconfig, context=settings.home_context)
            if settings.kubeconfig or settings.home_context
            else _in_cluster_client(),
            pool_size(settings.workers),
        )
        self.home = metrics.instrument(throttled(home, "home", settings.kube_api_qps, settings.kube_api_burst), "home")
        self.elector = LeaderElector(
            self.home,
            settings.namespace,
            "rollout-controller",
            settings.identity,
            settings.lease_seconds,
            settings.renew_seconds,
            settings.retry_seconds,
        )
        # Who may write for which app: with one shard the leader for all (today's single Lease);
        # with S shards the holder of the app's shard Lease (rollout/shards.py).
        if settings.shards > 1:
            self.shard_leases = ShardLeases(
                self.home,
                settings.namespace,
                settings.identity,
                settings.shards,
                settings.lease_seconds,
                settings.renew_seconds,
                settings.retry_seconds,
            )
            self.fence = Fence(settings.identity, self.shard_leases.fresh, self.shard_leases.held)
        else:
            self.fence = Fence(settings.identity, lambda _shard: self.elector.is_leader(), lambda: [0])
        token = read_secret(settings.git_token_file, settings.git_token_env)
        creds = Credentials(
            token=Secret(token) if token else None,
            ssh_key_file=Path(settings.git_ssh_key) if settings.git_ssh_key else None,
            known_hosts_file=Path(settings.git_known_hosts).resolve() if settings.git_known_hosts else None,
            strict_host_key_checking=HostKeyChecking(settings.git_host_key_checking),
        )
        self.mirror = GitMirror(
            settings.repo_url,
            settings.cache_dir / "git",
            ref=settings.ref,
            credentials=creds,
            allow_insecure=settings.allow_insecure_git,
            caps=SizeCaps(
                file_bytes=settings.git_max_file_mib << 20,
                tree_bytes=settings.git_max_commit_mib << 20,
                repository_bytes=settings.git_max_repository_mib << 20,
            ),
        )
        self.workspace = Workspace(self.mirror, settings.cache_dir)
        self.store = ReleaseStore(self.home, settings.namespace)
        self.store.acted_by = self.fence.stamp  # status.actedBy: the replica and shard of each write
        self.wake = threading.Event()
        self.releases = WatchCache(self.home, GROUP, VERSION, settings.namespace, RELEASES, self.wake.set)
        self.actions = WatchCache(self.home, GROUP, VERSION, settings.namespace, ACTIONS, self.wake.set)
        self.store.read_from(self.releases)  # Git polls list the fleet from memory, not the API
        self.index = ReleaseIndex(self.releases, ACTIVE)
        self._pending: tuple[int, list[dict[str, Any]]] = (-1, [])  # (actions cache version, not yet handled)
        self.sync = GitSync(
            self.mirror, self.workspace, self.store, self.home, settings.source_name, self.fence.may_write
        )  # the Git intake acts for shard 0: with one shard, the leader
        key = read_secret(settings.webhook_secret_file, settings.webhook_secret_env)
        self.http = Endpoints(
            settings.http_host,
            settings.http_port,
            key.encode() if key else None,
            self._push_received,
            self._ready,
            webhook_host=settings.webhook_host,
            webhook_port=settings.webhook_port,
        )
        own_secrets = [key.encode() if key else None, token.encode() if token else None]
        if settings.git_ssh_key and Path(settings.git_ssh_key).is_file():
            own_secrets.append(Path(settings.git_ssh_key).read_bytes().strip())
        self.notifications = Dispatcher(
            Destinations.parse(settings.notify_allow),
            SigningKeys.parse(settings.notify_keys, own_secrets),
            settings.notify_queue,
            settings.notify_timeout_seconds,
        )
        self._custom = client.CustomObjectsApi(self.home)
        self._events = KubernetesEvents(self.home, settings.namespace)
        # rollback.revertCommit: the revert is pushed with the credentials the mirror fetches with
        pusher = GitPusher(
            settings.repo_url,
            settings.cache_dir / "git-push",
            objects_from=self.mirror.path,
            credentials=creds,
            allow_insecure=settings.allow_insecure_git,
        )
        self._reverts = RevertWriter(pusher, self.workspace, self.store, [self._events], settings.ref)
        self._reconciler: ReleaseReconciler | None = None
        self._drills: DrillRunner | None = None
        self._git_freezes: tuple[Freeze, ...] = ()  # freezes.yaml as last read
        self._retries = Retries()  # backoff of releases whose last reconcile failed (transiently)
        self._pool = AppPool(settings.workers)  # one reconcile per app at a time, `workers` apps at once
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._next_tree_collect = datetime.min.replace(tzinfo=UTC)

    # --- lifecycle -----------------------------------------------------------------------------

    def run(self) -> None:
        self.http.start()
        notify.install(self.notifications.start())
        if not self.http.separate:
            log.warning(
                "the push webhook shares the probes and /metrics listener; pass --webhook-port to separate them",
                host=self.s.http_host,
            )
        log.info("controller starting", identity=self.s.identity, source=self.mirror.remote, http_port=self.http.port)
        if self.shard_leases is not None:  # every replica works, on the shards it holds
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, self._terminated)
            self.shard_leases.start()
            self._lead()
            if self._terminating:  # a graceful stop: the others take this replica's shards now
                self.shard_leases.leave()
                self._pool.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)  # noqa: SLF001 - library threads (scheduler, watches) must not delay the stop
            return
        self.elector.run(self._lead)
        log.warning("leadership lost; exiting so a fresh process campaigns again")
        os._exit(1)  # noqa: SLF001 - the library's thread holds state we cannot trust any more

    def _terminated(self, _signum: int, _frame: object) -> None:
        """SIGTERM with shards: end the loop after the pass in progress (within a tick), then hand
        the shards back (`ShardLeases.leave`). Only a flag and an Event that only other threads wait
        on are touched here: a signal handler must not take a lock its own thread may hold."""
        if self._terminating or self.shard_leases is None:
            return
        self._terminating = True
        self.shard_leases.stopped.set()

    def _ready(self) -> bool:
        return True  # followers are ready too: they stand by to take over

    def _push_received(self) -> bool:
        """A verified push: the leader syncs now (coalesced); a follower says no so the sender retries."""
        if not self.fence.fresh(0):
            return False
        self._scheduler.add_job(self.sync.run_once, id="push-sync", replace_existing=True)
        return True

    def _lead(self) -> None:
        self._ensure_source()
        self.releases.start()
        self.actions.start()
        self.releases.synced.wait(30)
        self._reconciler = self._build_reconciler()
        self._scheduler.add_job(
            self.sync.run_once if self.shard_leases is None else self._poll,
            "interval",
            seconds=self.s.poll_seconds,
            id="poll",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.start()
        lost = self.elector.lost if self.shard_leases is None else self.shard_leases.stopped
        while not lost.is_set():
            self.wake.clear()
            if self.fence.held():
                self.reconcile_all(datetime.now(UTC))
            self.wake.wait(self.s.tick_seconds)

    def _build_reconciler(self) -> ReleaseReconciler:
        prom = PrometheusProvider(self.s.prometheus_url) if self.s.prometheus_url else None
        regions = self.s.regions_hint or self._regions_from_git()
        traffic = DNSEndpointTraffic(self.home, regions, self.s.namespace)
        sinks = [KubernetesEvents(self.home, self.s.namespace)]
        window = timedelta(seconds=self.s.analysis_window_seconds) if self.s.analysis_window_seconds else None
        clusters = ClusterPool(
            self.s.regions_kubeconfig or self.s.kubeconfig,
            pool_size(self.s.workers),
            watch=self.s.region_watches,
            limit=(self.s.kube_api_qps, self.s.kube_api_burst),
        )
        return ReleaseReconciler(
            self.workspace,
            self.store,
            clusters,
            traffic,
            prom,
            sinks,
            self.fence.may_write,
            self.s.drain_query,
            window,
        )

    def _regions_from_git(self) -> list[str]:
        try:
            self.mirror.sync()
            return sorted(self.workspace.repository(self.mirror.resolve("HEAD")).regions)
        except Exception as exc:  # noqa: BLE001 - an invalid or unreachable repo: regions come later
            log.warning("regions not known yet", error=str(exc))
            return []

    def _poll(self) -> None:
        """With shards: the holder of shard 0 does the Git intake (creates Releases, writes the
        RolloutSource status); every other replica fetches and validates the same commits itself, so
        freezes.yaml and the names responders' actions refer to are known on every replica."""
        if self.fence.fresh(0):
            self.sync.run_once()
            self._followed = self.sync.last_status.get("lastGoodCommit") or self._followed
            return
        try:
            commit = self.mirror.sync().commit
            self.workspace.repository(commit)  # valid: it is the last good commit
            self._followed = commit
        except Exception as exc:  # noqa: BLE001 - Git or an invalid commit: keep the last good one
            log.info("git not followed this poll; keeping the last good commit", error=str(exc)[:200])

    def _good_commit(self) -> str | None:
        if self.shard_leases is None:
            return self.sync.last_status.get("lastGoodCommit")
        return self._followed

    def _shard(self, app: str) -> int:
        return shard_of(app, self.s.shards)

    def _acting(self, app: str | None) -> AbstractContextManager[None]:
        """With shards, what runs inside is fenced by the app's shard Lease (fleet-wide work: shard 0);
        with one shard, by the leader's Lease as always."""
        if self.shard_leases is None:
            return contextlib.nullcontext()
        return self.fence.acting(self._shard(app) if app else 0)

    def _may_act(self, app: str | None) -> bool:
        return self.shard_leases is None or self.fence.fresh(self._shard(app) if app else 0)

    def _ensure_source(self) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "RolloutSource",
            "metadata": {"name": self.s.source_name, "namespace": self.s.namespace},
            "spec": {"url": self.mirror.remote, "ref": self.s.ref, "pollSeconds": self.s.poll_seconds},
        }
        self._custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.s.namespace,
            SOURCES,
            self.s.source_name,
            body,
            field_manager="regional-rollout",
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    # --- reconcile -----------------------------------------------------------------------------

    def reconcile_all(self, now: datetime) -> None:
        assert self._reconciler is not None
        if self.index.refresh():  # nothing changed since the last pass: no work per idle release
            _export_gauges(self.index.by_app)
            self._retries.forget(set(self.index.app_of))
        by_app = self.index.by_app
        if self._pending[0] != self.actions.version:
            version = self.actions.version
            self._pending = (
                version,
                [
                    a
                    for a in self.actions.items()  # a running drill is advanced on every pass
                    if (a.get("status") or {}).get("state") in (None, "", RUNNING)
                ],
            )
        requests = self._route_actions(self._pending[1], by_app, now)
        self._reconciler.freezes = self._freezes(now)
        # release groups: dependencies read from the index, a snapshot (workers sort their app's list)
        self._reconciler.releases_by_app = {app: tuple(rs) for app, rs in by_app.items()}
        moving = self.index.live | {self.index.app_of[n] for n in requests if n in self.index.app_of}
        if self.shard_leases is not None:  # only the apps of the shards this replica holds
            held = set(self.fence.held())
            moving = frozenset(app for app in moving if self._shard(app) in held)
        self._reconcile_releases({app: by_app[app] for app in moving}, requests, now)
        self._write_back(by_app, now)
        self._collect_trees(by_app, now)

    def _reconcile_releases(
        self,
        by_app: dict[str, list[StoredRelease]],
        requests: dict[str, list[tuple[Request, dict[str, Any]]]],
        now: datetime,
    ) -> None:
        """Each active release (or one a responder acts on) reconciled in its own error boundary; a
        release that failed (transiently: permanent errors fail it inside `reconcile`) waits out its
        backoff, with one log line per attempt. Different apps run in parallel on the worker pool
        (`--workers`; each worker fences its writes by its app's shard, thread by thread); the pass
        waits for all of them."""
        assert self._reconciler is not None

        def one(app: str) -> None:
            with self._acting(app):  # every write of this app fenced by its shard's Lease
                self._reconcile_app(app, by_app[app], requests, now)

        self._pool.run(by_app, one)

    def _reconcile_app(
        self,
        app: str,
        releases: list[StoredRelease],
        requests: dict[str, list[tuple[Request, dict[str, Any]]]],
        now: datetime,
    ) -> None:
        assert self._reconciler is not None
        if not self._may_act(app):
            return  # the shard's Lease lapsed or moved during the pass: this replica writes nothing more
        releases.sort(key=lambda r: (r.created, r.name))
        for release in releases:
            mine = requests.get(release.name, [])
            if ReleasePhase(release.status.phase) not in ACTIVE and not mine:
                continue
            if not mine and not self._retries.due(release.name, now):
                continue  # failed a moment ago: tried again after its backoff (a responder's action: now)
            try:
                updated = self._reconciler.reconcile(release, releases, [r for r, _ in mine], now)
            except Exception as exc:  # noqa: BLE001 - one release's failure must not stop the others
                # transient (permanent ones fail the release inside reconcile): one line per attempt
                delay = self._retries.failed(release.name, now)
                error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("reconcile failed; will retry", release=release.name, error=error, retry_in=round(delay, 1))
                continue
            self._retries.succeeded(release.name)
            if updated is not release:
                self.releases.put(_as_object(updated))
            for _, action in mine:
                note = actions.approval_outcome(action, updated.status, now)  # approve/refuse: counted or why not
                self._finish_action(
                    action, "Done", f"{note}; applied to {release.name}" if note else f"applied to {release.name}", now
                )

    def _write_back(self, by_app: dict[str, list[StoredRelease]], now: datetime) -> None:
        """Reverts pending after rollbacks (rollout/revert.py), each in its own error boundary, by the
        replica holding the app's shard (one pusher per app)."""
        for app, releases in by_app.items():
            due = [r for r in releases if pending(r, now)]
            if not due:
                continue
            with self._acting(app):
                if not self._may_act(app):
                    continue
                for release in due:
                    try:
                        updated = self._reverts.run(release, now)
                    except Exception as exc:  # noqa: BLE001 - a revert never stops the controller; tried again
                        error = f"{type(exc).__name__}: {exc}"[:300]
                        log.warning("revert attempt failed", release=release.name, error=error)
                        continue
                    if updated is not release:
                        self.releases.put(_as_object(updated))

    def _collect_trees(self, by_app: dict[str, list[StoredRelease]], now: datetime) -> None:
        """Now and then, remove the checked-out trees that no live release needs (disk bound)."""
        if now < self._next_tree_collect:
            return
        self._next_tree_collect = now + TREE_COLLECT_INTERVAL
        try:
            last_good = self._good_commit() or self.mirror.last_good
            self.workspace.retain(needed_commits((r for rs in by_app.values() for r in rs), last_good))
        except Exception as exc:  # noqa: BLE001 - housekeeping: never stops reconciles
            log.warning("trees not collected", error=f"{type(exc).__name__}: {exc}"[:300])

    def _route_actions(
        self, pending: list[dict[str, Any]], by_app: dict[str, list[StoredRelease]], now: datetime
    ) -> dict[str, list[tuple[Request, dict[str, Any]]]]:
        """Each responder's action checked (rollout/actions.py) and handled in its own error boundary:
        a malformed one ends Rejected with its reason, an unexpected error Failed; neither can stop
        the pass, and a transient API error leaves the action pending for the next one."""
        routed: dict[str, list[tuple[Request, dict[str, Any]]]] = defaultdict(list)
        if not pending:
            return routed  # the names known (every release of the fleet) are gathered only for an action
        known = self._known(by_app)
        for action in sorted(pending, key=_created):
            # an app's action by the holder of the app's shard; fleet-wide ones by shard 0's holder
            app = str((action.get("spec") or {}).get("app") or "")
            if not self._may_act(app):
                continue
            try:
                with self._acting(app):
                    self._route_action(action, known, by_app, routed, now)
            except Exception as exc:  # noqa: BLE001 - nothing a responder creates may stop the controller
                if _transient(exc):
                    log.warning(
                        "action deferred: transient error",
                        action=_action_name(action),
                        error=f"{type(exc).__name__}: {exc}"[:300],
                    )
                    continue
                log.exception("action failed", action=_action_name(action))
                self._finish_action(
                    action,
                    "Failed",
                    f"the controller could not carry it out ({type(exc).__name__}: {str(exc)[:200]}); see its log",
                    now,
                    warning=True,
                )
        return routed

    def _route_action(
        self,
        action: dict[str, Any],
        known: actions.Known,
        by_app: dict[str, list[StoredRelease]],
        routed: dict[str, list[tuple[Request, dict[str, Any]]]],
        now: datetime,
    ) -> None:
        checked = actions.check(action, known)
        if isinstance(checked, actions.Rejected):
            if checked.unknown_name and not known.complete:
                log.info("action waits for the first sync to know its names", action=_action_name(action))
                return
            self._finish_action(action, "Rejected", checked.reason, now, warning=True)
            return
        spec = action["spec"]
        if checked.action == actions.DRILL:
            assert self._reconciler is not None  # built when leading, before any action is routed
            self._drills = self._drills or DrillRunner(
                self._reconciler, self.home, self.s.namespace, self.actions.items
            )
            if (written := self._drills.tick(action, by_app.get(spec.get("app", ""), []), now)) is not None:
                self.actions.put(written)
            return
        if checked.action in actions.GLOBAL_ACTIONS:
            self._global_action(action, checked, now)
            return
        if checked.action in actions.FREEZE_ACTIONS:  # the action, once Done, is the freeze's record
            if checked.until is not None and checked.until <= now:
                self._finish_action(action, "Rejected", "spec.until is in the past; give a later time", now, True)
                return
            note = actions.freeze_note(checked, actions.runtime_freezes(self.actions.items(), now))
            self._finish_action(action, "Done", note, now)
            return
        chosen = actions.target(checked, by_app.get(checked.app or "", []))  # the release actually live
        if chosen.release is None:
            self._finish_action(action, "Rejected", chosen.note, now, warning=True)
            return
        log.info(
            "action routed", action=_action_name(action), kind=checked.action, release=chosen.release, why=chosen.note
        )
        routed[chosen.release].append((checked.request(), action))

    def _known(self, by_app: dict[str, list[StoredRelease]]) -> actions.Known:
        """Apps and regions of the last good commit, plus those of the Releases in the cluster."""
        apps = set(by_app)
        regions = set(self.s.regions_hint)
        releases: dict[str, str] = {}
        for app, stored in by_app.items():
            for release in stored:
                releases[release.name] = app
                regions.update(r for wave in release.spec.waves for r in wave.regions)
        commit = self._good_commit()
        if commit:
            try:
                repo = self.workspace.repository(commit)
                apps.update(repo.apps)
                regions.update(repo.regions)
            except Exception as exc:  # noqa: BLE001 - the releases' own names still stand
                log.warning("repository not loaded for action checks", commit=commit[:12], error=str(exc)[:200])
        complete = bool(self.sync.last_status) or self._followed is not None
        return actions.Known(frozenset(apps), frozenset(regions), releases, complete=complete)

    def _freezes(self, now: datetime) -> tuple[Freeze, ...]:
        """Responders' run-time freezes and freezes.yaml at the last good commit (kept from the last
        read while the repository cannot be loaded: a freeze is not dropped by a Git outage)."""
        commit = self._good_commit()
        if commit:
            try:
                self._git_freezes = self.workspace.repository(commit).freezes
            except Exception as exc:  # noqa: BLE001 - keep the freezes read last
                log.warning("freezes.yaml not read; keeping the last", commit=commit[:12], error=str(exc)[:200])
        return tuple(actions.runtime_freezes(self.actions.items(), now)) + self._git_freezes

    def _global_action(self, action: dict[str, Any], checked: actions.Checked, now: datetime) -> None:
        assert self._reconciler is not None and checked.region is not None
        weight = 0 if checked.action == "drain" else 100
        apps = (
            [checked.app]
            if checked.app
            else sorted({StoredRelease.from_object(o).spec.app for o in self.releases.items()})
        )
        for app in apps:
            self._reconciler.traffic.set_weights(app, {checked.region: weight})
        log.info(
            "global traffic changed by responder",
            action=checked.action,
            region=checked.region,
            apps=apps,
            by=checked.by,
            reason=checked.reason,
        )
        self._finish_action(action, "Done", f"{checked.region} weight {weight} for {', '.join(apps)}", now)

    def _finish_action(
        self, action: dict[str, Any], state: str, message: str, now: datetime, warning: bool = False
    ) -> None:
        body = {"status": {"state": state, "message": message, "handledAt": format_time(now)}}
        name = _action_name(action)
        if warning:
            log.warning("action not carried out", action=name, state=state, reason=message)
            self._events.record("ReleaseAction", name, f"Action{state}", message, True, now)
        try:
            updated = self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.s.namespace, ACTIONS, name, body
            )
            self.actions.put(as_object(updated))
        except ApiException as exc:
            log.warning("action status not written", action=name, status=exc.status)


def _export_gauges(by_app: dict[str, list[StoredRelease]]) -> None:
    metrics.RELEASES.clear()
    metrics.REGIONS.clear()
    for app, releases in by_app.items():
        for release in releases:
            metrics.RELEASES.labels(app, release.status.phase).inc()
            if ReleasePhase(release.status.phase) in ACTIVE:
                for region in release.status.regions.values():
                    metrics.REGIONS.labels(app, region.phase).inc()


def _created(action: dict[str, Any]) -> str:
    return str((action.get("metadata") or {}).get("creationTimestamp") or "")


def _action_name(action: dict[str, Any]) -> str:
    return str((action.get("metadata") or {}).get("name") or "?")


def _transient(exc: Exception) -> bool:
    """Worth another try on the next pass: the API server or the network, not the action."""
    if isinstance(exc, ApiException):
        return exc.status in (None, 0, 409, 429) or (exc.status or 0) >= 500
    return isinstance(exc, (ConnectionError, TimeoutError, urllib3.exceptions.HTTPError))


def _as_object(release: StoredRelease) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Release",
        "metadata": {
            "name": release.name,
            "resourceVersion": release.resource_version,
            "creationTimestamp": release.created,
            "labels": {"app.kubernetes.io/name": release.spec.app},
        },
        "spec": release.spec.to_dict(),
        "status": release.status.to_dict(),
    }


def _in_cluster_client() -> client.ApiClient:
    kube_config.load_incluster_config()
    return client.ApiClient()

"""Shards on Kubernetes Leases: apps spread over S shards, each shard reconciled by one replica.

Pure parts first (no IO, the clock is an argument): `shard_of` (the stable hash of an app name)
and `decide` (which shard Leases to renew, acquire and release, given what was observed). Then
`ShardLeases`, the one adapter: a loop over the S shard Leases and one membership Lease with
optimistic concurrency (every write is a replace guarded by the resourceVersion it was read at),
and `Fence`, which answers "may this thread write for that shard now?".

Design (docs/architecture.md "Shards"):
- Shard i is the Lease `rollout-shard-<i>` in the controller namespace. Only its holder reconciles
  the shard's apps, and every write is fenced by it: trusted until the renew deadline after the last
  successful renewal (timed from before the renewal was sent), as `LeaderElector.is_leader()`.
- Live replicas are the entries of one membership Lease, `rollout-shard-members`, whose annotation
  maps each replica to a heartbeat it rewrites every round. One Lease (not one per replica) keeps
  the RBAC to fixed names; a replica that holds no shard yet is still counted, so the others
  release their excess to it.
- Expiry is judged by the observer's own clock: a Lease (or a member's heartbeat) is expired when
  it has not changed for its duration since this replica saw it change, so clock skew between
  replicas does not matter (what client-go's leader election does too).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = structlog.get_logger("rollout.shards")
LEASE_PREFIX = "rollout-shard-"
MEMBERS_LEASE = "rollout-shard-members"
MEMBERS_ANNOTATION = "rollout.dev/members"
MAX_SHARDS = 32  # deploy/base/rbac-controller.yaml names rollout-shard-0 .. rollout-shard-31


def shard_of(app: str, shards: int) -> int:
    """The shard of an app: the first 8 bytes of SHA-256 of its UTF-8 name, big-endian, modulo S.
    Stable across processes, versions and machines (Python's `hash` of a str is salted per process)."""
    if shards <= 1:
        return 0
    return int.from_bytes(hashlib.sha256(app.encode()).digest()[:8], "big") % shards


def lease_name(shard: int) -> str:
    return f"{LEASE_PREFIX}{shard}"


@dataclass(frozen=True)
class Observed:
    """A shard Lease as this replica last saw it: its holder (None: nobody) and whether the holder's
    claim is still live by this replica's clock (renewed within the lease duration)."""

    holder: str | None
    live: bool


@dataclass(frozen=True)
class Plan:
    renew: tuple[int, ...]
    acquire: tuple[int, ...]
    release: tuple[int, ...]


def fair_share(shards: int, live_replicas: int) -> int:
    """The most shards one replica may hold: ceil(S / live replicas)."""
    return math.ceil(shards / max(1, live_replicas))


def decide(me: str, shards: int, members: frozenset[str], leases: Mapping[int, Observed]) -> Plan:
    """Which shard Leases to renew, acquire and release this round.

    - Keep (renew) what I hold, up to my fair share ceil(S / live); release the rest.
    - Take free shards (no holder, or the holder's claim expired) while under the fair share, unless
      a live replica holds fewer than floor(S / live) and I hold at least that many (it goes first).
    - With no free shard while a live replica holds fewer than floor(S / live), the replica holding
      the most (ties: the smallest identity) releases one; the poorer one takes it next round.
    Shards are tried from a starting point derived from my identity, so replicas do not all race for
    the same free shard (the Lease writes are compare-and-swap anyway)."""
    live = members | {me}
    target = fair_share(shards, len(live))
    floor = shards // len(live)
    order = _preference(me, shards)
    mine = [s for s in order if (o := leases.get(s)) is not None and o.holder == me]
    kept = mine[:target]
    release = list(mine[target:])
    free = [s for s in order if (o := leases.get(s)) is None or o.holder is None or (not o.live and o.holder != me)]
    counts = {m: 0 for m in live}
    for s, o in leases.items():
        if o.live and o.holder in counts and s not in release:
            counts[o.holder] += 1
    counts[me] = len(kept)
    starving = any(c < floor for m, c in counts.items() if m != me)
    acquire: list[int] = []
    if len(kept) < target and not (starving and len(kept) >= floor):
        acquire = free[: target - len(kept)]
    elif starving and not free and not release and len(kept) > floor:
        richest = min(counts, key=lambda m: (-counts[m], m))
        if richest == me:
            release.append(kept.pop())
    return Plan(tuple(sorted(kept)), tuple(acquire), tuple(sorted(release)))


def without(beats: Mapping[str, str], me: str) -> dict[str, str]:
    """The membership annotation once `me` has left: the others stop counting it at once (its
    heartbeat would otherwise keep it live, and their fair share low, for a lease duration)."""
    return {m: b for m, b in beats.items() if m != me}


def _preference(me: str, shards: int) -> list[int]:
    start = shard_of(me, shards)
    return [(start + i) % shards for i in range(shards)]


def live_members(seen: Mapping[str, float], now: float, duration: float) -> frozenset[str]:
    """Members whose heartbeat this replica saw change within `duration` seconds before `now`."""
    return frozenset(m for m, at in seen.items() if now - at < duration)


class Fence:
    """Which shard the current thread acts for, and whether it may write for it now.

    A reconcile pass runs `with fence.acting(shard):`; everything it writes asks `may_write()`, which
    is true only while this replica holds that shard's Lease freshly. Threads outside a pass (the Git
    intake, the push webhook) act for shard 0, whose holder does the intake."""

    def __init__(self, identity: str, fresh: Callable[[int], bool], held: Callable[[], Sequence[int]]):
        self.identity = identity
        self._fresh = fresh
        self._held = held
        self._local = threading.local()

    @property
    def shard(self) -> int:
        return int(getattr(self._local, "shard", 0))

    @contextlib.contextmanager
    def acting(self, shard: int) -> Iterator[None]:
        before = getattr(self._local, "shard", None)
        self._local.shard = shard
        try:
            yield
        finally:
            self._local.shard = before if before is not None else 0

    def may_write(self) -> bool:
        return self._fresh(self.shard)

    def fresh(self, shard: int) -> bool:
        return self._fresh(shard)

    def held(self) -> list[int]:
        """The shards this replica may act for right now (fresh)."""
        return [s for s in self._held() if self._fresh(s)]

    def stamp(self) -> dict[str, Any]:
        """What a Release status records about the writer: `status.actedBy`."""
        return {"replica": self.identity, "shard": self.shard}


@dataclass
class _Seen:
    version: str  # the Lease's resourceVersion when last read or written
    holder: str | None
    marker: tuple[Any, ...]  # (holder, renewTime): a change means the holder is alive
    changed_at: float  # monotonic time this replica saw the marker change
    duration: float
    lease: client.V1Lease


class ShardLeases:
    """The Lease IO: one round reads the membership Lease (and rewrites this replica's heartbeat),
    reads the shard Leases this replica does not hold, asks `decide`, then renews, releases and
    acquires with compare-and-swap replaces. `fresh(shard)` is the fence."""

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        identity: str,
        shards: int,
        lease_seconds: int = 15,
        renew_seconds: int = 10,
        retry_seconds: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"--shards {shards}: between 1 and {MAX_SHARDS} (the Role names each shard Lease)")
        self._api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.identity = identity
        self.shards = shards
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._renewed: dict[int, float] = {}  # shard -> monotonic time its last successful renewal was sent
        self._seen: dict[int, _Seen] = {}
        self._members: dict[str, float] = {}  # member -> monotonic time its heartbeat was seen to change
        self._beats: dict[str, str] = {}
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the fence ------------------------------------------------------------------------------

    def fresh(self, shard: int) -> bool:
        with self._lock:
            at = self._renewed.get(shard)
        return at is not None and self._clock() - at < self.renew_seconds

    def held(self) -> list[int]:
        with self._lock:
            return sorted(self._renewed)

    # --- the loop -------------------------------------------------------------------------------

    def start(self) -> ShardLeases:
        self._thread = threading.Thread(target=self._loop, name="shard-leases", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def leave(self) -> list[int]:
        """A graceful stop (SIGTERM): end the loop, close the fence, hand every held shard back and
        leave the membership Lease, so the other replicas take the shards on their next round
        instead of after the lease duration. Returns the shards handed back. Best effort: what
        cannot be written (the API server away) expires as after a crash."""
        self.stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.retry_seconds + 10)  # a round in progress ends first
        with self._lock:
            held = sorted(self._renewed)
            self._renewed.clear()  # no write for any shard from here on
        mine = sorted({*held, *(s for s, seen in self._seen.items() if seen.holder == self.identity)})
        for shard in mine:
            try:
                self._release(shard)
            except Exception as exc:  # noqa: BLE001 - the Lease expires by itself
                log.warning("shard not handed back", shard=shard, error=f"{type(exc).__name__}: {exc}"[:200])
        try:
            self._leave_members()
        except Exception as exc:  # noqa: BLE001 - the heartbeat expires by itself
            log.warning("membership not left", error=f"{type(exc).__name__}: {exc}"[:200])
        log.info("shards handed back on stop", shards=mine, identity=self.identity)
        return mine

    def _leave_members(self) -> None:
        for _ in range(3):  # CAS: on a conflict, read and try again
            try:
                lease = self._api.read_namespaced_lease(MEMBERS_LEASE, self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            beats = _beats_of(lease)
            if self.identity not in beats:
                return
            lease.metadata = lease.metadata or client.V1ObjectMeta(name=MEMBERS_LEASE)
            lease.metadata.annotations = {
                **_annotations(lease),
                MEMBERS_ANNOTATION: json.dumps(without(beats, self.identity), sort_keys=True, separators=(",", ":")),
            }
            try:
                self._api.replace_namespaced_lease(MEMBERS_LEASE, self.namespace, lease)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise

    def _loop(self) -> None:
        while not self.stopped.is_set():
            started = self._clock()
            try:
                self.round()
            except Exception as exc:  # noqa: BLE001 - the API server away: fences lapse by themselves; retry
                log.warning("shard lease round failed", error=f"{type(exc).__name__}: {exc}"[:300])
            self.stopped.wait(max(0.0, self.retry_seconds - (self._clock() - started)))

    def round(self) -> Plan:
        now = self._clock()
        members = self._heartbeat(now)
        observed = {s: self._observe(s, now) for s in range(self.shards)}
        plan = decide(self.identity, self.shards, members, observed)
        for shard in plan.release:
            self._release(shard)
        for shard in plan.renew:
            self._claim(shard, renew=True)
        for shard in plan.acquire:
            self._claim(shard, renew=False)
        return plan

    def _heartbeat(self, now: float) -> frozenset[str]:
        """Rewrite my heartbeat in the membership Lease (CAS: on a conflict, read and try again)."""
        for _ in range(3):
            live = self._beat(now)
            if live is not None:
                return live
        return live_members(self._members, now, self.lease_seconds) - {self.identity}

    def _beat(self, now: float) -> frozenset[str] | None:
        try:
            lease = self._api.read_namespaced_lease(MEMBERS_LEASE, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            lease = None
        beats = _beats_of(lease) if lease is not None else {}
        for member, beat in beats.items():
            if self._beats.get(member) != beat:
                self._beats[member] = beat
                self._members[member] = now
        for member in set(self._members) - set(beats) - {self.identity}:
            del self._members[member]  # left (or pruned as dead by another replica): not counted
            self._beats.pop(member, None)
        live = live_members(self._members, now, self.lease_seconds)
        beats = {m: b for m, b in beats.items() if m in live or m == self.identity}
        beats[self.identity] = datetime.now(UTC).isoformat()
        annotations = {MEMBERS_ANNOTATION: json.dumps(beats, sort_keys=True, separators=(",", ":"))}
        try:
            if lease is None:
                body = client.V1Lease(metadata=client.V1ObjectMeta(name=MEMBERS_LEASE, annotations=annotations))
                self._api.create_namespaced_lease(self.namespace, body)
            else:
                lease.metadata = lease.metadata or client.V1ObjectMeta(name=MEMBERS_LEASE)
                lease.metadata.annotations = {**_annotations(lease), **annotations}
                self._api.replace_namespaced_lease(MEMBERS_LEASE, self.namespace, lease)
        except ApiException as exc:
            if exc.status != 409:
                raise
            return None
        self._members[self.identity] = now
        return live - {self.identity}

    def _observe(self, shard: int, now: float) -> Observed:
        """A shard Lease as it is now (read unless I hold it: my cached copy is its last version)."""
        seen = self._seen.get(shard)
        if seen is None or seen.holder != self.identity:
            try:
                lease = self._api.read_namespaced_lease(lease_name(shard), self.namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._seen.pop(shard, None)
                return Observed(None, False)
            spec = lease.spec or client.V1LeaseSpec()
            marker = (spec.holder_identity, str(spec.renew_time))
            changed_at = seen.changed_at if seen is not None and seen.marker == marker else now
            seen = _Seen(
                _version(lease),
                spec.holder_identity or None,
                marker,
                changed_at,
                float(spec.lease_duration_seconds or self.lease_seconds),
                lease,
            )
            self._seen[shard] = seen
        return Observed(seen.holder, now - seen.changed_at < seen.duration)

    def _claim(self, shard: int, renew: bool) -> None:
        """Take (or keep) a shard: a replace guarded by the resourceVersion seen, or a create."""
        sent = self._clock()
        stamp = datetime.now(UTC)
        seen = self._seen.get(shard)
        spec = client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.lease_seconds,
            acquire_time=(seen.lease.spec.acquire_time if renew and seen and seen.lease.spec else stamp),
            renew_time=stamp,
            lease_transitions=((seen.lease.spec.lease_transitions or 0) if seen and seen.lease.spec else 0)
            + (0 if renew else 1),
        )
        try:
            if seen is None:
                body = client.V1Lease(metadata=client.V1ObjectMeta(name=lease_name(shard)), spec=spec)
                written = self._api.create_namespaced_lease(self.namespace, body)
            else:
                body = client.V1Lease(
                    metadata=client.V1ObjectMeta(name=lease_name(shard), resource_version=seen.version), spec=spec
                )
                written = self._api.replace_namespaced_lease(lease_name(shard), self.namespace, body)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
            self._lose(shard, "lost the race" if not renew else "taken or changed by another replica")
            return
        with self._lock:
            self._renewed[shard] = sent
        self._seen[shard] = _Seen(
            _version(written),
            self.identity,
            (self.identity, str(written.spec.renew_time if written.spec else stamp)),
            sent,
            float(self.lease_seconds),
            written,
        )
        if not renew:
            log.info("shard acquired", shard=shard, identity=self.identity)

    def _release(self, shard: int) -> None:
        """Hand a shard back: stop writing for it first, then clear the holder (CAS)."""
        with self._lock:
            self._renewed.pop(shard, None)
        seen = self._seen.pop(shard, None)
        if seen is None:
            return
        spec = seen.lease.spec or client.V1LeaseSpec()
        spec.holder_identity = None
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=lease_name(shard), resource_version=seen.version), spec=spec
        )
        try:
            self._api.replace_namespaced_lease(lease_name(shard), self.namespace, body)
            log.info("shard released to a fair share", shard=shard, identity=self.identity)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def _lose(self, shard: int, why: str) -> None:
        with self._lock:
            had = self._renewed.pop(shard, None) is not None
        self._seen.pop(shard, None)
        if had:
            log.warning("shard lost; its writes stop", shard=shard, why=why, identity=self.identity)


def _beats_of(lease: client.V1Lease) -> dict[str, str]:
    raw = _annotations(lease).get(MEMBERS_ANNOTATION) or "{}"
    try:
        return {str(k): str(v) for k, v in json.loads(raw).items()}
    except (ValueError, AttributeError):
        return {}


def _annotations(lease: client.V1Lease) -> dict[str, str]:
    return dict((lease.metadata.annotations if lease.metadata else None) or {})


def _version(lease: client.V1Lease) -> str:
    return str((lease.metadata.resource_version if lease.metadata else None) or "")

"""Shards: the stable hash of an app to its shard, and the fair-share decisions (rollout/shards.py)."""

from __future__ import annotations

import copy
import math
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout.cache import ReleaseIndex
from rollout.controller import Controller
from rollout.failures import Retries
from rollout.reconciler import ACTIVE
from rollout.shards import (
    Fence,
    Observed,
    Plan,
    ShardLeases,
    decide,
    fair_share,
    live_members,
    shard_of,
    without,
)
from rollout.store import ReleaseStore, StoredRelease
from tests.unit.rollout.test_at_rest import FakeCache, release


def test_shard_of_is_a_documented_stable_hash_not_pythons_salted_one() -> None:
    # first 8 bytes of SHA-256("checkout"), big-endian, modulo S: fixed across versions and machines
    assert [shard_of("checkout", s) for s in (1, 2, 6, 32)] == [0, 1, 5, 29]
    assert shard_of("cart", 6) == 3 and shard_of("billing", 6) == 1
    other = subprocess.run(
        [sys.executable, "-c", "from rollout.shards import shard_of; print(shard_of('checkout', 6))"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    )
    assert other.stdout.strip() == "5"  # another process with another str-hash salt


def test_shard_of_spreads_apps_over_every_shard() -> None:
    spread = Counter(shard_of(f"app-{i}", 6) for i in range(600))
    assert set(spread) == set(range(6))
    assert min(spread.values()) > 60 and max(spread.values()) < 140


@pytest.mark.parametrize(
    ("shards", "live", "share"), [(6, 1, 6), (6, 2, 3), (6, 3, 2), (6, 4, 2), (6, 7, 1), (1, 3, 1)]
)
def test_fair_share_is_the_ceiling(shards: int, live: int, share: int) -> None:
    assert fair_share(shards, live) == share == math.ceil(shards / live)


def leases(**holders: str | None) -> dict[int, Observed]:
    """`s0="a"`: shard 0 held (live) by a; `s1="~b"`: held by b but expired; `s2=None`: no holder."""
    out = {}
    for key, holder in holders.items():
        shard = int(key[1:])
        if holder is None:
            out[shard] = Observed(None, False)
        else:
            out[shard] = Observed(holder.lstrip("~"), not holder.startswith("~"))
    return out


def test_alone_a_replica_takes_every_shard() -> None:
    plan = decide("a", 6, frozenset(), {})
    assert plan.renew == () and sorted(plan.acquire) == [0, 1, 2, 3, 4, 5] and plan.release == ()


def test_a_replica_keeps_its_fair_share_and_releases_the_excess_when_others_join() -> None:
    held = leases(s0="a", s1="a", s2="a", s3="a", s4="a", s5="a")
    plan = decide("a", 6, frozenset({"b", "c"}), held)
    assert len(plan.renew) == 2 and len(plan.release) == 4 and plan.acquire == ()
    assert set(plan.renew) | set(plan.release) == set(range(6))


def test_a_newcomer_takes_only_free_shards_never_live_ones() -> None:
    held = leases(s0="a", s1="a", s2="a", s3=None, s4="~a", s5="a")
    plan = decide("b", 6, frozenset({"a"}), held)
    assert sorted(plan.acquire) == [3, 4] and plan.renew == () and plan.release == ()


def test_orphaned_shards_are_taken_up_to_the_fair_share() -> None:
    # c died: its leases expired and its membership is gone; a and b each take one
    held = leases(s0="a", s1="a", s2="b", s3="b", s4="~c", s5="~c")
    a, b = decide("a", 6, frozenset({"b"}), held), decide("b", 6, frozenset({"a"}), held)
    assert len(a.acquire) == 1 and len(b.acquire) == 1
    assert set(a.acquire) | set(b.acquire) <= {4, 5}


def test_while_a_dead_replica_is_still_counted_nobody_exceeds_the_share() -> None:
    held = leases(s0="a", s1="a", s2="b", s3="b", s4="~c", s5="~c")
    assert decide("a", 6, frozenset({"b", "c"}), held) == Plan((0, 1), (), ())


def test_a_replica_left_with_nothing_gets_one_from_the_richest() -> None:
    # 4 replicas, 6 shards: share 2, floor 1; d holds none and nothing is free
    held = leases(s0="a", s1="a", s2="b", s3="b", s4="c", s5="c")
    members = {"a": frozenset({"b", "c", "d"}), "b": frozenset({"a", "c", "d"}), "c": frozenset({"a", "b", "d"})}
    plans = {m: decide(m, 6, others, held) for m, others in members.items()}
    assert [m for m, p in plans.items() if p.release] == ["a"]  # the richest, ties by identity: one only
    assert len(plans["a"].release) == 1 and len(plans["a"].renew) == 1
    freed = plans["a"].release[0]
    after = {**held, freed: Observed(None, False)}
    assert decide("a", 6, frozenset({"b", "c", "d"}), after).acquire == ()  # the poorer one goes first
    assert decide("d", 6, frozenset({"a", "b", "c"}), after).acquire == (freed,)


def test_renewing_what_it_holds_is_kept_even_when_its_own_claim_looks_expired() -> None:
    plan = decide("a", 2, frozenset(), leases(s0="~a", s1="a"))
    assert plan.renew == (0, 1) and plan.acquire == ()


def simulate(replicas: list[str], shards: int, rounds: int, start: dict[int, str] | None = None) -> dict[int, str]:
    """Rounds of every replica deciding on the same view, applying its plan (first writer wins a free shard)."""
    holder: dict[int, str | None] = {s: None for s in range(shards)} | dict(start or {})
    for _ in range(rounds):
        for me in replicas:
            view = {s: Observed(h, h is not None) for s, h in holder.items()}
            plan = decide(me, shards, frozenset(replicas) - {me}, view)
            for s in plan.release:
                holder[s] = None
            for s in plan.acquire:
                if holder[s] is None:
                    holder[s] = me
    return {s: h for s, h in holder.items() if h is not None}


@pytest.mark.parametrize(("replicas", "shards"), [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (7, 6), (3, 32), (2, 1)])
def test_rounds_converge_to_every_shard_held_and_a_fair_share(replicas: int, shards: int) -> None:
    names = [f"r{i}" for i in range(replicas)]
    held = simulate(names, shards, rounds=10)
    assert sorted(held) == list(range(shards))
    counts = Counter(held.values())
    assert max(counts.values()) <= fair_share(shards, replicas)
    assert min(counts.get(n, 0) for n in names) >= min(1, shards // replicas)
    assert simulate(names, shards, rounds=3, start=held) == held  # stable: no shard moves once settled


def test_a_replica_joining_a_settled_group_gets_its_share() -> None:
    held = simulate(["a", "b"], 6, rounds=5)
    after = simulate(["a", "b", "c"], 6, rounds=5, start=held)
    assert Counter(after.values()) == {"a": 2, "b": 2, "c": 2}


def test_live_members_are_those_seen_changing_within_the_duration() -> None:
    assert live_members({"a": 100.0, "b": 95.0, "c": 93.9}, now=100.0, duration=6) == {"a", "b"}


def test_the_fence_answers_for_the_shard_the_thread_acts_for() -> None:
    fresh = {0: True, 3: False}
    fence = Fence("replica-a", lambda s: fresh.get(s, False), lambda: [0, 3])
    assert fence.may_write() and fence.stamp() == {"replica": "replica-a", "shard": 0}  # outside a pass: shard 0
    with fence.acting(3):
        assert not fence.may_write() and fence.stamp() == {"replica": "replica-a", "shard": 3}
    assert fence.shard == 0 and fence.held() == [0]


def test_a_sharded_pass_reconciles_only_the_held_shards_apps_each_fenced_by_its_shard() -> None:
    apps = ["cart", "billing", "checkout", "orders"]  # shards 3, 1, 5, 4 of 6
    cache = FakeCache([release(f"{a}-1", a, "Progressing", str(i + 1)) for i, a in enumerate(apps)])
    held = {3: True, 5: True, 1: False}  # 1 held but its renewal is stale: no writes for billing
    fence = Fence("replica-a", lambda s: held.get(s, False), lambda: sorted(held))
    seen: list[tuple[str, bool, dict[str, Any]]] = []

    class Reconciler:
        freezes: tuple[Any, ...] = ()

        def reconcile(self, stored: StoredRelease, siblings: Any, requests: Any, now: datetime) -> StoredRelease:
            seen.append((stored.spec.app, fence.may_write(), fence.stamp()))
            return stored

    ctl = Controller.__new__(Controller)
    ctl.s = SimpleNamespace(shards=6)  # type: ignore[assignment]
    ctl.shard_leases = SimpleNamespace()  # type: ignore[assignment]  # sharded; the fence answers
    ctl.fence = fence
    ctl.releases = cache  # type: ignore[assignment]
    ctl.actions = FakeCache([])  # type: ignore[assignment]
    ctl.index = ReleaseIndex(cache, ACTIVE)  # type: ignore[arg-type]
    ctl._pending = (-1, [])
    ctl._retries = Retries()
    ctl._reconciler = Reconciler()  # type: ignore[assignment]
    ctl._freezes = lambda now: ()  # type: ignore[method-assign]
    ctl._collect_trees = lambda by_app, now: None  # type: ignore[method-assign]
    ctl._write_back = lambda by_app, now: None  # type: ignore[method-assign]
    ctl.reconcile_all(datetime.now(UTC))
    assert seen == [
        ("cart", True, {"replica": "replica-a", "shard": 3}),
        ("checkout", True, {"replica": "replica-a", "shard": 5}),
    ]
    store = ReleaseStore.__new__(ReleaseStore)
    store.acted_by = fence.stamp
    with fence.acting(5):
        assert store.acted_by() == {"replica": "replica-a", "shard": 5}


class LeaseApi:
    """coordination.k8s.io Leases in memory, with the API server's compare-and-swap on replace."""

    def __init__(self) -> None:
        self.leases: dict[str, client.V1Lease] = {}
        self.version = 0

    def _stored(self, lease: client.V1Lease) -> client.V1Lease:
        self.version += 1
        lease = copy.deepcopy(lease)
        lease.metadata.resource_version = str(self.version)
        self.leases[lease.metadata.name] = lease
        return copy.deepcopy(lease)

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
        if name not in self.leases:
            raise ApiException(status=404)
        return copy.deepcopy(self.leases[name])

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease) -> client.V1Lease:
        if body.metadata.name in self.leases:
            raise ApiException(status=409)
        return self._stored(body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: client.V1Lease) -> client.V1Lease:
        if name not in self.leases:
            raise ApiException(status=404)
        if body.metadata.resource_version != self.leases[name].metadata.resource_version:
            raise ApiException(status=409)
        return self._stored(body)

    def holders(self) -> dict[int, str | None]:
        return {
            int(n.removeprefix("rollout-shard-")): lease.spec.holder_identity
            for n, lease in self.leases.items()
            if n != "rollout-shard-members"
        }


def test_without_drops_only_the_leaving_member() -> None:
    assert without({"a": "t1", "b": "t2"}, "a") == {"b": "t2"}
    assert without({"b": "t2"}, "a") == {"b": "t2"}


def test_a_replica_that_stops_gracefully_hands_its_shards_over_within_one_round() -> None:
    api, now = LeaseApi(), [0.0]
    names = ["a", "b", "c"]
    replicas = {}
    for name in names:
        leases = ShardLeases(client.ApiClient(), "ns", name, 6, 6, 4, 1, clock=lambda: now[0])
        leases._api = api  # type: ignore[assignment]
        replicas[name] = leases
    for _ in range(8):  # rounds a second apart until every shard is held, two each
        for leases in replicas.values():
            leases.round()
        now[0] += 1
    assert Counter(api.holders().values()) == {"a": 2, "b": 2, "c": 2}
    handed = replicas["a"].leave()
    assert len(handed) == 2 and replicas["a"].held() == [] and not any(replicas["a"].fresh(s) for s in handed)
    assert all(api.holders()[s] is None for s in handed)  # cleared at once, not left to expire
    now[0] += 1  # one round later, far less than the 6 s lease duration
    for name in ("b", "c"):
        replicas[name].round()
    assert Counter(api.holders().values()) == {"b": 3, "c": 3}
    assert sorted(replicas["b"].held() + replicas["c"].held()) == list(range(6))


def test_sigterm_only_flags_the_stop_the_loop_hands_the_shards_back_after_its_pass() -> None:
    left: list[str] = []
    leases = SimpleNamespace(stopped=threading.Event(), leave=lambda: left.append("left"))
    ctl = Controller.__new__(Controller)
    ctl.shard_leases = leases  # type: ignore[assignment]
    ctl._terminated(signal.SIGTERM, None)
    ctl._terminated(signal.SIGTERM, None)  # a second signal changes nothing
    assert ctl._terminating and leases.stopped.is_set()  # the loop (`_lead`) ends on this Event
    assert left == []  # no Lease IO inside the handler: run() hands them back once the loop ended

"""Approval gates in the promotion state machine (pure): a gated wave waits until N distinct allowed
identities approved it (not the author with notByAuthor, none older than expiresAfter); a refusal
closes it again; the status says so once per gate; rollbacks never wait for approval."""

from __future__ import annotations

from datetime import timedelta

from regions.analysis.model import Verdict
from rollout import approvals
from rollout.orchestrator import BeginRollback, Notify, RegionView, ReleaseView, Request, StartStrategy, decide
from rollout.release import ApprovalGate, PlannedWaveSpec, ReleaseSpec, ReleaseStatus
from strategies.model import Phase as S
from tests.unit.rollout.test_orchestrator import DONE, PASS, SPEC, Replay

GATE = ApprovalGate(
    required=2, users=("alice",), groups=("release-managers",), not_by_author=True, expires_seconds=3600
)
LOW_GATED = ReleaseSpec(
    **{
        **SPEC.__dict__,
        "author": "Bob Builder <bob@example.com>",
        "waves": (
            SPEC.waves[0],
            PlannedWaveSpec("low", ("eu-west", "ap-south"), 30, 2, GATE),
            SPEC.waves[2],
        ),
    }
)
FIRST_GATED = ReleaseSpec(
    **{
        **SPEC.__dict__,
        "waves": (PlannedWaveSpec("canary", ("eu-canary",), 60, 1, ApprovalGate(users=("alice",))), *SPEC.waves[1:]),
    }
)
MANAGERS = ("release-managers", "system:authenticated")


class Gated(Replay):
    def __init__(self, spec: ReleaseSpec = LOW_GATED) -> None:
        super().__init__()
        self.spec = spec

    def step(self, seconds: float = 0, requests=(), blocked_by=None, **regions: RegionView):
        self.now += timedelta(seconds=seconds)
        view = ReleaseView(
            self.spec,
            self.status,
            self.policy,
            {k.replace("_", "-"): v for k, v in regions.items()},
            tuple(requests),
            blocked_by,
            self.previous,
        )
        self.status, actions = decide(view, self.now)
        return actions


def approve(by: str, groups: tuple[str, ...] = (), wave: str = "low", verdict: str = "approve") -> Request:
    return Request(verdict, f"{verdict} by {by}", by, wave=wave, groups=groups)


def at_low_gate(r: Gated) -> list:
    r.step()
    r.step(5, eu_canary=DONE)
    return r.step(61, eu_canary=PASS)


def notices(actions, event: str = "awaitingApproval") -> list[Notify]:
    return [a for a in actions if isinstance(a, Notify) and a.event == event]


def test_a_gated_wave_waits_and_says_so_once() -> None:
    r = Gated()
    actions = at_low_gate(r)
    assert r.status.current_wave == 1 and not any(isinstance(a, StartStrategy) for a in actions)
    assert r.phase("eu-west") == r.phase("ap-south") == "Pending"
    (notice,) = notices(actions)
    assert notice.reason.startswith("awaiting approval for wave low: 0/2 approvals from users alice or groups")
    assert r.status.awaiting_approval == {
        "wave": "low",
        "required": 2,
        "have": 0,
        "from": "users alice or groups release-managers (not the commit's author)",
    }
    assert r.status.message == notice.reason
    assert notices(r.step(30)) == [] and notices(r.step(30)) == []  # not once per pass
    assert [a.action for a in r.status.audit].count("awaiting-approval") == 1


def test_two_distinct_allowed_identities_open_the_gate_and_the_wave_starts() -> None:
    r = Gated()
    at_low_gate(r)
    r.step(1, requests=[approve("alice")])
    r.step(1, requests=[approve("alice")])  # the same identity twice is one approval
    assert r.status.awaiting_approval["have"] == 1 and r.phase("eu-west") == "Pending"
    assert r.status.approvals[-1].note == "counted: 1/2 approvals for wave low"
    actions = r.step(1, requests=[approve("carol", MANAGERS)])  # allowed by her group
    assert StartStrategy("eu-west") in actions and StartStrategy("ap-south") in actions
    assert r.status.awaiting_approval == {} and r.status.message == ""
    assert r.status.approved_waves == ["low"]
    assert "wave low approved by alice, carol" in [a.reason for a in r.status.audit if a.action == "approved"][0]


def test_a_disallowed_identity_and_the_author_are_not_counted() -> None:
    r = Gated()
    at_low_gate(r)
    r.step(1, requests=[approve("mallory", ("developers",)), approve("bob", MANAGERS), approve("alice")])
    mallory, bob, alice = r.status.approvals
    assert not mallory.counted and mallory.note.startswith("not counted: identity not allowed: mallory")
    assert not bob.counted and bob.note.startswith("not counted: author: bob wrote commit cccccccccccc")
    assert alice.counted
    assert r.status.awaiting_approval["have"] == 1 and r.phase("eu-west") == "Pending"
    assert "(wave low: not counted: identity not allowed" in r.status.audit[-3].reason


def test_wrong_wave_and_no_such_gate_are_not_counted() -> None:
    r = Gated()
    r.step()
    r.step(1, requests=[approve("alice", wave="canary"), approve("alice", wave="nope")])
    canary, nope = r.status.approvals
    assert canary.note.startswith("not counted: no such gate: wave canary")
    assert nope.note.startswith("not counted: wrong wave: release checkout-cccccccccccc has no wave 'nope'")


def test_approvals_older_than_expires_after_close_the_gate_again() -> None:
    r = Gated()
    r.step(requests=[approve("alice")])  # approved early, while the canary wave runs
    r.step(5, eu_canary=DONE)
    r.step(3000, eu_canary=PASS)  # canary passes after a long smoke window (the 60s one is long over)
    r.step(700, requests=[approve("carol", MANAGERS)])  # alice's approval is now 3701s old
    assert r.phase("eu-west") == "Pending"
    assert r.status.awaiting_approval["have"] == 1 and r.status.awaiting_approval["expired"] == 1
    assert "1 expired (older than expiresAfter): the gate closed again" in r.status.message
    assert StartStrategy("eu-west") in r.step(1, requests=[approve("alice")])  # fresh again


def test_a_refusal_is_recorded_and_only_later_approvals_count() -> None:
    r = Gated()
    at_low_gate(r)
    r.step(1, requests=[approve("alice")])
    r.step(1, requests=[approve("carol", MANAGERS, verdict="refuse")])
    refusal = r.status.approvals[-1]
    assert refusal.counted and refusal.note.startswith("counted: refusal recorded")
    assert r.status.awaiting_approval["have"] == 0 and r.status.awaiting_approval["refused"].startswith("carol")
    assert r.phase() == "Progressing"  # a refusal does not abort
    r.step(1, requests=[approve("alice")])
    assert StartStrategy("eu-west") in r.step(1, requests=[approve("dave", MANAGERS)])


def test_a_pending_release_whose_first_wave_is_gated_does_not_start() -> None:
    r = Gated(FIRST_GATED)
    actions = r.step()
    assert r.phase() == "Pending" and not any(isinstance(a, StartStrategy) for a in actions)
    assert len(notices(actions)) == 1
    actions = r.step(1, requests=[approve("alice", wave="canary")])
    assert StartStrategy("eu-canary") in actions and r.phase() == "Progressing"


def test_a_rollback_never_waits_for_approval() -> None:
    r = Gated()
    at_low_gate(r)
    assert r.status.awaiting_approval
    actions = r.step(1, requests=[Request("rollback", "bad", "rick")])
    assert r.phase() == "RollingBack" and r.status.awaiting_approval == {}
    r.step(1)  # drain of eu-canary (weight 0) while approvals are missing
    actions = r.step(61, eu_canary=RegionView(strategy_phase=S.SUCCEEDED, drain_moved=1.0))
    assert BeginRollback("eu-canary", r.status.message) in actions
    r.step(1, eu_canary=RegionView(strategy_phase=S.ROLLED_BACK, smoke=Verdict.SUCCESS))
    assert r.phase() == "RolledBack"


def test_is_author_matches_name_email_and_local_part() -> None:
    author = "Bob Builder <bob@example.com>"
    assert approvals.is_author("bob", author) and approvals.is_author("BOB@example.com", author)
    assert approvals.is_author("bob builder", author)
    assert not approvals.is_author("alice", author) and not approvals.is_author("bob", "")


def test_the_gate_round_trips_through_the_stored_spec_and_status() -> None:
    assert ReleaseSpec.from_dict(LOW_GATED.to_dict()) == LOW_GATED
    r = Gated()
    at_low_gate(r)
    r.step(1, requests=[approve("alice")])
    again = ReleaseStatus.from_dict(r.status.to_dict())
    assert again.approvals == r.status.approvals and again.awaiting_approval == r.status.awaiting_approval

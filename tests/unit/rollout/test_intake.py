from __future__ import annotations

from rollout.intake import Candidate, CreateRelease, SkipQuarantined, SupersedeRelease, decide_intake
from rollout.release import PlannedWaveSpec, ReleaseSpec, ReleaseStatus
from rollout.store import StoredRelease

WAVES = (PlannedWaveSpec("canary", ("eu-canary",), 60, 1),)


def spec(commit: str, digest: str, version: str = "1.0.0") -> ReleaseSpec:
    return ReleaseSpec("checkout", commit * 40, version, "p", digest, WAVES)


def stored(commit: str, digest: str, phase: str, quarantined: bool = False) -> StoredRelease:
    s = spec(commit, digest)
    return StoredRelease(s.name, "1", s, ReleaseStatus(phase=phase, quarantined=quarantined), commit)


def test_first_commit_of_an_app_makes_a_release() -> None:
    assert decide_intake({"checkout": Candidate(spec("a", "d1"), "unstarted")}, {}) == [CreateRelease(spec("a", "d1"))]


def test_a_commit_that_does_not_change_the_app_makes_nothing() -> None:
    existing = {"checkout": [stored("a", "d1", "Succeeded")]}
    assert decide_intake({"checkout": Candidate(spec("b", "d1"), "unstarted")}, existing) == []


def test_the_same_content_at_a_readable_commit_replaces_a_release_whose_commit_was_lost() -> None:
    # the latest release Failed because a force-push removed its commit; the new head has the same app
    existing = {"checkout": [stored("a", "d1", "Succeeded"), stored("b", "d2", "Failed")]}
    assert decide_intake({"checkout": Candidate(spec("c", "d2"), "unstarted")}, existing) == [
        CreateRelease(spec("c", "d2"))
    ]


def test_a_quarantined_change_is_not_reapplied_by_later_syncs() -> None:
    existing = {
        "checkout": [
            stored("a", "d1", "Succeeded"),
            stored("b", "d2", "RolledBack", quarantined=True),
            stored("c", "d3", "Succeeded"),
        ]
    }
    # e.g. a commit that reverts the fix: same content as the quarantined release
    actions = decide_intake({"checkout": Candidate(spec("e", "d2"), "unstarted")}, existing)
    assert actions == [SkipQuarantined("checkout", stored("b", "d2", "RolledBack").name)]


def test_the_rolled_back_commit_itself_stays_quiet_on_resync() -> None:
    existing = {"checkout": [stored("a", "d1", "Succeeded"), stored("b", "d2", "RolledBack", quarantined=True)]}
    assert decide_intake({"checkout": Candidate(spec("b", "d2"), "unstarted")}, existing) == []


def test_a_revert_to_known_good_content_is_a_new_release() -> None:
    existing = {"checkout": [stored("a", "d1", "Succeeded"), stored("b", "d2", "RolledBack", quarantined=True)]}
    assert decide_intake({"checkout": Candidate(spec("f", "d1"), "unstarted")}, existing) == [
        CreateRelease(spec("f", "d1"))
    ]


def test_a_newer_commit_supersedes_releases_that_have_not_started() -> None:
    existing = {"checkout": [stored("a", "d1", "Progressing"), stored("b", "d2", "Pending")]}
    actions = decide_intake({"checkout": Candidate(spec("c", "d3"), "unstarted")}, existing)
    assert actions == [
        CreateRelease(spec("c", "d3")),
        SupersedeRelease(stored("b", "d2", "Pending").name, by=spec("c", "d3").name),
    ]
    assert decide_intake({"checkout": Candidate(spec("c", "d3"), "never")}, existing) == [
        CreateRelease(spec("c", "d3"))
    ]


def test_a_dependencys_release_is_created_before_its_dependents() -> None:
    def candidate(app: str, *depends_on: str) -> Candidate:
        return Candidate(ReleaseSpec(app, "a" * 40, "1.0.0", "p", f"d-{app}", WAVES), "unstarted", depends_on)

    candidates = {"api": candidate("api", "backend"), "backend": candidate("backend"), "web": candidate("web", "api")}
    actions = decide_intake(candidates, {})
    assert [a.spec.app for a in actions if isinstance(a, CreateRelease)] == ["backend", "api", "web"]

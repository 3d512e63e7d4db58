"""Rendering of `rollout status` and `history` rows from Release objects (pure)."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from rollout.cli.ops import action_rows, explain, history_rows, status_rows

RELEASE = {
    "metadata": {"name": "checkout-cccccccccccc", "creationTimestamp": "2026-11-24T12:00:00Z"},
    "spec": {
        "app": "checkout",
        "version": "1.6.0",
        "waves": [{"name": "canary", "regions": ["eu-canary"]}, {"name": "low", "regions": ["eu-west"]}],
    },
    "status": {
        "phase": "RolledBack",
        "quarantined": True,
        "failedRegion": "eu-canary",
        "startedAt": "2026-11-24T12:00:01Z",
        "completedAt": "2026-11-24T12:00:31Z",
        "regions": {
            "eu-canary": {
                "phase": "RolledBack",
                "weight": 0,
                "strategy": {"step": 1, "stepName": "setWeight 10"},
                "analysis": {
                    "step-1": {
                        "measurements": [
                            {"check": "error-ratio", "at": "2026-11-24T12:00:10Z", "verdict": "success"},
                            {"check": "error-ratio", "at": "2026-11-24T12:00:12Z", "verdict": "failure"},
                        ]
                    }
                },
                "message": "smoke check failed",
            }
        },
        "audit": [
            {"time": "2026-11-24T12:00:01Z", "action": "start", "reason": "r", "by": "controller"},
            {"time": "2026-11-24T12:00:20Z", "action": "pause", "reason": "looking", "by": "alice"},
        ],
    },
}


def test_status_rows_show_wave_phase_step_weight_and_the_latest_verdict() -> None:
    rows = status_rows(RELEASE)
    assert rows[0][:6] == ["1 canary", "eu-canary", "RolledBack", "setWeight 10", "0%", "error-ratio=failure"]
    assert rows[1][:3] == ["2 low", "eu-west", "Pending"]


def test_history_shows_outcome_duration_and_who_did_what() -> None:
    row = history_rows([RELEASE])[0]
    assert row[:3] == ["checkout-cccccccccccc", "1.6.0", "RolledBack"]
    assert row[4] == "30s" and row[5] == "eu-canary"
    assert row[6] == "alice: pause (looking)"


def test_forbidden_names_the_user_verb_and_resource() -> None:
    message = explain(
        ApiException(status=403, reason="Forbidden"), "create a rollback action", "rollout-system", lambda: "bob"
    )
    assert "bob may not create releaseactions.rollout.dev in namespace rollout-system" in message


def test_history_lists_responders_requests_for_the_app_and_region_wide_ones() -> None:
    def action(name: str, created: str, **spec: str) -> dict:
        return {
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"reason": "r", "requestedBy": "alice", **spec},
            "status": {"state": "Done"},
        }

    rows = action_rows(
        [
            action("a", "2026-11-24T12:00:00Z", action="drill", app="checkout", region="eu-west"),
            action("b", "2026-11-24T12:01:00Z", action="drain", region="us-east"),
            action("c", "2026-11-24T12:02:00Z", action="pause", app="catalog"),
        ],
        "checkout",
    )
    assert [(r[1], r[2]) for r in rows] == [("drain", "us-east"), ("drill", "checkout eu-west")]

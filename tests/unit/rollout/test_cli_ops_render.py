"""Rendering of `rollout status` and `history` rows from Release objects (pure)."""

from __future__ import annotations

import copy
import io
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException
from rich.console import Console

from rollout.cli.ops import (
    action_rows,
    explain,
    history_rows,
    history_table,
    print_wide,
    status_rows,
    status_view,
)

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


MESSAGE = (
    "smoke window failed: request-rate fell to 0.4 of the baseline for 3 consecutive measurements; "
    "traffic drained to the other regions and the previous release restored at 12:00:31Z"
)
LONG = {
    "metadata": {"name": "checkout-dddddddddddd", "creationTimestamp": "2026-11-24T12:00:00Z"},
    "spec": {
        "app": "checkout",
        "version": "1.7.0",
        "waves": [
            {"name": "low-traffic", "regions": ["low-traffic-eu-central-2"]},
            {"name": "high-traffic", "regions": ["high-traffic-us-east-1", "high-traffic-ap-south-1"]},
        ],
    },
    "status": {
        "phase": "Progressing",
        "regions": {
            "low-traffic-eu-central-2": {
                "phase": "Smoke",
                "weight": 100,
                "started_at": "2026-11-24T12:00:01Z",
                "smoke_started_at": "2026-11-24T12:00:30Z",
                "smoke_seconds": 600,
                "strategy": {"step": 3, "stepName": "setWeight 100"},
                "analysis": {
                    "smoke": {
                        "startedAt": "2026-11-24T12:00:30Z",
                        "measurements": [
                            {
                                "check": "request-rate-vs-baseline",
                                "at": "2026-11-24T12:01:00Z",
                                "verdict": "failure",
                                "value": 0.4,
                                "baseline": 1.0,
                            }
                        ],
                    }
                },
                "message": MESSAGE,
            },
            "high-traffic-us-east-1": {"phase": "Succeeded", "completed_at": "2026-11-24T12:20:00Z"},
        },
    },
}
NOW = datetime(2026, 11, 24, 12, 2, 0, tzinfo=UTC)


def rendered(*renderables: object, wide: bool, width: int = 80) -> str:
    out = io.StringIO()
    print_wide(Console(file=out, width=width, color_system=None), *renderables, wide=wide)  # type: ignore[arg-type]
    return out.getvalue()


def flat(text: str) -> str:
    """The output with line breaks and box drawing removed, to find folded text again."""
    return " ".join(text.replace("│", " ").replace("┃", " ").split())


def test_the_message_is_no_longer_cut_at_60_characters() -> None:
    assert status_rows(LONG, now=NOW)[0][6] == MESSAGE


def test_text_at_80_columns_keeps_names_and_checks_whole_and_the_message_in_full() -> None:
    text = rendered(status_view(LONG, now=NOW), wide=False)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for cell in ("low-traffic-eu-central-2", "high-traffic-ap-south-1", "1 low-traffic", "Succeeded", "weight", "100%"):
        assert cell in text
    assert "request-rate-vs-baseline=failure" in text
    assert MESSAGE in flat(text)


def test_wide_shows_every_column_in_full_on_one_line_per_region_even_when_not_a_terminal() -> None:
    text = rendered(status_view(LONG, wide=True, now=NOW), wide=True)
    assert "…" not in text
    line = next(line for line in text.splitlines() if "low-traffic-eu-central-2" in line)
    for cell in (
        "1 low-traffic",
        "Smoke",
        "setWeight 100",
        "100%",
        "request-rate-vs-baseline=failure (value 0.4, baseline 1)",  # rollout.views.measured: 3 significant digits
        MESSAGE,
        "8m30s",  # the smoke window started 12:00:30 for 600 s; now is 12:02:00
        "2026-11-24T12:00:01Z",
    ):
        assert cell in line
    assert "2026-11-24T12:20:00Z" in text
    assert "smoke left" in text and "finished" in text


def test_wide_columns_follow_the_text_ones() -> None:
    text_row, wide_row = status_rows(LONG, now=NOW)[0], status_rows(LONG, wide=True, now=NOW)[0]
    assert wide_row[:5] == text_row[:5] and wide_row[6] == text_row[6]
    assert wide_row[7:] == ["8m30s", "2026-11-24T12:00:01Z", ""]
    assert status_rows(LONG, wide=True, now=NOW)[2][7:] == ["", "", "2026-11-24T12:20:00Z"]  # wave, then name


def test_history_wide_is_not_cut_and_text_folds_instead_of_cutting() -> None:
    header = ["release", "version", "outcome", "created", "took", "failed region", "people", "rendered by"]
    rows = history_rows([RELEASE])
    rows[0][6] = f"alice: pause ({MESSAGE})"
    wide = rendered(history_table("history of checkout", header, rows), wide=True)
    assert f"alice: pause ({MESSAGE})" in wide and "…" not in wide
    text = rendered(history_table("history of checkout", header, rows), wide=False)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80


def test_brackets_in_messages_and_titles_are_text_not_rich_markup() -> None:
    release = copy.deepcopy(RELEASE)
    release["status"]["regions"]["eu-canary"]["message"] = "probe [eu-canary] [/] 503"  # type: ignore[index]
    for wide in (False, True):
        text = rendered(status_view(release, wide=wide, now=NOW), wide=wide)
        assert "probe [eu-canary] [/] 503" in text and "[quarantined]" in text


def test_an_action_outcome_is_kept_whole() -> None:
    action = {
        "metadata": {"name": "a", "creationTimestamp": "2026-11-24T12:00:00Z"},
        "spec": {"action": "rollback", "app": "checkout", "reason": "r", "requestedBy": "alice"},
        "status": {"state": "Done", "message": MESSAGE},
    }
    (row,) = action_rows([action], "checkout")
    assert row[5] == f"Done {MESSAGE}"

"""Every event the orchestrator notifies can be chosen in a plan's `notifications[].events`
(a freeze once held releases silently: its events were not in the schema's list)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from config.schema import DEFAULT_NOTIFIED, NotificationEvent

ORCHESTRATOR = Path(__file__).resolve().parents[3] / "rollout" / "orchestrator.py"


def emitted() -> set[str]:
    return set(re.findall(r'Notify\(\s*"(\w+)"', ORCHESTRATOR.read_text()))


def test_every_notified_event_can_be_subscribed_to() -> None:
    events = emitted()
    assert {"failed", "rolledBack", "frozen", "freezeOverride"} <= events  # the scan finds them
    assert events <= set(get_args(NotificationEvent))


def test_a_freeze_reaches_people_by_default() -> None:
    assert {"frozen", "freezeOverride"} <= set(DEFAULT_NOTIFIED)

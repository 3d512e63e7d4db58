"""The shipped KWOK stage set is deterministic: for any pod state at most one stage matches."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from deploy.lab.cluster import FAULT_LABEL, STAGES

FAULT_KEY = f'.metadata.labels["{FAULT_LABEL}"]'


def stages() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(STAGES.read_text()))


def pod_stages() -> dict[str, dict[str, Any]]:
    return {s["metadata"]["name"]: s for s in stages() if s["spec"]["resourceRef"]["kind"] == "Pod"}


def exprs(stage: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["key"]: e for e in stage["spec"]["selector"]["matchExpressions"]}


def test_no_random_choice_anywhere() -> None:
    for s in stages():
        assert "weight" not in s["spec"] and "weightFrom" not in s["spec"], s["metadata"]["name"]
        delay = s["spec"].get("delay", {})
        assert not any(k.startswith("jitter") for k in delay), s["metadata"]["name"]


def test_only_pod_delete_matches_terminating_pods() -> None:
    for name, s in pod_stages().items():
        op = exprs(s)[".metadata.deletionTimestamp"]["operator"]
        assert op == ("Exists" if name == "pod-delete" else "DoesNotExist"), name


def test_pod_ready_is_guarded_against_faults() -> None:
    guard = exprs(pod_stages()["pod-ready"])[FAULT_KEY]
    assert guard["operator"] == "NotIn"
    assert set(guard["values"]) == {"never-ready", "crash-loop"}


@pytest.mark.parametrize(
    ("stage", "fault"),
    [
        ("lab-pod-never-ready", "never-ready"),
        ("lab-pod-crash-loop-start", "crash-loop"),
        ("lab-pod-crash-loop-restart", "crash-loop"),
    ],
)
def test_fault_stages_select_their_label(stage: str, fault: str) -> None:
    e = exprs(pod_stages()[stage])[FAULT_KEY]
    assert e["operator"] == "In" and e["values"] == [fault]


def test_stages_on_the_same_phase_are_disjoint() -> None:
    """Stages that can see the same (phase, fault) pod differ on some selector: no overlap."""
    ps = pod_stages()
    same_phase = [
        ("pod-ready", "lab-pod-never-ready"),
        ("pod-ready", "lab-pod-crash-loop-start"),
        ("lab-pod-never-ready", "lab-pod-crash-loop-start"),
    ]
    for a, b in same_phase:
        ea, eb = exprs(ps[a]), exprs(ps[b])
        assert ea[".status.phase"]["values"] == ["Pending"] == eb[".status.phase"]["values"]
        fa, fb = ea[FAULT_KEY], eb[FAULT_KEY]
        va = set(fa["values"]) if fa["operator"] == "In" else None
        vb = set(fb["values"]) if fb["operator"] == "In" else None
        if va is None:
            assert vb is not None and vb <= set(fa["values"]), (a, b)
        elif vb is None:
            assert va <= set(fb["values"]), (a, b)
        else:
            assert not va & vb, (a, b)
    restart = exprs(ps["lab-pod-crash-loop-restart"])[".status.phase"]["values"]
    assert restart == ["Running"]


def test_node_stages_present() -> None:
    names = {s["metadata"]["name"] for s in stages() if s["spec"]["resourceRef"]["kind"] == "Node"}
    assert names == {"node-initialize", "node-heartbeat-with-lease"}

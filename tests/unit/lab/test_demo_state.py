"""The demo starts from an empty state folder (a second run used to fail cloning over the first
run's working copy), and never clears one that a live earlier demo still uses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from deploy.lab import procs
from deploy.lab.demo import fresh_state


def test_a_finished_demos_state_is_cleared(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    (state / "work" / ".git").mkdir(parents=True)
    (state / "git" / "repos" / "rollout.git").mkdir(parents=True)
    done = procs.start("gitserver", [sys.executable, "-c", "pass"], state_dir=state / "git")
    procs.stop([done], state / "git")

    fresh_state(state)

    assert not state.exists()


def test_a_live_demo_is_refused_with_its_pids_and_nothing_removed(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    (state / "work").mkdir(parents=True)
    rec = procs.start(
        "controller-0", [sys.executable, "-c", "import time; time.sleep(60)"], state_dir=state / "controller"
    )
    try:
        with pytest.raises(SystemExit, match=rf"controller-0 \(pid {rec.pid}\).*another --state-dir"):
            fresh_state(state)
        assert (state / "work").is_dir()
    finally:
        procs.stop([rec], state / "controller")


def test_one_app_of_the_example_at_lab_scale_with_auto_waves() -> None:
    """`waves: auto` plans (guestbook, inventory) are reduced like listed ones (it used to crash)."""
    from deploy.lab.demo import EXAMPLE, single_app_changes

    regions = {"eu-canary", "eu-west"}
    changes = single_app_changes("guestbook", lambda p: (EXAMPLE / p).read_text(), regions, {"smokeWindow": "4s"})

    kept = sorted(path for path, text in changes.items() if text is not None)
    assert kept == ["apps/guestbook/rollout.yaml"]  # the rest of the example is deleted, guestbook kept
    plan = yaml.safe_load(changes["apps/guestbook/rollout.yaml"] or "")
    assert plan["waves"] == "auto" and plan["autoWaves"]["smokeWindow"] == "4s"
    assert changes["apps/checkout/rollout.yaml"] is None
    assert all(changes[f"regions/{r}.yaml"] is None for r in ("us-east", "ap-south", "ap-east"))

"""The README's first command, exactly as written: `bash deploy/demo.sh` from the repository root.

It runs `deploy/setup.sh` (a no-op install and a cached lab build on a set-up machine) and then
`rollout-lab demo` with its defaults: state in `.lab/demo` (relative, which is what issue 11 found
broken), its own lab of every region plus home on free ports, Prometheus, the simulator, a Git
server and the controller. The printed timeline must show the healthy release promoted and the bad
one drained, rolled back and quarantined.

The demo's state folder is the repository's `.lab/demo`: never run this test while someone runs
the demo by hand in the same checkout (the lab tests' lock, /tmp/lab-tests.lock, serialises them).
The session's own lab is not touched: other state folder, other ports.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 1500  # generous bound (see the measured figure it prints); warm lab cache assumed


@pytest.mark.timeout(DEMO_TIMEOUT_S + 120)
def test_readme_demo_command_runs_the_story_to_the_end() -> None:
    started = time.monotonic()
    res = subprocess.run(
        ["bash", "deploy/demo.sh"], cwd=REPO, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False
    )
    took = time.monotonic() - started
    out = res.stdout
    print(out)  # the timeline and the measured durations (pytest -s shows them; a failure shows them too)
    assert res.returncode == 0, f"exit {res.returncode} after {took:.0f}s\n{out[-4000:]}\n{res.stderr[-4000:]}"
    print(f"README demo: {took:.0f}s")  # the measured figure; -s shows it

    def rows(release: str, action: str) -> list[str]:
        return [line for line in out.splitlines() if release in line and re.search(rf"\b{action}:", line)]

    # Timeline rows are "<t>s  <app> <version>  <wave>  <region>  <action>: <reason>".
    assert rows("checkout 1.5.0", "wave-passed"), "1.5.0 never passed a wave:\n" + out[-4000:]
    assert rows("checkout 1.5.0", "succeeded") or rows("checkout 1.5.0", "region-passed"), out[-4000:]
    assert rows("checkout 1.6.0", "failed"), "1.6.0 was never caught:\n" + out[-4000:]
    assert rows("checkout 1.6.0", "drained"), "no drain of the failing region:\n" + out[-4000:]
    rolled_back = rows("checkout 1.6.0", "rolled-back")
    assert rolled_back and "quarantined" in rolled_back[-1], "1.6.0 not rolled back and quarantined:\n" + out[-4000:]
    assert re.search(r"outcome\s*│?\s*RolledBack \(quarantined: True\)", out), out[-3000:]

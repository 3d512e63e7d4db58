"""Shared fixtures. Lab fixtures are plain pytest plugins, one module per lab part."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.cluster", "tests.fixtures.traffic", "tests.fixtures.git"]

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "examples" / "shop"

# The session's lab runs every region of the example (canary, two low, two high of two characters),
# so end-to-end releases walk the same 4 waves a release engineer would see. Override to go faster.
os.environ.setdefault("ROLLOUT_LAB_REGIONS", ",".join(sorted(p.stem for p in (EXAMPLE / "regions").glob("*.yaml"))))


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    """A private copy of the example repository that a test may break."""
    target = tmp_path / "shop"
    shutil.copytree(EXAMPLE, target, symlinks=True)
    return target

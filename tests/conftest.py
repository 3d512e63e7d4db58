"""Shared fixtures. Lab fixtures are plain pytest plugins, one module per lab part."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.cluster", "tests.fixtures.traffic", "tests.fixtures.git"]

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "examples" / "shop"


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    """A private copy of the example repository that a test may break."""
    target = tmp_path / "shop"
    shutil.copytree(EXAMPLE, target, symlinks=True)
    return target

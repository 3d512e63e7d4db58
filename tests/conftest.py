"""Shared fixtures. Lab fixtures are plain pytest plugins, one module per lab part."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

pytest_plugins = ["tests.fixtures.cluster", "tests.fixtures.traffic", "tests.fixtures.git"]

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "examples" / "shop"

# The session's lab runs every region of the example (canary, two low, two high of two characters),
# so end-to-end releases walk the same 4 waves a release engineer would see. Override to go faster.
os.environ.setdefault("ROLLOUT_LAB_REGIONS", ",".join(sorted(p.stem for p in (EXAMPLE / "regions").glob("*.yaml"))))


@pytest.fixture(autouse=True)
def _structlog_config_restored() -> Iterator[None]:
    """Commands run in-process (CliRunner) configure structlog for a terminal; undo it after each
    test so one test's log level never hides another test's captured events."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    """A private copy of the example repository that a test may break."""
    target = tmp_path / "shop"
    shutil.copytree(EXAMPLE, target, symlinks=True)
    return target


_STAGES = ("unit", "integration", "e2e")  # fastest first: a broken unit test fails the run in seconds
# The README's demo starts a lab of its own: run it before the session's lab exists, so the two do
# not share 2 cores (and the README's first command is the first thing checked after the logic).
_FIRST_LAB_TEST = Path("e2e") / "test_readme_demo.py"


# The longest e2e modules first, so that two workers finish close together (longest job first).
_LONGEST_E2E = ("test_promotion.py", "test_resilience.py", "test_guestbook.py")


def _stage(item: pytest.Item) -> float:
    parts = item.path.relative_to(Path(__file__).parent).parts
    if Path(*parts) == _FIRST_LAB_TEST:
        return 0.5
    stage = _STAGES.index(parts[0]) if parts and parts[0] in _STAGES else 0
    if stage == 2 and parts[-1] in _LONGEST_E2E:
        return 1.5 + _LONGEST_E2E.index(parts[-1]) / 10
    return stage


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """ROLLOUT_TEST_WORKERS=2 runs the whole suite (no paths given) in two worker processes, each
    with a lab of its own; the default is one process. Two workers ran the suite in 44.5 min
    instead of about 58 here, but on 2 cores under that load the kill -9 test's kills crowd out
    the releases they interrupt (its phase spread fell short) and a permission test saw the
    prune step it never reached before: not the default until a whole two-worker run passes
    again. A run of chosen files or tests always stays in one process."""
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    return int(os.environ.get("ROLLOUT_TEST_WORKERS", "0")) if whole_suite else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run unit tests, then integration, then e2e, keeping each module's own order (the e2e
    modules' tests build on each other). Alphabetical collection would start with e2e."""
    items.sort(key=_stage)  # stable: order inside a stage is unchanged


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Fail fast: once the unit tests are done, a failure among them ends the run before any lab
    starts (an hour of lab tests would only bury it). The failures are reported as usual."""
    if nextitem is None or _stage(item) > 0 or _stage(nextitem) == 0:
        return
    failed = item.session.testsfailed
    if failed:
        item.session.shouldfail = f"{failed} unit test(s) failed: the lab tests were not run"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """With workers: the first failed unit test stops every worker (xdist's controller sees all
    reports; one worker may already be in the lab tests while another runs the last unit files)."""
    if not report.failed or not report.nodeid.startswith("tests/unit/") or _CONFIG is None:
        return
    dsession = _CONFIG.pluginmanager.getplugin("dsession")
    if dsession is not None and not dsession.shouldstop:
        dsession.shouldstop = f"unit test failed ({report.nodeid}): the lab tests were stopped"


_CONFIG: pytest.Config | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _CONFIG
    _CONFIG = config

"""`rollout-lab` commands exist and behave without a lab; the product's `rollout` has none of them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from deploy.lab.cli import main as lab
from deploy.lab.cluster import default_regions, select_regions


def test_lab_group_has_the_cluster_commands() -> None:
    out = CliRunner().invoke(lab, ["--help"]).output
    for cmd in ("build", "up", "down", "status", "demo"):
        assert cmd in out


def test_the_product_cli_has_no_lab_commands() -> None:
    from rollout.cli import main

    assert {"lab", "demo"}.isdisjoint(main.commands)


def test_status_and_down_without_a_lab(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(lab, ["status", "--state-dir", str(tmp_path / "none")])
    assert res.exit_code == 0 and "no lab processes" in res.output
    res = runner.invoke(lab, ["down", "--state-dir", str(tmp_path / "none")])
    assert res.exit_code == 0, res.output


def test_regions_default_to_the_example_repository() -> None:
    regions = default_regions()
    assert {r.name for r in regions} >= {"eu-canary", "eu-west", "us-east"}
    assert all(r.context for r in regions)
    picked = select_regions(["us-east", "nowhere"])
    assert [r.name for r in picked] == ["us-east", "nowhere"]
    assert picked[1].context == "nowhere"

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from rollout.cli import main
from tests.conftest import EXAMPLE


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_validate_accepts_the_example() -> None:
    result = run("validate", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert "5 regions, 6 apps" in result.output


def test_validate_lists_every_mistake_and_exits_1(example_copy: Path) -> None:
    values = example_copy / "apps" / "catalog" / "values.yaml"
    values.write_text(values.read_text().replace('tag: "2.7.1"', "tag: latest"))
    plan = example_copy / "apps" / "checkout" / "rollout.yaml"
    plan.write_text(plan.read_text().replace("regions: [us-east]", "regions: [us-easst]"))
    result = run("validate", str(example_copy), "-o", "json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    fields = {(i["file"], i["field"]) for i in report["issues"]}
    assert ("apps/catalog/values.yaml", "image") in fields
    assert ("apps/checkout/rollout.yaml", "waves[2].regions[0]") in fields


def test_validate_on_a_missing_folder_is_one_readable_line() -> None:
    result = run("validate", "/nonexistent/repo")
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "is not a folder" in result.output


def test_plan_shows_waves_and_steps_as_json() -> None:
    result = run("plan", str(EXAMPLE), "checkout", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [w["regions"] for w in data["waves"]] == [["eu-canary"], ["eu-west", "ap-south"], ["us-east"], ["ap-east"]]
    assert data["waves"][0]["smokeWindow"] == "auto (2m..30m)"
    assert data["strategy"]["steps"][0] == "setWeight 10%"
    assert data["strategy"]["steps"][-1] == "setWeight 100% (promote)"


def test_plan_text_output_is_a_table() -> None:
    result = run("plan", str(EXAMPLE), "catalog")
    assert result.exit_code == 0, result.output
    assert "high-traffic" in result.output and "character-ap-east" in result.output


def test_render_prints_the_objects_for_a_region() -> None:
    result = run("render", str(EXAMPLE), "search", "ap-south")
    assert result.exit_code == 0, result.output
    objects = list(yaml.safe_load_all(result.output))
    assert [o["kind"] for o in objects] == ["Deployment", "Service"]
    image = objects[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.ap.example.com/shop/search:3.2.0"


def test_unknown_app_and_region_are_named() -> None:
    assert "unknown app 'nope'" in run("plan", str(EXAMPLE), "nope").output
    assert "unknown region 'mars'" in run("render", str(EXAMPLE), "search", "mars").output


def test_plan_shows_a_release_groups_combined_waves(example_copy: Path) -> None:
    for app, deps in (("catalog", ["checkout"]), ("search", ["catalog"])):
        path = example_copy / "apps" / app / "rollout.yaml"
        data = yaml.safe_load(path.read_text())
        data["dependsOn"] = deps
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run("plan", str(example_copy), "catalog", "-o", "json")
    assert result.exit_code == 0, result.output
    group = json.loads(result.output)["group"]
    assert group["apps"] == ["checkout", "catalog", "search"]
    first = group["regions"][0]
    assert first["region"] == "eu-canary" and first["wave"] == "canary"
    assert [a["app"] for a in first["apps"]] == ["checkout", "catalog", "search"]
    text = run("plan", str(example_copy), "search").output
    assert "release group: checkout -> catalog -> search" in text
    assert "checkout (canary) -> catalog (canary)" in " ".join(text.split())
    assert "group" not in json.loads(run("plan", str(EXAMPLE), "reviews", "-o", "json").output)

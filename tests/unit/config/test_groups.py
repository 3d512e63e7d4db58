"""Release groups (dependsOn): validation of the declarations and the order a group's apps go in."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.errors import InvalidRepository
from config.groups import cycles, dependency_issues, dependents, group_of, release_order
from config.loader import load_repository


def test_cycles_are_named_once_from_their_smallest_app() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"x": ["y"], "y": ["x"], "z": []}) == [["x", "y", "x"]]


def test_no_cycle_in_a_diamond() -> None:
    graph = {"web": ["api", "auth"], "api": ["db"], "auth": ["db"], "db": []}
    assert cycles(graph) == []
    assert release_order(graph, graph) == ["db", "api", "auth", "web"]


def test_issues_name_file_field_and_fix() -> None:
    graph = {"a": ["b"], "b": ["a"], "c": ["c", "nope"]}
    issues = {(i.file, i.field, i.problem) for i in dependency_issues(graph, {"a", "b", "c"})}
    assert ("apps/c/rollout.yaml", "dependsOn[0]", "'c' depends on itself") in issues
    assert ("apps/c/rollout.yaml", "dependsOn[1]", "unknown app 'nope'") in issues
    assert ("apps/a/rollout.yaml", "dependsOn", "the dependencies form a cycle: a -> b -> a") in issues
    assert len(issues) == 3
    assert all(i.fix for i in dependency_issues(graph, {"a", "b", "c"}))


def test_group_and_dependents() -> None:
    graph = {"frontend": ["checkout"], "checkout": ["payments"], "payments": [], "search": []}
    assert group_of(graph, "checkout") == ["payments", "checkout", "frontend"]
    assert group_of(graph, "search") == ["search"]
    assert dependents(graph, "payments") == ["checkout", "frontend"]
    assert dependents(graph, "frontend") == []


def _depends(root: Path, app: str, deps: list[str]) -> None:
    path = root / "apps" / app / "rollout.yaml"
    data = yaml.safe_load(path.read_text())
    data["dependsOn"] = deps
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_validate_accepts_a_group(example_copy: Path) -> None:
    _depends(example_copy, "catalog", ["checkout"])
    repo = load_repository(example_copy)
    assert repo.apps["catalog"].plan.depends_on == ["checkout"]


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ({"catalog": ["nope"]}, ("apps/catalog/rollout.yaml", "dependsOn[0]", "unknown app 'nope'")),
        ({"catalog": ["catalog"]}, ("apps/catalog/rollout.yaml", "dependsOn[0]", "'catalog' depends on itself")),
        (
            {"catalog": ["checkout"], "checkout": ["catalog"]},
            ("apps/catalog/rollout.yaml", "dependsOn", "the dependencies form a cycle: catalog -> checkout -> catalog"),
        ),
    ],
)
def test_validate_refuses(example_copy: Path, edits: dict[str, list[str]], expected: tuple[str, str, str]) -> None:
    for app, deps in edits.items():
        _depends(example_copy, app, deps)
    with pytest.raises(InvalidRepository) as raised:
        load_repository(example_copy)
    assert expected in {(i.file, i.field, i.problem) for i in raised.value.issues}

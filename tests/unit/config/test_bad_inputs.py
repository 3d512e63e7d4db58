"""Every policy, one broken input at a time: each must be reported with its file, field and a fix."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from config.errors import InvalidRepository
from config.loader import load_repository


def edit_yaml(relative: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / relative
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    return apply


def write(relative: str, text: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / relative).write_text(text)

    return apply


def symlink(relative: str, target: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        os.symlink(target, root / relative)

    return apply


@dataclass(frozen=True)
class Case:
    name: str
    breakage: Callable[[Path], None]
    file: str
    field: str
    problem: str


CASES = [
    Case(
        "latest image tag",
        edit_yaml("apps/catalog/values.yaml", lambda d: d["image"].update(tag="latest")),
        "apps/catalog/values.yaml",
        "image",
        "'latest' moves",
    ),
    Case(
        "image without tag or digest",
        edit_yaml("apps/catalog/values.yaml", lambda d: d["image"].pop("tag")),
        "apps/catalog/values.yaml",
        "image",
        "neither tag nor digest",
    ),
    Case(
        "latest image written in a manifest",
        write(
            "apps/search/manifests/sidecar.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: probe}\nspec:\n  containers:\n"
            "    - {name: probe, image: 'busybox:latest'}\n",
        ),
        "apps/search/manifests/sidecar.yaml",
        "document[0].spec.containers[0].image",
        "'latest'",
    ),
    Case(
        "unknown region in a wave",
        edit_yaml("apps/checkout/rollout.yaml", lambda d: d["waves"][2]["regions"].append("mars-1")),
        "apps/checkout/rollout.yaml",
        "waves[2].regions[1]",
        "unknown region 'mars-1'",
    ),
    Case(
        "region in two waves",
        edit_yaml("apps/checkout/rollout.yaml", lambda d: d["waves"][3]["regions"].append("us-east")),
        "apps/checkout/rollout.yaml",
        "waves[3]",
        "already in wave 'high-traffic-web'",
    ),
    Case(
        "region in no wave",
        edit_yaml("apps/checkout/rollout.yaml", lambda d: d["waves"].pop()),
        "apps/checkout/rollout.yaml",
        "waves",
        "'ap-east' is in no wave",
    ),
    Case(
        "first wave not canary",
        edit_yaml("apps/checkout/rollout.yaml", lambda d: d["waves"].insert(0, d["waves"].pop(2))),
        "apps/checkout/rollout.yaml",
        "waves[0]",
        "non-canary region(s) us-east",
    ),
    Case(
        "duration without unit",
        edit_yaml("apps/checkout/rollout.yaml", lambda d: d["waves"][1].update(smokeWindow=10)),
        "apps/checkout/rollout.yaml",
        "waves[1].smokeWindow",
        "has no unit",
    ),
    Case(
        "unparseable duration",
        edit_yaml("apps/catalog/rollout.yaml", lambda d: d["strategy"]["rolling"].update(progressDeadline="soon")),
        "apps/catalog/rollout.yaml",
        "strategy.rolling.progressDeadline",
        "is not a duration",
    ),
    Case(
        "zero duration",
        edit_yaml("apps/catalog/rollout.yaml", lambda d: d["strategy"]["rolling"].update(progressDeadline="0s")),
        "apps/catalog/rollout.yaml",
        "strategy.rolling.progressDeadline",
        "longer than zero",
    ),
    Case(
        "unknown PromQL variable",
        edit_yaml(
            "apps/checkout/rollout.yaml",
            lambda d: d["analysis"]["checks"][1].update(query="up{job='{{ cluster_name }}'}"),
        ),
        "apps/checkout/rollout.yaml",
        "analysis.checks[1].query",
        "unknown variable 'cluster_name'",
    ),
    Case(
        "condition that tries to run code",
        edit_yaml(
            "apps/checkout/rollout.yaml",
            lambda d: d["analysis"]["checks"][1].update(successCondition="__import__('os') < 1"),
        ),
        "apps/checkout/rollout.yaml",
        "analysis.checks[1].successCondition",
        "only min(), max() and abs()",
    ),
    Case(
        "undefined template variable",
        write(
            "apps/catalog/manifests/config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {flag: '{{ params.feature_flag }}'}\n",
        ),
        "apps/catalog/manifests/config.yaml",
        "",
        "no attribute 'feature_flag'",
    ),
    Case(
        "template code execution",
        write(
            "apps/catalog/manifests/config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {x: '{{ ''.__class__.__mro__ }}'}\n",
        ),
        "apps/catalog/manifests/config.yaml",
        "",
        "sandbox refused",
    ),
    Case(
        "include with ..",
        write("apps/catalog/manifests/config.yaml", "{% include '../../search/values.yaml' %}\n"),
        "apps/catalog/manifests/config.yaml",
        "",
        "outside the app directory",
    ),
    Case(
        "manifest symlink out of the repository",
        symlink("apps/catalog/manifests/passwd.yaml", "/etc/passwd"),
        "apps/catalog/manifests/passwd.yaml",
        "",
        "outside the app directory",
    ),
    Case(
        "object without kind",
        write("apps/catalog/manifests/config.yaml", "apiVersion: v1\nmetadata: {name: c}\n"),
        "apps/catalog/manifests/config.yaml",
        "document[0].kind",
        "is missing",
    ),
    Case(
        "selector not matching template",
        write(
            "apps/catalog/manifests/deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: catalog}\nspec:\n"
            "  selector: {matchLabels: {app: other}}\n  template:\n    metadata: {labels: {app: catalog}}\n"
            "    spec: {containers: [{name: c, image: 'x:1.0'}]}\n",
        ),
        "apps/catalog/manifests/deployment.yaml",
        "document[0].spec.selector.matchLabels",
        "does not match",
    ),
    Case(
        "misspelt field",
        edit_yaml("apps/search/rollout.yaml", lambda d: d.update(playbok="x")),
        "apps/search/rollout.yaml",
        "playbok",
        "Extra inputs",
    ),
    Case(
        "two strategies",
        edit_yaml("apps/search/rollout.yaml", lambda d: d["strategy"].update(rolling={})),
        "apps/search/rollout.yaml",
        "strategy",
        "more or less than one strategy",
    ),
    Case(
        "unknown check in a canary step",
        edit_yaml(
            "apps/checkout/rollout.yaml",
            lambda d: d["strategy"]["canary"]["steps"][1]["analysis"]["checks"].append("saturation"),
        ),
        "apps/checkout/rollout.yaml",
        "strategy.canary.steps[1].analysis.checks",
        "unknown check 'saturation'",
    ),
    Case(
        "region file name mismatch",
        edit_yaml("regions/eu-west.yaml", lambda d: d.update(name="eu-west-2")),
        "regions/eu-west.yaml",
        "name",
        "differs from the file name",
    ),
    Case(
        "traffic share out of range",
        edit_yaml("regions/us-east.yaml", lambda d: d.update(trafficShare=1.5)),
        "regions/us-east.yaml",
        "trafficShare",
        "less than or equal to 1",
    ),
    Case(
        "not YAML",
        write("regions/ap-east.yaml", "name: [unclosed\n"),
        "regions/ap-east.yaml",
        "line",
        "is not valid YAML",
    ),
    Case(
        "semver",
        edit_yaml("apps/search/values.yaml", lambda d: d.update(version="v3")),
        "apps/search/values.yaml",
        "version",
        "not a semantic version",
    ),
    Case(
        "waves: auto without autoWaves (a check across fields names its field)",
        edit_yaml("apps/checkout/rollout.yaml", lambda d: d.update(waves="auto")),
        "apps/checkout/rollout.yaml",
        "waves",
        "'auto' has no defaults",
    ),
    Case(
        "an empty list of waves",
        edit_yaml("apps/checkout/rollout.yaml", lambda d: d.update(waves=[])),
        "apps/checkout/rollout.yaml",
        "waves",
        "the list is empty",
    ),
    Case(
        "an approval gate needing more approvals than it names people",
        edit_yaml(
            "apps/checkout/rollout.yaml",
            lambda d: d["waves"][1].update(approval={"required": 2, "from": {"users": ["alice"]}}),
        ),
        "apps/checkout/rollout.yaml",
        "waves[1].approval",
        "could never open",
    ),
    Case(
        "an approval gate naming nobody",
        edit_yaml("apps/checkout/rollout.yaml", lambda d: d["waves"][1].update(approval={"from": {}})),
        "apps/checkout/rollout.yaml",
        "waves[1].approval.from",
        "names nobody",
    ),
    Case(
        "an approval expiry without a unit",
        edit_yaml(
            "apps/checkout/rollout.yaml",
            lambda d: d["waves"][1].update(approval={"from": {"groups": ["sre"]}, "expiresAfter": 5}),
        ),
        "apps/checkout/rollout.yaml",
        "waves[1].approval.expiresAfter",
        "no unit",
    ),
    Case(
        "an approval requiring none",
        edit_yaml(
            "apps/checkout/rollout.yaml",
            lambda d: d["waves"][0].update(approval={"required": 0, "from": {"groups": ["sre"]}}),
        ),
        "apps/checkout/rollout.yaml",
        "waves[0].approval.required",
        "greater than or equal to 1",
    ),
    Case(
        "a misspelt approval field",
        edit_yaml(
            "apps/checkout/rollout.yaml",
            lambda d: d["waves"][1].update(approval={"from": {"groups": ["sre"]}, "notByAuthour": True}),
        ),
        "apps/checkout/rollout.yaml",
        "waves[1].approval.notByAuthour",
        "Extra inputs",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_reported_with_file_field_and_fix(case: Case, example_copy: Path) -> None:
    case.breakage(example_copy)
    with pytest.raises(InvalidRepository) as raised:
        load_repository(example_copy)
    matching = [
        i
        for i in raised.value.issues
        if i.file == case.file and i.field.startswith(case.field) and case.problem in i.problem
    ]
    assert matching, f"expected {case.file} {case.field} ~ {case.problem!r}; got:\n{raised.value.summary()}"
    assert all(i.fix for i in matching)


def test_every_mistake_of_a_repository_is_reported_in_one_run(example_copy: Path) -> None:
    breakages = [CASES[0], CASES[3], CASES[18], CASES[21], CASES[23]]
    for case in breakages:
        case.breakage(example_copy)
    with pytest.raises(InvalidRepository) as raised:
        load_repository(example_copy)
    for case in breakages:
        assert any(
            i.file == case.file and i.field.startswith(case.field) and case.problem in i.problem
            for i in raised.value.issues
        ), raised.value.summary()


def test_a_condition_on_baseline_needs_a_baseline_query(example_copy: Path) -> None:
    edit_yaml(
        "apps/checkout/rollout.yaml",
        lambda d: d["analysis"]["checks"][1].update(successCondition="result <= 1.2 * baseline"),
    )(example_copy)
    with pytest.raises(InvalidRepository) as raised:
        load_repository(example_copy)
    assert any(i.field == "analysis.checks[1]" and "uses baseline" in i.problem for i in raised.value.issues), (
        raised.value.summary()
    )
